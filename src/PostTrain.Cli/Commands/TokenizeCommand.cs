using System.CommandLine;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Cli.Commands;

/// <summary>
/// `posttrain tokenize --model DIR (--text TEXT | --input FILE.jsonl) [--output FILE.jsonl]
/// [--add-special-tokens] [--decode [--skip-special-tokens]]`.
/// Encode: lines {"text": ...} in, {"ids": [...], "tokens": [...]} out. Decode: lines {"ids": [...]}
/// in, {"text": ...} out. With --text, one line (for --decode, TEXT is a JSON array of ids or ids
/// separated by spaces or commas).
/// </summary>
public static class TokenizeCommand
{
    static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "Model directory holding tokenizer.json (and tokenizer_config.json)", Required = true };
        var text = new Option<string?>("--text") { Description = "Text to encode (or ids to decode with --decode)" };
        var input = new Option<string?>("--input") { Description = "JSONL input: {\"text\": ...} lines (or {\"ids\": [...]} with --decode)" };
        var output = new Option<string?>("--output") { Description = "JSONL output file (default: stdout)" };
        var addSpecial = new Option<bool>("--add-special-tokens") { Description = "Apply the post-processor's special tokens (e.g. Llama 3's BOS)" };
        var decode = new Option<bool>("--decode") { Description = "Decode ids to text instead of encoding" };
        var skipSpecial = new Option<bool>("--skip-special-tokens") { Description = "With --decode, leave special tokens out of the text" };
        var cmd = new Command("tokenize", "Encode text to token ids, or decode ids to text, with a Hugging Face tokenizer")
        {
            model, text, input, output, addSpecial, decode, skipSpecial,
        };
        cmd.SetAction(result => Verbs.Guard(result, stdout => Run(
            result.GetValue(model)!, result.GetValue(text), result.GetValue(input), result.GetValue(output),
            result.GetValue(addSpecial), result.GetValue(decode), result.GetValue(skipSpecial), stdout)));
        return cmd;
    }

    static int Run(string modelDir, string? text, string? input, string? output, bool addSpecial, bool decode, bool skipSpecial, TextWriter stdout)
    {
        if ((text is null) == (input is null)) throw new InputError("tokenize: give exactly one of --text and --input");
        if (input is not null && !File.Exists(input)) throw InputError.FileNotFound(input);
        if (!Directory.Exists(modelDir)) throw new InputError($"{modelDir}: model directory not found");
        var tok = HfTokenizer.FromDirectory(modelDir);

        // Written to a temporary file and renamed (OutputFile): an error leaves no partial output.
        OutputFile.Write(output, stdout, writer =>
        {
            if (text is not null)
            {
                writer.WriteLine(decode ? DecodeLine(tok, ParseIdsText(text), skipSpecial, "--text", null) : EncodeLine(tok, text, addSpecial));
                return;
            }
            long count = 0;
            foreach (var record in DatasetReader.ReadJsonLines(input!))
            {
                writer.WriteLine(decode
                    ? DecodeLine(tok, ReadIds(record), skipSpecial, input!, record.Line)
                    : EncodeLine(tok, ReadText(record), addSpecial));
                count++;
            }
            if (count == 0) throw new InputError(DatasetReader.NoRecords(input!));
        });
        return 0;
    }

    static string EncodeLine(HfTokenizer tok, string text, bool addSpecial)
    {
        var ids = tok.Encode(text, addSpecial);
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteStartArray("ids");
            foreach (var id in ids) w.WriteNumberValue(id);
            w.WriteEndArray();
            w.WriteStartArray("tokens");
            foreach (var id in ids) w.WriteStringValue(tok.IdToToken(id));
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    static string DecodeLine(HfTokenizer tok, int[] ids, bool skipSpecial, string file, long? line)
    {
        foreach (var id in ids)
            if (tok.IdToToken(id) is null)
                throw InputError.At(file, line, "ids", $"id {id} is outside the vocabulary (size {tok.VocabSize})");
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, WriterOptions))
        {
            w.WriteStartObject();
            w.WriteString("text", tok.Decode(ids, skipSpecial));
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    static string ReadText(DataRecord record)
    {
        if (!record.Value.TryGetPropertyValue("text", out var t) || t is null) throw record.Error("text", "missing");
        if (t is not JsonValue v || !v.TryGetValue<string>(out var s))
            throw record.Error("text", $"expected a string, got {t.GetValueKind().ToString().ToLowerInvariant()}");
        return s;
    }

    static int[] ReadIds(DataRecord record)
    {
        if (!record.Value.TryGetPropertyValue("ids", out var a) || a is null) throw record.Error("ids", "missing");
        using var doc = JsonDocument.Parse(a.ToJsonString());
        return IdsFrom(doc.RootElement, record.File, record.Line);
    }

    static int[] IdsFrom(JsonElement a, string file, long? lineNo)
    {
        if (a.ValueKind != JsonValueKind.Array) throw InputError.At(file, lineNo, "ids", "expected an array of integers");
        var ids = new int[a.GetArrayLength()];
        int i = 0;
        foreach (var e in a.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out var id))
                throw InputError.At(file, lineNo, "ids", $"element {i} is not an integer");
            ids[i++] = id;
        }
        return ids;
    }

    static int[] ParseIdsText(string text)
    {
        var trimmed = text.Trim();
        if (trimmed.StartsWith('['))
        {
            try
            {
                using var doc = JsonDocument.Parse(trimmed);
                return IdsFrom(doc.RootElement, "--text", null);
            }
            catch (JsonException e)
            {
                throw InputError.At("--text", null, "ids", $"invalid JSON: {e.Message.Split('\n')[0]}");
            }
        }
        var parts = trimmed.Split([' ', ',', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], out ids[i]))
                throw InputError.At("--text", null, "ids", $"'{parts[i]}' is not an integer");
        return ids;
    }
}
