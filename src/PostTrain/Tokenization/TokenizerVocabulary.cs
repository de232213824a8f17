using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Tokenization;

/// <summary>
/// The size of a tokenizer's id space and its special-token ids, read from tokenizer.json and
/// tokenizer_config.json: what a new model's embedding table and config need.
/// </summary>
public sealed record TokenizerVocabulary(int Size, int? BosTokenId, int? EosTokenId, int? PadTokenId)
{
    public static TokenizerVocabulary Read(string dir)
    {
        try
        {
            return ReadUnchecked(dir);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new InputError($"{dir}: malformed tokenizer files: {e.Message}");
        }
    }

    static TokenizerVocabulary ReadUnchecked(string dir)
    {
        var tokenizerPath = Path.Combine(dir, "tokenizer.json");
        var root = ReadObject(tokenizerPath);
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root["model"]?["vocab"] is JsonObject vocab)
            foreach (var (token, id) in vocab)
                ids[token] = id?.GetValue<int>() ?? throw new InputError($"{tokenizerPath}: model.vocab.{token}: expected an id");
        else
            throw new InputError($"{tokenizerPath}: model.vocab: missing or not an object");
        if (root["added_tokens"] is JsonArray added)
            for (int i = 0; i < added.Count; i++)
            {
                var content = added[i]?["content"]?.GetValue<string>() ?? throw new InputError($"{tokenizerPath}: added_tokens[{i}].content: missing");
                ids[content] = added[i]?["id"]?.GetValue<int>() ?? throw new InputError($"{tokenizerPath}: added_tokens[{i}].id: missing");
            }
        int size = ids.Count == 0 ? 0 : ids.Values.Max() + 1;

        var configPath = Path.Combine(dir, "tokenizer_config.json");
        JsonObject? config = File.Exists(configPath) ? ReadObject(configPath) : null;
        int? Lookup(string key)
        {
            var node = config?[key];
            var content = node switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonObject o => o["content"]?.GetValue<string>(),
                _ => null,
            };
            return content is not null && ids.TryGetValue(content, out var id) ? id : null;
        }
        return new TokenizerVocabulary(size, Lookup("bos_token"), Lookup("eos_token"), Lookup("pad_token"));
    }

    static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new InputError($"{path}: file not found");
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InputError($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InputError($"{path}: invalid JSON at line {e.LineNumber + 1}: {e.Message.Split('\n')[0]}");
        }
    }
}
