using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Data;

/// <summary>Where a preference record keeps its prompt.</summary>
public enum PreferenceLayout
{
    /// <summary>TRL's {"prompt", "chosen", "rejected"}.</summary>
    ExplicitPrompt,
    /// <summary>TRL's {"chosen", "rejected"}: the prompt is their shared beginning.</summary>
    ImplicitPrompt,
    /// <summary>OpenAI's DPO fine-tuning JSONL: {"input": {"messages", "tools"?}, "preferred_output", "non_preferred_output"}.</summary>
    OpenAi,
}

/// <summary>A preference dataset's format: its layout, and whether its text comes as chat messages.</summary>
public sealed record PreferenceFormat(PreferenceLayout Layout, bool Conversational)
{
    public override string ToString() => (Layout, Conversational) switch
    {
        (PreferenceLayout.ExplicitPrompt, false) => "preference {\"prompt\", \"chosen\", \"rejected\"} as strings",
        (PreferenceLayout.ExplicitPrompt, true) => "conversational preference {\"prompt\", \"chosen\", \"rejected\"} as message lists",
        (PreferenceLayout.ImplicitPrompt, false) => "preference with implicit prompt {\"chosen\", \"rejected\"} as strings",
        (PreferenceLayout.ImplicitPrompt, true) => "conversational preference with implicit prompt {\"chosen\", \"rejected\"} as message lists",
        _ => "OpenAI DPO {\"input\", \"preferred_output\", \"non_preferred_output\"}",
    };
}

/// <summary>A validated preference pair: what the DPO and reward trainers consume. Readers never go past this.</summary>
public abstract record PreferenceExample(string Source)
{
    /// <summary>
    /// The record's "margin" (TRL's RewardTrainer: how much the chosen reward should exceed the
    /// rejected), read only when the dataset is loaded with margins; null without one.
    /// </summary>
    public double? Margin { get; init; }
}

/// <summary>A prompt and two completions as strings (the implicit prompt already extracted).</summary>
public sealed record TextPreferenceExample(string Source, string Prompt, string Chosen, string Rejected) : PreferenceExample(Source);

/// <summary>Prompt messages and two completions as message lists, with the tools when given.</summary>
public sealed record ConversationPreferenceExample(string Source, JsonArray Prompt, JsonArray Chosen, JsonArray Rejected, JsonArray? Tools)
    : PreferenceExample(Source);

/// <summary>
/// Detects a preference record's format from its keys, as TRL does (maybe_extract_prompt: a
/// "prompt" whose kind, string or messages, differs from "chosen"'s is ignored and the prompt is
/// extracted), and validates it: every problem names the record's file, line or row, and field.
/// </summary>
public static class PreferenceFormats
{
    public static PreferenceFormat? Detect(JsonObject record)
    {
        if (record.ContainsKey("input") || record.ContainsKey("preferred_output") || record.ContainsKey("non_preferred_output"))
            return new(PreferenceLayout.OpenAi, true);
        if (!record.ContainsKey("chosen") || !record.ContainsKey("rejected")) return null;
        bool conversational = record["chosen"] is JsonArray;
        if (record.ContainsKey("prompt") && (record["prompt"] is JsonArray) == conversational)
            return new(PreferenceLayout.ExplicitPrompt, conversational);
        return new(PreferenceLayout.ImplicitPrompt, conversational);
    }

    public static PreferenceExample ToExample(DataRecord record, PreferenceFormat format)
    {
        var v = record.Value;
        switch (format.Layout)
        {
            case PreferenceLayout.OpenAi:
                return OpenAi(record);
            case PreferenceLayout.ExplicitPrompt when !format.Conversational:
                foreach (var field in new[] { "prompt", "chosen", "rejected" })
                    if (v[field] is JsonArray) throw record.Error(field, "is a message list, but this dataset's prompts and completions are strings");
                return new TextPreferenceExample(record.Location, RequiredString(record, "prompt"), RequiredString(record, "chosen"), RequiredString(record, "rejected"));
            case PreferenceLayout.ExplicitPrompt:
                foreach (var field in new[] { "prompt", "chosen", "rejected" })
                    if (v[field] is JsonValue) throw record.Error(field, "is a string, but this dataset's prompts and completions are message lists");
                return new ConversationPreferenceExample(record.Location, RecordFormats.Messages(record, "prompt"),
                    RecordFormats.Messages(record, "chosen"), RecordFormats.Messages(record, "rejected"), Tools(record, v["tools"], "tools"));
            case PreferenceLayout.ImplicitPrompt when !format.Conversational:
            {
                if (v["chosen"] is JsonArray) throw record.Error("chosen", "is a message list, but this dataset's completions are strings");
                var chosen = RequiredString(record, "chosen");
                var rejected = RequiredString(record, "rejected");
                int cut = SharedPrefix(chosen.Length, rejected.Length, i => chosen[i] == rejected[i], i => chosen[i] == ' ');
                return new TextPreferenceExample(record.Location, chosen[..cut], chosen[cut..], rejected[cut..]);
            }
            default:
            {
                if (v["chosen"] is not JsonArray && v["chosen"] is not null)
                    throw record.Error("chosen", "is a string, but this dataset's completions are message lists");
                var chosen = RecordFormats.Messages(record, "chosen");
                var rejected = RecordFormats.Messages(record, "rejected");
                int cut = SharedPrefix(chosen.Count, rejected.Count, i => JsonNode.DeepEquals(chosen[i], rejected[i]), _ => false);
                if (cut == 0)
                    throw record.Error("rejected", "shares no first message with \"chosen\": the implicit prompt is the messages they begin with");
                JsonArray Slice(JsonArray a, int from, int to) => new(a.Skip(from).Take(to - from).Select(m => m!.DeepClone()).ToArray());
                return new ConversationPreferenceExample(record.Location, Slice(chosen, 0, cut), Slice(chosen, cut, chosen.Count),
                    Slice(rejected, cut, rejected.Count), Tools(record, v["tools"], "tools"));
            }
        }
    }

    /// <summary>
    /// TRL's extract_prompt: the index of the first element where chosen and rejected differ
    /// (moved back over a space before it, for strings, so the completions start with the
    /// space); when one is a prefix of the other, the last index of the shorter one, as the
    /// Python loop leaves it.
    /// </summary>
    static int SharedPrefix(int chosenLength, int rejectedLength, Func<int, bool> same, Func<int, bool> isSpace)
    {
        int n = Math.Min(chosenLength, rejectedLength);
        for (int i = 0; i < n; i++)
            if (!same(i)) return i > 0 && isSpace(i - 1) ? i - 1 : i;
        return Math.Max(0, n - 1);
    }

    static PreferenceExample OpenAi(DataRecord record)
    {
        var v = record.Value;
        if (v["input"] is not JsonObject input)
            throw record.Error("input", v.ContainsKey("input") ? $"expected an object {{\"messages\": [...]}}, got {RecordFormats.Describe(v["input"])}" : "missing");
        var prompt = RecordFormats.Messages(record, "input.messages", input["messages"], input.ContainsKey("messages"));
        var tools = Tools(record, input["tools"], "input.tools");
        JsonArray Output(string field)
        {
            var messages = RecordFormats.Messages(record, field);
            for (int i = 0; i < messages.Count; i++)
                if (messages[i]!["role"]!.GetValue<string>() != "assistant")
                    throw record.Error($"{field}[{i}].role", "expected \"assistant\"");
            return messages;
        }
        return new ConversationPreferenceExample(record.Location, prompt, Output("preferred_output"), Output("non_preferred_output"), tools);
    }

    /// <summary>The record with its optional "margin": a finite number when present.</summary>
    public static PreferenceExample WithMargin(PreferenceExample example, DataRecord record) => record.Value["margin"] switch
    {
        null when !record.Value.ContainsKey("margin") => example,
        null => throw record.Error("margin", "is null"),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var m) && double.IsFinite(m) => example with { Margin = m },
        var other => throw record.Error("margin", $"expected a number, got {RecordFormats.Describe(other)}"),
    };

    static string RequiredString(DataRecord record, string field) => record.Value[field] switch
    {
        null => throw record.Error(field, record.Value.ContainsKey(field) ? "is null" : "missing"),
        JsonValue s when s.TryGetValue<string>(out var text) => text,
        var other => throw record.Error(field, $"expected a string, got {RecordFormats.Describe(other)}"),
    };

    /// <summary>Tool definitions: a list, or a JSON string holding one (as TRL accepts).</summary>
    static JsonArray? Tools(DataRecord record, JsonNode? node, string field)
    {
        switch (node)
        {
            case null:
                return null;
            case JsonArray tools:
                return tools;
            case JsonValue s when s.TryGetValue<string>(out var text):
                try
                {
                    if (JsonNode.Parse(text) is JsonArray parsed) return parsed;
                }
                catch (JsonException)
                {
                }
                throw record.Error(field, "expected a list of tool definitions (or a JSON string of one)");
            default:
                throw record.Error(field, $"expected a list of tool definitions, got {RecordFormats.Describe(node)}");
        }
    }
}

/// <summary>A preference dataset read, format-detected and validated before any training starts.</summary>
public sealed record PreferenceDataset(PreferenceFormat Format, IReadOnlyList<PreferenceExample> Examples, int Skipped)
{
    /// <summary>
    /// Reads and validates every record. Bad records fail the load, all of them listed (as
    /// <see cref="SftDataset.Load"/> does); with <paramref name="skipInvalid"/> they are dropped and counted.
    /// With <paramref name="margins"/> each record's optional "margin" is read (and validated) too.
    /// </summary>
    public static PreferenceDataset Load(string path, bool skipInvalid = false, bool margins = false)
    {
        Func<DataRecord, PreferenceFormat, PreferenceExample> toExample = margins
            ? (record, format) => PreferenceFormats.WithMargin(PreferenceFormats.ToExample(record, format), record)
            : PreferenceFormats.ToExample;
        var (format, examples, skipped) = DatasetLoader.Load(path, skipInvalid, PreferenceFormats.Detect,
            (a, b) => (a.Layout == PreferenceLayout.OpenAi) == (b.Layout == PreferenceLayout.OpenAi), toExample,
            "no preference fields: expected \"chosen\" and \"rejected\" (with or without \"prompt\"), or OpenAI's \"input\", \"preferred_output\" and \"non_preferred_output\"");
        return new PreferenceDataset(format, examples, skipped);
    }
}
