using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet.Serialization;

namespace PostTrain.Data;

/// <summary>
/// Reads dataset records from the files Hugging Face datasets are published as: JSON Lines
/// (.jsonl, and .json files that hold one object per line, as datasets' to_json writes them),
/// JSON arrays (.json) and Parquet (.parquet); a path may be one file or a directory of shards,
/// read in name order. Records stream one at a time; every record knows its file and line or row.
/// </summary>
public static class DatasetReader
{
    static readonly string[] Extensions = [".jsonl", ".json", ".parquet"];

    public static IEnumerable<DataRecord> Read(string path)
    {
        if (Directory.Exists(path))
        {
            var files = Directory.EnumerateFiles(path)
                .Where(f => Extensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new InputError($"{path}: no .jsonl, .json or .parquet files in this directory");
            return files.SelectMany(ReadFile);
        }
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
        return ReadFile(path);
    }

    static IEnumerable<DataRecord> ReadFile(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".parquet" => ReadParquet(path),
        ".json" when StartsWithArray(path) => ReadJsonArray(path),
        ".json" or ".jsonl" => ReadJsonLines(path),
        var ext => throw new InputError($"{path}: unsupported file type '{ext}' (expected .jsonl, .json or .parquet)"),
    };

    public static IEnumerable<DataRecord> ReadJsonLines(string path)
    {
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
        return ReadJsonLinesOf(path);
    }

    static IEnumerable<DataRecord> ReadJsonLinesOf(string path)
    {
        foreach (var (number, text) in TextLines.Read(path))
        {
            if (string.IsNullOrWhiteSpace(text)) continue;
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new InputError($"{path}:{number}: not valid JSON: {FirstLine(e.Message)}");
            }
            if (node is not JsonObject o) throw new InputError($"{path}:{number}: expected a JSON object");
            CheckText(o, $"{path}:{number}");
            yield return new DataRecord(path, number, o);
        }
    }

    /// <summary>
    /// Every string (and property name) of a parsed record must be valid Unicode: JSON's \u escapes
    /// can spell a lone UTF-16 surrogate ("\ud800"), which System.Text.Json parses but cannot hand
    /// out as a string. Checked once when a record is read, so every reader gets a named error.
    /// </summary>
    public static void CheckText(JsonNode? node, string location)
    {
        if (InvalidText(node, "") is { } field)
            throw new InputError($"{location}: {(field.Length == 0 ? "" : field + ": ")}not valid Unicode text (a lone UTF-16 surrogate such as \"\\ud800\")");
    }

    static string? InvalidText(JsonNode? node, string path)
    {
        switch (node)
        {
            case JsonObject o:
                List<KeyValuePair<string, JsonNode?>> members;
                try { members = o.ToList(); }
                catch (InvalidOperationException) { return path.Length == 0 ? "a property name" : path + ": a property name"; }
                foreach (var (k, v) in members)
                    if (InvalidText(v, path.Length == 0 ? k : $"{path}.{k}") is { } bad) return bad;
                return null;
            case JsonArray a:
                for (int i = 0; i < a.Count; i++)
                    if (InvalidText(a[i], $"{path}[{i}]") is { } bad) return bad;
                return null;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                try { v.GetValue<string>(); }
                catch (InvalidOperationException) { return path; }
                return null;
            default:
                return null;
        }
    }

    static bool StartsWithArray(string path)
    {
        using var reader = new StreamReader(path, Encoding.UTF8);
        int c;
        while ((c = reader.Read()) >= 0)
            if (!char.IsWhiteSpace((char)c)) return c == '[';
        return false;
    }

    /// <summary>A JSON array of objects; each record's line is the line its object starts on.</summary>
    static IEnumerable<DataRecord> ReadJsonArray(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int start = TextLines.HasBom(bytes) ? 3 : 0; // a UTF-8 byte order mark is skipped, as for JSON Lines
        if (TextLines.FirstInvalidUtf8(bytes.AsSpan(start)) is int bad and >= 0)
            throw new InputError($"{path}:{1 + bytes.AsSpan(0, start + bad).Count((byte)'\n')}: not UTF-8: byte 0x{bytes[start + bad]:X2} (save the file as UTF-8)");
        var records = new List<DataRecord>();
        var reader = new Utf8JsonReader(bytes.AsSpan(start), new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip });
        long line = 1;
        int scanned = 0;
        long LineAt(long offset)
        {
            for (; scanned < offset; scanned++) if (bytes[scanned] == '\n') line++;
            return line;
        }
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartArray)
                throw new InputError($"{path}: expected a JSON array of objects");
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                long at = LineAt(start + reader.TokenStartIndex);
                if (reader.TokenType != JsonTokenType.StartObject)
                    throw new InputError($"{path}:{at}: expected a JSON object");
                var node = (JsonObject)JsonNode.Parse(ref reader)!;
                CheckText(node, $"{path}:{at}");
                records.Add(new DataRecord(path, at, node));
            }
        }
        catch (JsonException e)
        {
            throw new InputError($"{path}:{(e.LineNumber ?? 0) + 1}: not valid JSON: {FirstLine(e.Message)}");
        }
        return records;
    }

    static IEnumerable<DataRecord> ReadParquet(string path)
    {
        int groups;
        try
        {
            using var probe = File.OpenRead(path);
            var reader = Parquet.ParquetReader.CreateAsync(probe).GetAwaiter().GetResult();
            groups = reader.RowGroupCount;
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or Parquet.ParquetException)
        {
            throw new InputError($"{path}: not a readable Parquet file: {FirstLine(e.Message)}");
        }
        long row = 0;
        for (int g = 0; g < groups; g++)
        {
            IList<Dictionary<string, object>> data;
            using (var stream = File.OpenRead(path))
                data = ParquetSerializer.DeserializeUntypedAsync(stream, null, g).GetAwaiter().GetResult().Data;
            foreach (var dict in data)
            {
                row++;
                JsonObject value;
                try
                {
                    value = (JsonObject)ToJson(dict)!;
                }
                catch (DecoderFallbackException)
                {
                    throw new InputError($"{path}: row {row}: a binary value is not UTF-8 text");
                }
                yield return new DataRecord(path, row, value, IsRow: true);
            }
        }
    }

    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Parquet values (nested dictionaries, lists, primitives) as JSON.</summary>
    static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        IDictionary d => new JsonObject(d.Keys.Cast<object>().Select(k =>
            new KeyValuePair<string, JsonNode?>(k.ToString()!, ToJson(d[k])))),
        // A binary column read as text: strictly (string columns are decoded by Parquet.Net itself).
        byte[] bytes => JsonValue.Create(StrictUtf8.GetString(bytes)),
        IEnumerable list => new JsonArray(list.Cast<object?>().Select(ToJson).ToArray()),
        DateTime t => JsonValue.Create(t.ToString("O")),
        DateTimeOffset t => JsonValue.Create(t.ToString("O")),
        float f => JsonValue.Create(f),
        double x => JsonValue.Create(x),
        decimal m => JsonValue.Create(m),
        IConvertible c => JsonValue.Create(Convert.ToInt64(c)),
        var other => JsonValue.Create(other.ToString()),
    };

    /// <summary>The error for an input file that holds no records.</summary>
    public static string NoRecords(string path) => $"{path}: no records (the file is empty or holds only blank lines)";

    static string FirstLine(string s) => s.Split('\n')[0];
}
