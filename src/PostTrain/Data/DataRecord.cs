using System.Text.Json.Nodes;

namespace PostTrain.Data;

/// <summary>
/// One record of a dataset file, with where it came from: a line of a JSONL file, the line an
/// element of a JSON array starts on, or a row of a Parquet file (1-based).
/// </summary>
public sealed record DataRecord(string File, long Line, JsonObject Value, bool IsRow = false)
{
    /// <summary>"FILE:LINE" or "FILE: row N".</summary>
    public string Location => IsRow ? $"{File}: row {Line}" : $"{File}:{Line}";

    /// <summary>An error naming this record's file, line or row, and the field.</summary>
    public InputError Error(string? field, string message) =>
        new(field is null ? $"{Location}: {message}" : $"{Location}: {field}: {message}");

    /// <summary>A required array of integer token ids, each in [0, vocabSize).</summary>
    public int[] TokenIds(string field, int vocabSize)
    {
        if (!Value.TryGetPropertyValue(field, out var node) || node is null) throw Error(field, "missing");
        if (node is not JsonArray array) throw Error(field, "expected an array of token ids");
        var ids = new int[array.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (array[i] is not JsonValue v || !v.TryGetValue<long>(out var id))
                throw Error($"{field}[{i}]", $"expected an integer token id, got {array[i]?.ToJsonString() ?? "null"}");
            if (id < 0 || id >= vocabSize)
                throw Error($"{field}[{i}]", $"token id {id} is outside the vocabulary (0..{vocabSize - 1})");
            ids[i] = (int)id;
        }
        return ids;
    }
}
