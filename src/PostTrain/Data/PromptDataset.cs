using System.Text.Json.Nodes;

namespace PostTrain.Data;

/// <summary>A prompt-only record: the prompt as text or messages, and the whole row for the reward functions.</summary>
public sealed record PromptExample(string Source, string? Text, JsonArray? Messages, JsonArray? Tools, JsonObject Row);

/// <summary>Whether a prompt dataset's prompts are strings or message lists.</summary>
public sealed record PromptFormat(bool Conversational)
{
    public override string ToString() => Conversational ? "conversational prompts (message lists)" : "text prompts";
}

/// <summary>
/// A prompt-only dataset (TRL's format for online RL): {"prompt": "..."} or {"prompt": [messages]},
/// any other fields (e.g. "answer") passed to the reward functions; <paramref name="promptField"/>
/// names another field as the prompt (GSM8K's "question"). Every record is validated before training.
/// </summary>
public sealed record PromptDataset(PromptFormat Format, IReadOnlyList<PromptExample> Examples, int Skipped)
{
    public static PromptDataset Load(string path, string promptField = "prompt", bool skipInvalid = false)
    {
        var (format, examples, skipped) = DatasetLoader.Load(path, skipInvalid,
            record => record.ContainsKey(promptField) ? new PromptFormat(record[promptField] is JsonArray) : null,
            (a, b) => a.Conversational == b.Conversational,
            (record, f) => ToExample(record, f, promptField),
            $"no \"{promptField}\" field (the prompt; --prompt-field names another)");
        return new PromptDataset(format, examples, skipped);
    }

    static PromptExample ToExample(DataRecord record, PromptFormat format, string field)
    {
        var node = record.Value[field];
        if (format.Conversational)
        {
            if (node is not JsonArray) throw record.Error(field, $"expected a message list, as in the rest of this dataset, got {RecordFormats.Describe(node)}");
            var messages = RecordFormats.Messages(record, field);
            if (messages[^1]!["role"]!.GetValue<string>() == "assistant")
                throw record.Error($"{field}[{messages.Count - 1}].role", "a prompt ends with a user (or tool) turn; the model writes the assistant's");
            return new PromptExample(record.Location, null, messages, record.Value["tools"] as JsonArray, record.Value);
        }
        if (node is JsonValue v && v.TryGetValue<string>(out var text))
        {
            if (text.Length == 0) throw record.Error(field, "is empty");
            return new PromptExample(record.Location, text, null, null, record.Value);
        }
        throw record.Error(field, node is null ? (record.Value.ContainsKey(field) ? "is null" : "missing") : $"expected a string, as in the rest of this dataset, got {RecordFormats.Describe(node)}");
    }
}
