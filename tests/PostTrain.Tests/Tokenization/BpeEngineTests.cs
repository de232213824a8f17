using System.Text.Json;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Tokenization;

/// <summary>
/// Microsoft.ML.Tokenizers' BPE (our merge engine) and our port of HF's merge loop must agree on
/// every pre-token of the golden corpus and of a mixed text.
/// </summary>
public sealed class BpeEngineTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    [Theory]
    [InlineData("qwen3", KnownPatternSplitter.QwenPattern)]
    [InlineData("llama3", KnownPatternSplitter.LlamaPattern)]
    public void MlTokenizersMergesAgreeWithHfMergeLoop(string model, string pattern)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(fx.Dir(model), "tokenizer.json")));
        var m = doc.RootElement.GetProperty("model");
        var vocab = m.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32(), StringComparer.Ordinal);
        var merges = m.GetProperty("merges").EnumerateArray().Select(e =>
        {
            if (e.ValueKind == JsonValueKind.Array) return (e[0].GetString()!, e[1].GetString()!);
            var s = e.GetString()!;
            int sp = s.IndexOf(' ', 1);
            return (s[..sp], s[(sp + 1)..]);
        }).ToList();
        var ml = new BytePairModel(vocab, merges, ignoreMerges: false, msg => new Exception(msg), useMlTokenizers: true);
        var ours = new BytePairModel(vocab, merges, ignoreMerges: false, msg => new Exception(msg), useMlTokenizers: false);
        using var g = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixture.FixtureDir, $"goldens.{model}.json")));
        var texts = g.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.GetProperty("text").GetString()!).ToList();
        texts.Add(string.Concat(Enumerable.Range(0, 3000).Select(i => (char)(0x4E00 + i * 7 % 20000))));
        var split = KnownPatternSplitter.TryCreate(pattern)!;
        var pieces = new List<PostTrain.Tokenization.Span>();
        var a = new List<int>();
        var b = new List<int>();
        int n = 0;
        foreach (var t in texts)
        {
            pieces.Clear();
            split.Split(t, 0, t.Length, pieces);
            foreach (var p in pieces)
            {
                a.Clear(); b.Clear();
                ml.Tokenize(t.AsSpan(p.Start, p.End - p.Start), a);
                ours.Tokenize(t.AsSpan(p.Start, p.End - p.Start), b);
                Assert.True(a.SequenceEqual(b), $"{JsonSerializer.Serialize(t[p.Start..p.End])}: ML [{string.Join(",", a)}] ours [{string.Join(",", b)}]");
                n++;
            }
        }
        Assert.True(n > 5000);
    }
}
