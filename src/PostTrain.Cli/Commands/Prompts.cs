using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>Turns an input record into prompt token ids.</summary>
static class Prompts
{
    public static (string Field, JsonNode Value, int[] Ids) Read(DataRecord line, HfTokenizer? tokenizer, Func<ChatTemplate>? template, int vocabSize,
        IReadOnlyDictionary<string, object?>? templateVariables)
    {
        var o = line.Value;
        var fields = new[] { "prompt", "messages", "prompt_ids" }.Where(o.ContainsKey).ToArray();
        if (fields.Length != 1)
            throw line.Error(null, fields.Length == 0
                ? "expected one of \"prompt\" (text), \"messages\" (a conversation) or \"prompt_ids\" (token ids)"
                : $"give only one of {string.Join(", ", fields.Select(f => $"\"{f}\""))}");
        var field = fields[0];
        var value = o[field]?.DeepClone() ?? throw line.Error(field, "must not be null");
        switch (field)
        {
            case "prompt_ids":
                return (field, value, line.TokenIds(field, vocabSize));
            case "prompt":
                if (value is not JsonValue v || !v.TryGetValue<string>(out var text)) throw line.Error(field, "expected a string");
                // As transformers' tokenizer(text): the post-processor's special tokens (Llama 3's BOS) are added.
                return (field, value, tokenizer!.Encode(text, addSpecialTokens: true));
            default:
                var messages = RecordFormats.Messages(line, field);
                return (field, value, tokenizer!.Encode(ChatPrompt.Render(template!(), messages, line.Value["tools"] as JsonArray, templateVariables, addGenerationPrompt: true, $"{line.Location}: {field}")));
        }
    }
}
