using System.Text.Json.Nodes;

namespace PostTrain.Data;

/// <summary>TRL's dataset types, by the keys of a record.</summary>
public enum DatasetKind
{
    /// <summary>{"text"} or conversational {"messages"}.</summary>
    LanguageModeling,
    /// <summary>{"prompt", "completion"}, strings or message lists.</summary>
    PromptCompletion,
}

/// <summary>A dataset's format: its kind, and whether its text comes as chat messages.</summary>
public sealed record DatasetFormat(DatasetKind Kind, bool Conversational)
{
    public override string ToString() => (Kind, Conversational) switch
    {
        (DatasetKind.LanguageModeling, false) => "language modelling {\"text\"}",
        (DatasetKind.LanguageModeling, true) => "conversational {\"messages\"}",
        (DatasetKind.PromptCompletion, false) => "prompt-completion {\"prompt\", \"completion\"} as strings",
        _ => "conversational prompt-completion {\"prompt\", \"completion\"} as message lists",
    };
}

/// <summary>A validated SFT example: what a trainer consumes. Readers never go past this.</summary>
public abstract record SftExample(string Source);

/// <summary>Plain text: every token is trained.</summary>
public sealed record TextExample(string Source, string Text) : SftExample(Source);

/// <summary>A prompt and its completion as strings: only the completion is trained.</summary>
public sealed record PromptCompletionExample(string Source, string Prompt, string Completion) : SftExample(Source);

/// <summary>
/// A conversation (messages, and tools when given). For the conversational prompt-completion
/// form, <see cref="PromptLength"/> counts the messages that belong to the prompt.
/// </summary>
public sealed record ConversationExample(string Source, JsonArray Messages, JsonArray? Tools, int PromptLength = 0)
    : SftExample(Source);

/// <summary>
/// Detects a dataset's format from its records' keys, as TRL does, and validates each record
/// against it: every problem names the record's file, line or row, and the field.
/// </summary>
public static class RecordFormats
{
    static readonly string[] Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>The format of a record, or null when its keys fit none.</summary>
    public static DatasetFormat? Detect(JsonObject record)
    {
        if (record.ContainsKey("messages")) return new(DatasetKind.LanguageModeling, true);
        if (record.ContainsKey("prompt") && record.ContainsKey("completion"))
            return new(DatasetKind.PromptCompletion, record["prompt"] is JsonArray);
        if (record.ContainsKey("text")) return new(DatasetKind.LanguageModeling, false);
        return null;
    }

    /// <summary>Converts a record to an SFT example of the dataset's format, or throws naming the field.</summary>
    public static SftExample ToSftExample(DataRecord record, DatasetFormat format)
    {
        var v = record.Value;
        switch (format.Kind, format.Conversational)
        {
            case (DatasetKind.LanguageModeling, false):
                return new TextExample(record.Location, RequiredString(record, "text"));
            case (DatasetKind.PromptCompletion, false):
                if (v["prompt"] is JsonArray) throw record.Error("prompt", "is a message list, but this dataset's prompts are strings");
                return new PromptCompletionExample(record.Location, RequiredString(record, "prompt"), RequiredString(record, "completion"));
            case (DatasetKind.LanguageModeling, true):
            {
                var messages = Messages(record, "messages");
                if (!messages.Any(m => m!["role"]!.GetValue<string>() == "assistant"))
                    throw record.Error("messages", "has no assistant message to train on");
                return new ConversationExample(record.Location, messages, Tools(record));
            }
            default:
            {
                if (v["prompt"] is not JsonArray) throw record.Error("prompt", "expected a message list, as in the rest of this dataset");
                var prompt = Messages(record, "prompt");
                var completion = Messages(record, "completion");
                if (completion.Count == 0 || completion.Any(m => m!["role"]!.GetValue<string>() != "assistant"))
                    throw record.Error("completion", "expected assistant messages");
                var all = new JsonArray(prompt.Concat(completion).Select(m => m!.DeepClone()).ToArray());
                return new ConversationExample(record.Location, all, Tools(record), prompt.Count);
            }
        }
    }

    static string RequiredString(DataRecord record, string field) => record.Value[field] switch
    {
        null => throw record.Error(field, record.Value.ContainsKey(field) ? "is null" : "missing"),
        JsonValue s when s.TryGetValue<string>(out var text) => text,
        var other => throw record.Error(field, $"expected a string, got {Describe(other)}"),
    };

    /// <summary>A list of chat messages: {"role", "content"} with optional tool_calls, reasoning_content, name, weight.</summary>
    public static JsonArray Messages(DataRecord record, string field) =>
        Messages(record, field, record.Value[field], record.Value.ContainsKey(field));

    /// <summary>A list of chat messages found at <paramref name="node"/>; errors name <paramref name="field"/> (a path such as "input.messages").</summary>
    public static JsonArray Messages(DataRecord record, string field, JsonNode? node, bool present)
    {
        if (node is null) throw record.Error(field, present ? "is null" : "missing");
        if (node is not JsonArray messages) throw record.Error(field, $"expected a list of messages, got {Describe(node)}");
        if (messages.Count == 0) throw record.Error(field, "is empty");
        for (int i = 0; i < messages.Count; i++)
        {
            var at = $"{field}[{i}]";
            if (messages[i] is not JsonObject m) throw record.Error(at, $"expected a message object, got {Describe(messages[i])}");
            if (m["role"] is not JsonValue r || !r.TryGetValue<string>(out var role))
                throw record.Error($"{at}.role", m.ContainsKey("role") ? "expected a string" : "missing");
            if (!Roles.Contains(role))
                throw record.Error($"{at}.role", $"unknown role '{role}' (expected one of {string.Join(", ", Roles)})");
            bool hasToolCalls = m["tool_calls"] is JsonArray { Count: > 0 };
            switch (m["content"])
            {
                case null when hasToolCalls && role == "assistant":
                    break;
                case null:
                    throw record.Error($"{at}.content", m.ContainsKey("content") ? "is null" : "missing");
                case JsonValue c when c.TryGetValue<string>(out _):
                    break;
                case JsonArray parts:
                    for (int p = 0; p < parts.Count; p++)
                        if (parts[p] is not JsonObject part || part["type"]?.GetValue<string>() is not { } type)
                            throw record.Error($"{at}.content[{p}]", "expected a content part {\"type\": ...}");
                        else if (type == "text" && part["text"] is not JsonValue)
                            throw record.Error($"{at}.content[{p}].text", "missing");
                    break;
                case var other:
                    throw record.Error($"{at}.content", $"expected a string or a list of content parts, got {Describe(other)}");
            }
            if (m.ContainsKey("tool_calls") && m["tool_calls"] is not (null or JsonArray))
                throw record.Error($"{at}.tool_calls", "expected a list");
            if (m["weight"] is { } w && !(w is JsonValue wv && wv.TryGetValue<int>(out var wi) && wi is 0 or 1))
                throw record.Error($"{at}.weight", "expected 0 or 1");
        }
        return messages;
    }

    static JsonArray? Tools(DataRecord record) => record.Value["tools"] switch
    {
        null => null,
        JsonArray tools => tools,
        var other => throw record.Error("tools", $"expected a list of tool definitions, got {Describe(other)}"),
    };

    internal static string Describe(JsonNode? node) => node switch
    {
        null => "null",
        JsonArray => "a list",
        JsonObject => "an object",
        JsonValue v when v.TryGetValue<string>(out _) => "a string",
        JsonValue v when v.TryGetValue<bool>(out _) => "a boolean",
        _ => "a number",
    };
}

/// <summary>An SFT dataset read, format-detected and validated before any training starts.</summary>
public sealed record SftDataset(DatasetFormat Format, IReadOnlyList<SftExample> Examples, int Skipped)
{
    /// <summary>How many bad records an error message lists before it summarises the rest.</summary>
    public const int ReportedErrors = 20;

    /// <summary>
    /// Reads and validates every record. Bad records fail the load, all of them listed (one
    /// per line, the first <see cref="ReportedErrors"/>); with <paramref name="skipInvalid"/>
    /// they are dropped and counted instead.
    /// </summary>
    public static SftDataset Load(string path, bool skipInvalid = false)
    {
        var (format, examples, skipped) = DatasetLoader.Load(path, skipInvalid, RecordFormats.Detect, (a, b) => a.Kind == b.Kind,
            RecordFormats.ToSftExample, "no known fields: expected \"text\", \"messages\", or \"prompt\" with \"completion\"");
        return new SftDataset(format, examples, skipped);
    }
}

/// <summary>
/// What every dataset load shares: the format is detected from the first record, every record
/// is validated (all bad ones are reported together, or dropped and counted with skipInvalid),
/// and a record of another kind than the first is an error naming both.
/// </summary>
public static class DatasetLoader
{
    public static (TFormat Format, List<TExample> Examples, int Skipped) Load<TFormat, TExample>(string path, bool skipInvalid,
        Func<JsonObject, TFormat?> detect, Func<TFormat, TFormat, bool> sameKind, Func<DataRecord, TFormat, TExample> toExample,
        string noFormatMessage) where TFormat : class
    {
        TFormat? format = null;
        string? detectedAt = null;
        var examples = new List<TExample>();
        var errors = new List<string>();
        foreach (var record in DatasetReader.Read(path))
        {
            try
            {
                if (format is null)
                {
                    format = detect(record.Value) ?? throw record.Error(null, noFormatMessage);
                    detectedAt = record.Location;
                }
                else if (detect(record.Value) is { } own && !sameKind(own, format))
                {
                    throw record.Error(null, $"is {own}, but the dataset is {format} (detected from {detectedAt})");
                }
                examples.Add(toExample(record, format));
            }
            catch (InputError e)
            {
                errors.Add(e.Message);
            }
        }
        if (errors.Count > 0 && !skipInvalid)
            throw new DatasetError(errors);
        if (examples.Count == 0)
            throw new InputError($"{path}: no valid records");
        return (format!, examples, errors.Count);
    }
}

/// <summary>Every bad record of a dataset, one message each.</summary>
public sealed class DatasetError(IReadOnlyList<string> errors) : InputError(Summary(errors))
{
    public IReadOnlyList<string> Errors { get; } = errors;

    static string Summary(IReadOnlyList<string> errors)
    {
        var shown = errors.Take(SftDataset.ReportedErrors);
        var text = string.Join("\n", shown);
        if (errors.Count > SftDataset.ReportedErrors)
            text += $"\n... and {errors.Count - SftDataset.ReportedErrors} more bad records";
        return text + (errors.Count > 1 ? $"\n{errors.Count} bad records (use --skip-invalid to drop them)" : "");
    }
}
