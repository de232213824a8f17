using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Data;

/// <summary>One record of a JSONL file with the line it came from.</summary>
public sealed record JsonLine(string File, long Line, JsonObject Value)
{
    public InputError Error(string field, string message) => InputError.At(File, Line, field, message);
}

/// <summary>Reads JSON Lines: one JSON object per line; blank lines are skipped.</summary>
public static class JsonLines
{
    public static IEnumerable<JsonLine> Read(string path)
    {
        if (!System.IO.File.Exists(path)) throw new InputError($"{path}: file not found");
        using var reader = new StreamReader(path);
        long number = 0;
        while (reader.ReadLine() is { } text)
        {
            number++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw InputError.At(path, number, null, $"not valid JSON: {e.Message.Split('\n')[0]}");
            }
            if (node is not JsonObject o) throw InputError.At(path, number, null, "expected a JSON object");
            yield return new JsonLine(path, number, o);
        }
    }

    /// <summary>A required array of integer token ids, each in [0, vocabSize).</summary>
    public static int[] TokenIds(JsonLine line, string field, int vocabSize)
    {
        if (!line.Value.TryGetPropertyValue(field, out var node) || node is null) throw line.Error(field, "missing");
        if (node is not JsonArray array) throw line.Error(field, "expected an array of token ids");
        var ids = new int[array.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (array[i] is not JsonValue v || !v.TryGetValue<long>(out var id))
                throw line.Error($"{field}[{i}]", $"expected an integer token id, got {array[i]?.ToJsonString() ?? "null"}");
            if (id < 0 || id >= vocabSize)
                throw line.Error($"{field}[{i}]", $"token id {id} is outside the vocabulary (0..{vocabSize - 1})");
            ids[i] = (int)id;
        }
        return ids;
    }
}
