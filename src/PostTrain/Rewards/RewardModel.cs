using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Tokenization;
using static TorchSharp.torch;

namespace PostTrain.Rewards;

/// <summary>
/// A reward model ("model"): a sequence-classification checkpoint in transformers' layout
/// (config.json architectures [Qwen2ForSequenceClassification | Qwen3ForSequenceClassification |
/// LlamaForSequenceClassification], the decoder's model.* tensors and score.weight
/// [num_labels, hidden], no lm_head) with its own tokenizer. As TRL's GRPO/RLOO trainers score
/// with one: a conversational sample is rendered with the reward model's chat template as the
/// prompt messages followed by {"role": "assistant", "content": completion} (no generation
/// prompt), a text sample is prompt + completion; both are tokenized without added special tokens,
/// right-padded with the tokenizer's pad token (its EOS token when it has none, as TRL sets it),
/// and the score is the logit of label 0 at each row's last token that is not the pad token
/// (TRL's logits[:, 0]; with num_labels &gt; 1 the other labels are ignored). The directory may
/// also be a reward model's PEFT adapter (task_type SEQ_CLS, as `posttrain reward --lora` writes
/// it): its base_model_name_or_path is loaded, the adapters are applied and the head is the
/// adapter's base_model.model.score.weight.
/// </summary>
public sealed class RewardModel : IRewardFunction, IDisposable
{
    readonly SequenceClassifier model;
    readonly HfTokenizer tokenizer;
    readonly Lazy<ChatTemplate> template;

    RewardModel(string dir, SequenceClassifier model, HfTokenizer tokenizer)
    {
        Directory = dir;
        this.model = model;
        this.tokenizer = tokenizer;
        template = new Lazy<ChatTemplate>(() => ChatTemplate.FromModelDirectory(dir));
        PadTokenId = tokenizer.PadTokenId ?? tokenizer.EosTokenId ?? model.Config.PadTokenId;
    }

    public string Name => "model";
    public string Directory { get; }
    public int NumLabels => model.NumLabels;
    /// <summary>The id padding is made of and pooling skips: the tokenizer's pad, else its EOS, else config.json's pad_token_id.</summary>
    public int? PadTokenId { get; }
    /// <summary>Rows per forward pass.</summary>
    public int BatchSize { get; init; } = 16;
    public SequenceClassifier Classifier => model;

    /// <summary>
    /// Loads a reward model directory. A config that is not a ...ForSequenceClassification, a
    /// missing score.weight, or a tensor of the wrong shape is an <see cref="InputError"/> naming
    /// the file and tensor.
    /// </summary>
    public static RewardModel Load(string dir, int batchSize = 16)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        var model = LoadClassifier(dir);
        try
        {
            // An adapter directory without tokenizer files uses its base's.
            var tokenizerDir = PeftAdapter.IsAdapter(dir) && !File.Exists(Path.Combine(dir, "tokenizer.json")) ? AdapterBase(dir) : dir;
            var tokenizer = HfTokenizer.FromDirectory(tokenizerDir);
            return new RewardModel(dir, model, tokenizer) { BatchSize = batchSize };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the classifier of a sequence-classification directory (frozen, in evaluation mode),
    /// with the checks of <see cref="Load"/>; the tokenizer is not read.
    /// </summary>
    public static SequenceClassifier LoadClassifier(string dir)
    {
        if (PeftAdapter.IsAdapter(dir)) return LoadAdapterClassifier(dir);
        var configPath = Path.Combine(dir, HfCheckpoint.ConfigFile);
        var config = HfCheckpoint.LoadConfig(dir);
        var architectures = config.Raw["architectures"] as JsonArray;
        var classes = architectures?.Select(a => a is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null).ToList() ?? [];
        if (!classes.Any(c => c is not null && c.EndsWith("ForSequenceClassification", StringComparison.Ordinal)))
            throw new InputError($"{configPath}: architectures: {(architectures is null ? "missing" : architectures.ToJsonString())}; " +
                                 $"a reward model is a sequence-classification checkpoint (e.g. [\"{config.ArchitectureClass.Replace("ForCausalLM", "ForSequenceClassification")}\"])");
        int numLabels = NumLabelsOf(config.Raw, configPath);

        var files = HfCheckpoint.WeightFiles(dir);
        bool hasScore = false;
        foreach (var f in files)
        {
            using var file = SafeTensorsFile.Open(f);
            hasScore |= file.Tensors.ContainsKey("score.weight");
        }
        if (!hasScore)
            throw new InputError($"{(files.Count == 1 ? files[0] : dir)}: no tensor 'score.weight' (the classification head, [num_labels={numLabels}, hidden_size={config.HiddenSize}]); " +
                                 "this is not a ...ForSequenceClassification checkpoint");

        HfCheckpoint.CheckDeclaredSizes(config, dir, numLabels);
        var model = new SequenceClassifier(config, numLabels);
        try
        {
            HfCheckpoint.LoadWeights(model, dir);
            model.Freeze();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The base model directory of a reward model's adapter (its base_model_name_or_path, which must exist here).</summary>
    static string AdapterBase(string dir)
    {
        var config = PeftAdapter.ReadConfig(dir, sequenceClassification: true);
        var baseDir = config.BaseModel is null ? null : Path.GetFullPath(config.BaseModel);
        if (baseDir is null || !File.Exists(Path.Combine(baseDir, HfCheckpoint.ConfigFile)))
            throw new InputError($"{Path.Combine(dir, PeftAdapter.ConfigFile)}: base_model_name_or_path: " +
                                 $"{(config.BaseModel is null ? "missing" : $"'{config.BaseModel}' is not a model directory here")}; a reward model's adapter is scored on its base");
        return baseDir;
    }

    /// <summary>
    /// A reward model's adapter (PEFT SEQ_CLS): its base's decoder (a causal LM's lm_head, or a
    /// sequence classifier's own head, left out), the adapters on it, and the adapter's head.
    /// </summary>
    static SequenceClassifier LoadAdapterClassifier(string dir)
    {
        var baseDir = AdapterBase(dir);
        var config = HfCheckpoint.LoadConfig(baseDir);
        HfCheckpoint.CheckDeclaredSizes(config, baseDir);
        var model = new SequenceClassifier(config, numLabels: 1);
        try
        {
            HfCheckpoint.LoadWeights(model, baseDir, withScore: false);
            PeftAdapter.Load(model.Decoder, dir, score: model.Score.weight);
            model.Freeze();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>transformers' num_labels: the "num_labels" key when present, else the size of id2label, else 2 (PretrainedConfig's default).</summary>
    static int NumLabelsOf(JsonObject raw, string configPath)
    {
        if (raw["num_labels"] is JsonValue n)
        {
            if (!n.TryGetValue<int>(out var count) || count < 1) throw new InputError($"{configPath}: num_labels: expected a positive integer");
            return count;
        }
        if (raw["id2label"] is JsonObject labels)
            return labels.Count >= 1 ? labels.Count : throw new InputError($"{configPath}: id2label: empty");
        return 2;
    }

    /// <summary>The text the reward model reads for a sample (before tokenization).</summary>
    public string Text(RewardSample sample)
    {
        if (sample.PromptMessages is null) return sample.Prompt + sample.Completion;
        var messages = new JsonArray();
        foreach (var m in sample.PromptMessages) messages.Add(m?.DeepClone());
        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = sample.Completion });
        return ChatPrompt.Render(template.Value, messages, null, null, addGenerationPrompt: false, $"{Directory}: the reward model's");
    }

    public double?[] Score(IReadOnlyList<RewardSample> samples)
    {
        var ids = samples.Select(s => tokenizer.Encode(Text(s), addSpecialTokens: false)).ToArray();
        int vocab = model.Config.VocabSize;
        for (int i = 0; i < ids.Length; i++)
            if (ids[i].FirstOrDefault(id => id >= vocab, -1) is var bad and >= 0)
                throw new InputError($"{Directory}: the tokenizer gives id {bad} for sample {i}, outside the model's vocab_size {vocab}");
        var scores = new double?[samples.Count];
        // Similar lengths share a batch; without a pad id rows are scored one at a time (as transformers requires).
        var order = Enumerable.Range(0, ids.Length).OrderByDescending(i => ids[i].Length).ToArray();
        int batch = PadTokenId is null ? 1 : BatchSize;
        for (int start = 0; start < order.Length; start += batch)
        {
            var rows = order.Skip(start).Take(batch).ToArray();
            var values = ScoreIds(rows.Select(i => ids[i]).ToArray());
            for (int j = 0; j < rows.Length; j++) scores[rows[j]] = values[j];
        }
        return scores;
    }

    /// <summary>Label-0 logits of token id rows, right-padded into one batch.</summary>
    public float[] ScoreIds(IReadOnlyList<int[]> rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int width = Math.Max(1, rows.Max(r => r.Length));
        long pad = PadTokenId ?? 0;
        var flat = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        for (int b = 0; b < rows.Count; b++)
            for (int t = 0; t < width; t++)
            {
                bool real = t < rows[b].Length;
                flat[b * width + t] = real ? rows[b][t] : pad;
                mask[b * width + t] = real ? 1 : 0;
            }
        var input = tensor(flat, [rows.Count, width]);
        var attention = tensor(mask, [rows.Count, width]);
        var logits = model.Forward(input, attention, PadTokenId);
        return logits.select(1, 0).to(ScalarType.Float32).data<float>().ToArray();
    }

    public void Dispose() => model.Dispose();
}
