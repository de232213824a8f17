using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Tokenization;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// A whole reward-model run, as `posttrain reward` does it (TRL's RewardTrainer): validate, load
/// the preference data (with optional margins), tokenize chosen and rejected as whole sequences,
/// drop pairs longer than --max-length, build the classifier (the decoder of --model and a score
/// head: --model's own when it is a sequence classifier with one label, else new, normal(0,
/// initializer_range) seeded by --seed), optionally with LoRA adapters on the decoder, then train
/// on the shared loop.
/// <code>
/// RewardRun.Train(new RewardOptions { Model = "runs/sft", Data = "prefs.jsonl", Output = "runs/rm" }, Console.Out);
/// </code>
/// </summary>
public static class RewardRun
{
    /// <inheritdoc cref="SftRun.Train"/>
    public static TrainResult Train(RewardOptions options, TextWriter log, string? resumeFrom = null, CancellationToken stop = default)
    {
        options.RequirePaths();
        options.Validate();
        using var runLock = RunDirectory.Lock(options.Output!); // checked and taken before any work
        var (train, eval) = RunData.Load(options, p => PreferenceDataset.Load(p, options.SkipInvalid, margins: true), d => d.Skipped, log);
        CheckMargins(train);
        if (eval is not null) CheckMargins(eval);
        log.WriteLine($"Data: {train.Examples.Count} pairs, {train.Format}" + (train.Examples[0].Margin is null ? "" : ", with margins") +
                      (eval is null ? "" : $"; eval: {eval.Examples.Count} pairs"));

        var template = train.Format.Conversational || eval?.Format.Conversational == true
            ? ChatTemplate.FromModelDirectory(options.Model!) : null;
        var tokenizer = HfTokenizer.FromDirectory(options.Model!);
        // TRL: the tokenizer's pad token, else its EOS token; the classifier pools at the last token that is not it.
        int padTokenId = tokenizer.PadTokenId ?? tokenizer.EosTokenId
            ?? throw new InputError($"{options.Model}: the tokenizer has neither a pad token nor an EOS token; reward models pool at the last token that is not the pad token");
        var tokenization = new RewardTokenization(tokenizer, template, options.TemplateVariables());
        var trainPairs = Prepare(tokenization, train, options, options.Data!, log, "train");
        var evalPairs = eval is null ? null : Prepare(tokenization, eval, options, options.EvalData!, log, "eval");

        using var classifier = LoadClassifier(options, log);
        CheckVocabulary(classifier, trainPairs, options.Data!);
        if (evalPairs is not null) CheckVocabulary(classifier, evalPairs, options.EvalData!);
        RunDirectory.Prepare(options.Output!, resumeFrom, RewardOptions.Settings.ToYaml(options), log);
        var trainer = new Trainer<RewardPair>(classifier.Decoder, new RewardMethod(options, classifier, padTokenId), trainPairs, evalPairs,
            options, options.Output!, options.Model);
        return trainer.Train(log, resumeFrom, stop);
    }

    /// <summary>TRL's margin column is all or nothing: a dataset with a margin on some records needs one on every record.</summary>
    static void CheckMargins(PreferenceDataset data)
    {
        var with = data.Examples.FirstOrDefault(e => e.Margin is not null);
        var without = data.Examples.FirstOrDefault(e => e.Margin is null);
        if (with is not null && without is not null)
            throw new InputError($"{without.Source}: margin: missing, but {with.Source} has one; give every record of a dataset a margin, or none");
    }

    /// <summary>
    /// Tokenize, then drop the pairs whose chosen or rejected sequence is longer than
    /// --max-length (TRL's RewardTrainer filters them out rather than truncating), with a count.
    /// Pairs whose chosen and rejected tokens are identical are kept, as TRL keeps them, and
    /// reported: their loss has no gradient but the centring term's, and they are never accurate.
    /// </summary>
    public static IReadOnlyList<RewardPair> Prepare(RewardTokenization tokenization, PreferenceDataset data, RewardOptions options, string path, TextWriter log, string split)
    {
        var pairs = data.Examples.Select(tokenization.Tokenize).ToList();
        foreach (var p in pairs)
            if (p.ChosenIds.Length == 0 || p.RejectedIds.Length == 0)
                throw new InputError($"{p.Source}: {(p.ChosenIds.Length == 0 ? "chosen" : "rejected")}: tokenizes to no tokens: there is nothing to score");
        var kept = pairs.Where(p => Math.Max(p.ChosenIds.Length, p.RejectedIds.Length) <= options.MaxLength).ToList();
        if (kept.Count < pairs.Count)
            log.WriteLine($"Dropped {pairs.Count - kept.Count} of {pairs.Count} {split} pairs longer than --max-length {options.MaxLength} (chosen or rejected), as TRL does");
        if (kept.Count == 0) throw new InputError($"{path}: no {split} pair fits in --max-length {options.MaxLength}");
        var same = kept.Where(p => p.ChosenIds.AsSpan().SequenceEqual(p.RejectedIds)).ToList();
        if (same.Count > 0)
            log.WriteLine($"Warning: {same.Count} {split} pairs have identical chosen and rejected tokens (first: {same[0].Source}); kept, as TRL keeps them: " +
                          "they cannot be ranked and count as not accurate");
        return kept;
    }

    /// <summary>
    /// The classifier to train: --model's decoder (a causal LM's lm_head is left out, as TRL loads
    /// it into AutoModelForSequenceClassification) and its score head when --model is a sequence
    /// classifier with one label, else a new head (normal(0, initializer_range), seeded by
    /// --seed); with --lora, fresh adapters on the decoder (the base frozen, in --base-dtype) and
    /// the head trained in full, in float32.
    /// </summary>
    public static SequenceClassifier LoadClassifier(RewardOptions options, TextWriter log)
    {
        var dtype = options.UsesLora && options.BaseDtype == BaseDtype.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        var classifier = LoadClassifier(options.Model ?? throw new InputError("--model: required"), options.Seed, dtype, log);
        try
        {
            if (options.Lora) LoraAdapters.Attach(classifier.Decoder, options.LoraConfig(), options.Seed);
            return classifier;
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A trainable one-label classifier from <paramref name="dir"/>: a sequence classifier with
    /// its head, or a causal LM's decoder with a new head (normal(0, initializer_range), seeded by
    /// <paramref name="seed"/>); the decoder in <paramref name="dtype"/>, the head in float32.
    /// Reward-model training and PPO's value model start from it.
    /// </summary>
    public static SequenceClassifier LoadClassifier(string dir, long seed, ScalarType dtype, TextWriter log)
    {
        var config = HfCheckpoint.LoadConfig(dir);
        bool fromClassifier = IsSequenceClassifier(config.Raw);
        if (fromClassifier && NumLabels(config.Raw) is var labels and not 1)
            throw new InputError($"{Path.Combine(dir, HfCheckpoint.ConfigFile)}: the model has num_labels={labels}; a reward model has one label (one score per sequence), as TRL requires");
        HfCheckpoint.CheckDeclaredSizes(config, dir, fromClassifier ? 1 : null);
        var classifier = new SequenceClassifier(config, numLabels: 1, dtype, scoreDtype: ScalarType.Float32);
        try
        {
            HfCheckpoint.LoadWeights(classifier, dir, withScore: fromClassifier);
            if (!fromClassifier) classifier.InitializeScore(seed);
            log.WriteLine(fromClassifier
                ? $"Model: {config.ArchitectureClass.Replace("ForCausalLM", "ForSequenceClassification")} with its score head"
                : $"Model: {config.ArchitectureClass}'s decoder and a new score head [1, {config.HiddenSize}] (normal(0, {config.InitializerRange}), seed {seed})");
            return classifier;
        }
        catch
        {
            classifier.Dispose();
            throw;
        }
    }

    static bool IsSequenceClassifier(JsonObject raw) =>
        raw["architectures"] is JsonArray a && a.Any(n => n is JsonValue v && v.GetValueKind() == JsonValueKind.String &&
                                                          v.GetValue<string>().EndsWith("ForSequenceClassification", StringComparison.Ordinal));

    /// <summary>transformers' num_labels: the key, else the size of id2label, else 2.</summary>
    static int NumLabels(JsonObject raw) =>
        raw["num_labels"] is JsonValue n && n.TryGetValue<int>(out var count) ? count : raw["id2label"] is JsonObject labels ? labels.Count : 2;

    static void CheckVocabulary(SequenceClassifier classifier, IReadOnlyList<RewardPair> pairs, string path)
    {
        int vocab = classifier.Config.VocabSize;
        foreach (var p in pairs)
            if (p.ChosenIds.Concat(p.RejectedIds).FirstOrDefault(id => id >= vocab, -1) is var bad and >= 0)
                throw new InputError($"{p.Source}: the tokenizer gives id {bad}, outside the model's vocab_size {vocab}");
    }
}
