using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain generate`: completions for a JSONL file of prompts, with a KV cache, batched.
/// Input lines: {"prompt": "raw text"}, {"messages": [...]} (the chat template with
/// add_generation_prompt) or {"prompt_ids": [...]}. Output lines, in input order: the prompt
/// field as given, and "completions": [{"text", "token_ids", "logprobs", "finish_reason"}].
/// </summary>
public static class GenerateCommand
{
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var model = new ModelArgs("Model directory (Hugging Face layout, with tokenizer files for text prompts)");
        var input = new Option<string>("--input") { Description = "JSONL: one {\"prompt\": TEXT}, {\"messages\": [...]} or {\"prompt_ids\": [...]} per line", Required = true };
        var output = new Option<string?>("--output") { Description = "Output JSONL file (default: standard output)" };
        var sampling = SamplingCli.Create();
        var n = new Option<int>("--n") { Description = "Completions per prompt (they share one prefill)", DefaultValueFactory = _ => 1 };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences (prompts x n) decoded together", DefaultValueFactory = _ => 16 };

        var command = new Command("generate", "Generate completions for prompts (KV-cache decoding; greedy or sampled as transformers' generate)")
        {
            input, output, n, batchSize,
        };
        model.AddTo(command);
        sampling.AddTo(command);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var (modelDir, adapterDir) = model.Read(result);
            var dtype = model.ReadDtype(result);
            var templateVariables = model.ReadTemplateVariables(result);
            var config = HfCheckpoint.LoadConfig(modelDir);
            var generationConfig = GenerationConfig.Load(modelDir, config);
            var options = sampling.Read(result, generationConfig) with
            {
                N = result.GetValue(n),
                BatchSize = result.GetValue(batchSize),
            };
            options.Validate();

            // Read and check every line before loading the model or generating anything.
            var inputPath = result.GetValue(input)!;
            var lines = DatasetReader.ReadJsonLines(inputPath).ToList();
            if (lines.Count == 0) throw new InputError(DatasetReader.NoRecords(inputPath));
            bool needsText = options.Stop.Count > 0 || lines.Any(l => l.Value.ContainsKey("prompt") || l.Value.ContainsKey("messages"));
            var tokenizer = needsText ? Tokenizer(modelDir, options.Stop.Count > 0 ? "--stop" : null) : null;
            ChatTemplate? template = null;
            ChatTemplate Template() => template ??= ChatTemplate.FromModelDirectory(modelDir);
            var prompts = new List<(string Field, JsonNode Value, int[] Ids)>();
            foreach (var line in lines)
            {
                var prompt = Prompts.Read(line, tokenizer, Template, config.VocabSize, templateVariables);
                if (prompt.Ids.Length == 0) throw line.Error(prompt.Field, "the prompt has no tokens");
                if (prompt.Ids.Length > config.MaxPositionEmbeddings)
                    throw line.Error(prompt.Field, $"the prompt has {prompt.Ids.Length} tokens, more than the model's context of {config.MaxPositionEmbeddings} (max_position_embeddings)");
                foreach (var id in prompt.Ids)
                    if (id < 0 || id >= config.VocabSize)
                        throw line.Error(prompt.Field, $"token id {id} is outside the model's vocabulary (0..{config.VocabSize - 1})");
                prompts.Add(prompt);
            }

            using var lm = ModelArgs.Load(modelDir, adapterDir, dtype);
            var engine = new GenerationEngine(lm, tokenizer is null ? null : ids => tokenizer.Decode(ids, skipSpecialTokens: true));
            var completions = prompts.Count == 0 ? [] : engine.Generate(prompts.Select(p => p.Ids).ToList(), options);
            OutputFile.Write(result.GetValue(output), stdout, writer =>
            {
                for (int i = 0; i < prompts.Count; i++) writer.WriteLine(Line(prompts[i].Field, prompts[i].Value, completions[i]));
            });
            return 0;
        }));
        return command;
    }

    /// <summary>The model directory's tokenizer; an error naming what needed it when there is none.</summary>
    internal static HfTokenizer Tokenizer(string modelDir, string? neededBy)
    {
        if (!File.Exists(Path.Combine(modelDir, "tokenizer.json")))
            throw new InputError($"{modelDir}: no tokenizer.json: {neededBy ?? "text prompts"} need the model's tokenizer (give prompt_ids instead)");
        return HfTokenizer.FromDirectory(modelDir);
    }

    static string Line(string field, JsonNode prompt, Completion[] completions)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, WriterOptions))
        {
            json.WriteStartObject();
            json.WritePropertyName(field);
            prompt.WriteTo(json);
            json.WriteStartArray("completions");
            foreach (var c in completions)
            {
                json.WriteStartObject();
                if (c.Text is null) json.WriteNull("text"); else json.WriteString("text", c.Text);
                json.WriteStartArray("token_ids");
                foreach (var id in c.TokenIds) json.WriteNumberValue(id);
                json.WriteEndArray();
                json.WriteStartArray("logprobs");
                foreach (var lp in c.LogProbs)
                    if (float.IsFinite(lp)) json.WriteNumberValue(lp); else json.WriteNullValue();
                json.WriteEndArray();
                json.WriteString("finish_reason", c.FinishReason);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
