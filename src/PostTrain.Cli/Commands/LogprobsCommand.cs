using System.CommandLine;
using System.Text.Json;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Tokenization;
using System.Text.Json.Nodes;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain logprobs`: per-token log-probabilities and mean NLL of sequences.</summary>
public static class LogprobsCommand
{
    public static Command Create()
    {
        var model = new ModelArgs("Model directory (Hugging Face layout)");
        var input = new Option<string>("--input") { Description = "JSONL file: one {\"input_ids\": [...]} per line", Required = true };
        var output = new Option<string?>("--output") { Description = "Output JSONL file (default: standard output)" };
        var batchSize = new Option<int>("--batch-size") { Description = "Sequences per forward pass", DefaultValueFactory = _ => 8 };

        var command = new Command("logprobs", "Score sequences: the log-probability of every token given those before it")
        {
            input, output, batchSize,
        };
        model.AddTo(command);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            int batch = result.GetValue(batchSize);
            if (batch <= 0) throw new InputError("--batch-size: must be positive");
            var (modelDir, adapterDir) = model.Read(result);
            var dtype = model.ReadDtype(result);
            var templateVariables = model.ReadTemplateVariables(result);
            var config = HfCheckpoint.LoadConfig(modelDir);
            var inputPath = result.GetValue(input)!;

            // Validate every line before any work: a bad line 9,000 fails before scoring starts.
            var sequences = new List<int[]>();
            HfTokenizer? tokenizer = null;
            ChatTemplate? template = null;
            foreach (var line in DatasetReader.ReadJsonLines(inputPath))
            {
                int[] ids;
                string field;
                if (line.Value.ContainsKey("input_ids"))
                {
                    field = "input_ids";
                    // The length first: a 10 MB line is rejected before its ids are checked one by one.
                    if (line.Value["input_ids"] is JsonArray array && array.Count > config.MaxPositionEmbeddings)
                        throw TooLong(line, field, array.Count, config.MaxPositionEmbeddings);
                    ids = line.TokenIds("input_ids", config.VocabSize);
                }
                else if (line.Value["text"] is JsonValue text && text.TryGetValue<string>(out var s))
                {
                    field = "text";
                    tokenizer ??= HfTokenizer.FromDirectory(modelDir);
                    ids = tokenizer.Encode(s, addSpecialTokens: true);
                    if (ids.Any(id => id >= config.VocabSize))
                        throw line.Error("text", $"tokenizes to ids beyond the model's vocabulary ({config.VocabSize})");
                }
                else if (line.Value.ContainsKey("messages"))
                {
                    // A whole conversation as the chat template renders it (no generation prompt).
                    field = "messages";
                    var messages = RecordFormats.Messages(line, "messages");
                    template ??= ChatTemplate.FromModelDirectory(modelDir);
                    tokenizer ??= HfTokenizer.FromDirectory(modelDir);
                    ids = tokenizer.Encode(ChatPrompt.Render(template, messages, line.Value["tools"] as JsonArray, templateVariables, addGenerationPrompt: false, $"{line.Location}: messages"));
                    if (ids.Any(id => id >= config.VocabSize))
                        throw line.Error("messages", $"tokenizes to ids beyond the model's vocabulary ({config.VocabSize})");
                }
                else
                    throw line.Error(line.Value.ContainsKey("text") ? "text" : "input_ids", line.Value.ContainsKey("text") ? "expected a string" : "missing (give input_ids, text or messages)");
                if (ids.Length == 0) throw line.Error(field, "empty sequence");
                // Scoring a sequence longer than the model's positions cannot be done (and a
                // 10 MB line would exhaust memory): rejected here, as generate rejects such a prompt.
                if (ids.Length > config.MaxPositionEmbeddings) throw TooLong(line, field, ids.Length, config.MaxPositionEmbeddings);
                sequences.Add(ids);
            }
            if (sequences.Count == 0) throw new InputError(DatasetReader.NoRecords(inputPath));

            using var lm = ModelArgs.Load(modelDir, adapterDir, dtype);
            var scores = TokenScorer.LogProbs(lm, sequences, batch);
            OutputFile.Write(result.GetValue(output), stdout, writer =>
            {
                for (int i = 0; i < sequences.Count; i++) WriteLine(writer, sequences[i], scores[i]);
            });
            return 0;
        }));
        return command;
    }

    static InputError TooLong(DataRecord line, string field, int tokens, int context) =>
        line.Error(field, $"{tokens} tokens, more than the model's context of {context} (max_position_embeddings)");

    static void WriteLine(TextWriter writer, int[] ids, float[] logProbs)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("input_ids");
            foreach (var id in ids) json.WriteNumberValue(id);
            json.WriteEndArray();
            json.WriteStartArray("logprobs");
            foreach (var lp in logProbs)
                if (float.IsNaN(lp)) json.WriteNullValue(); else json.WriteNumberValue(lp);
            json.WriteEndArray();
            var nll = TokenScorer.MeanNll(logProbs);
            if (double.IsNaN(nll)) json.WriteNull("nll"); else json.WriteNumber("nll", nll);
            json.WriteEndObject();
        }
        writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
