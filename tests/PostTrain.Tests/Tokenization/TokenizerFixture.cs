using System.IO.Compression;
using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Tokenization;

/// <summary>
/// Decompresses the committed tokenizer fixtures into a temp directory once per test class and
/// loads them. "llama3-template" is llama3 with the post_processor of Meta's official Llama 3
/// tokenizer.json (ByteLevel + TemplateProcessing adding &lt;|begin_of_text|&gt;), as built by
/// tests/reference/tokenizer_goldens.mjs.
/// </summary>
public sealed class TokenizerFixture : IDisposable
{
    public static readonly string[] Models = ["qwen3", "llama3", "llama3-template"];
    public static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers");

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "posttrain-tok-" + Guid.NewGuid().ToString("N"));
    readonly Dictionary<string, HfTokenizer> _tokenizers = [];
    readonly Lock _lock = new();

    public TokenizerFixture()
    {
        foreach (var model in Models)
        {
            var src = Path.Combine(FixtureDir, model == "llama3-template" ? "llama3" : model);
            var dst = Dir(model);
            Directory.CreateDirectory(dst);
            using (var gz = new GZipStream(File.OpenRead(Path.Combine(src, "tokenizer.json.gz")), CompressionMode.Decompress))
            using (var outFile = File.Create(Path.Combine(dst, "tokenizer.json")))
                gz.CopyTo(outFile);
            File.Copy(Path.Combine(src, "tokenizer_config.json"), Path.Combine(dst, "tokenizer_config.json"));
            if (model == "llama3-template")
            {
                var path = Path.Combine(dst, "tokenizer.json");
                var json = JsonNode.Parse(File.ReadAllText(path))!;
                json["post_processor"] = JsonNode.Parse("""
                {"type":"Sequence","processors":[
                  {"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true},
                  {"type":"TemplateProcessing",
                   "single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
                   "pair":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},
                           {"SpecialToken":{"id":"<|begin_of_text|>","type_id":1}},{"Sequence":{"id":"B","type_id":1}}],
                   "special_tokens":{"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[128000],"tokens":["<|begin_of_text|>"]}}}]}
                """);
                File.WriteAllText(path, json.ToJsonString());
            }
        }
    }

    public string Dir(string model) => Path.Combine(Root, model);

    public HfTokenizer Get(string model)
    {
        lock (_lock)
        {
            if (!_tokenizers.TryGetValue(model, out var t)) _tokenizers[model] = t = HfTokenizer.FromDirectory(Dir(model));
            return t;
        }
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
