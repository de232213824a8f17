using System.IO.Compression;
using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Tokenization;

public sealed class TokenizerTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    [Fact]
    public void QwenSpecialTokensAndConfig()
    {
        var tok = fx.Get("qwen3");
        Assert.Equal(151669, tok.VocabSize);
        Assert.Equal("<|im_end|>", tok.EosToken);
        Assert.Equal("<|endoftext|>", tok.PadToken);
        Assert.Null(tok.BosToken);
        Assert.Null(tok.UnkToken);
        Assert.False(tok.AddBosToken);
        Assert.Null(tok.AddEosToken);
        Assert.Equal(151645, tok.EosTokenId);
        Assert.Equal(151644, tok.TokenToId("<|im_start|>"));
        Assert.Equal("<|im_start|>", tok.IdToToken(151644));
        Assert.True(tok.AddedTokensDecoder[151644].Special);
        Assert.False(tok.AddedTokensDecoder[151668].Special); // </think>
        Assert.Equal("</think>", tok.AddedTokensDecoder[151668].Content);
        Assert.Null(tok.IdToToken(999_999));
        Assert.Null(tok.TokenToId("no such token"));
        Assert.Equal([151644, 872, 198, 6023, 151645], tok.Encode("<|im_start|>user\nhi<|im_end|>"));
        Assert.Equal("user\nhi", tok.Decode(tok.Encode("<|im_start|>user\nhi<|im_end|>"), skipSpecialTokens: true));
    }

    [Fact]
    public void LlamaConfigAndTemplate()
    {
        var tok = fx.Get("llama3");
        Assert.Equal(128256, tok.VocabSize);
        Assert.Equal("<|begin_of_text|>", tok.BosToken);
        Assert.Equal(128000, tok.BosTokenId);
        Assert.Equal("<|end_of_text|>", tok.EosToken);
        var tpl = fx.Get("llama3-template");
        Assert.Equal([128000, 9906], tpl.Encode("Hello", addSpecialTokens: true));
        Assert.Equal([9906], tpl.Encode("Hello"));
        var withOffsets = tpl.EncodeWithOffsets("Hello", addSpecialTokens: true);
        Assert.Equal([new TokenOffset(0, 0), new TokenOffset(0, 5)], withOffsets.Offsets);
    }

    [Theory]
    [InlineData("qwen3", new[] { 64, 81250, 238, 222, 146156, 65, 220, 172, 63219, 222, 87 })]
    [InlineData("llama3", new[] { 64, 82350, 238, 222, 57352, 239, 98, 65, 109697, 64319, 222, 87 })]
    public void AstralLettersAreLettersForTheSplitRegex(string model, int[] hf)
    {
        // HF's regex sees 𝐀 (U+1D400) and 𠀀 (U+20000) as \p{L}: " 𝐀𝑥b" and " 𠀀x" are single pre-tokens.
        // A UTF-16 regex would split them apart (a surrogate is not \p{L}) and give other ids.
        var tok = fx.Get(model);
        const string text = "a 𝐀𝑥b 𠀀x";
        var enc = tok.EncodeWithOffsets(text);
        Assert.Equal(hf, enc.Ids);
        foreach (var o in enc.Offsets)
        {
            Assert.False(char.IsLowSurrogate(text[o.Start]));
            Assert.True(o.End == text.Length || !char.IsLowSurrogate(text[o.End]));
        }
        Assert.Equal(text, tok.Decode(enc.Ids));
    }

    [Fact]
    public void OffsetsMapNfdTextBackToTheInput()
    {
        var tok = fx.Get("qwen3");
        var text = "cafe\u0301 ok";
        var enc = tok.EncodeWithOffsets(text);
        Assert.Equal(tok.Encode("café ok"), enc.Ids);
        Assert.Equal(text.Length, enc.Offsets[^1].End);
    }

    [Fact]
    public void RoundTripsArbitraryText()
    {
        var tok = fx.Get("llama3");
        var rnd = new Random(7);
        for (int n = 0; n < 200; n++)
        {
            var sb = new System.Text.StringBuilder();
            for (int i = 0; i < 30; i++)
            {
                int cp = rnd.Next(5) switch { 0 => rnd.Next(0x20, 0x7F), 1 => rnd.Next(0x4E00, 0x9FFF), 2 => rnd.Next(0x1F600, 0x1F64F), 3 => rnd.Next(0x1D400, 0x1D4FF), _ => " \t\n"[rnd.Next(3)] };
                sb.Append(char.ConvertFromUtf32(cp));
            }
            var s = sb.ToString();
            Assert.Equal(s, tok.Decode(tok.Encode(s)));
        }
    }

    [Fact]
    public void DecodeSkipsUnknownIdsAsHfTokenizersDoes()
    {
        // @anush008/tokenizers (HF tokenizers): decode([9707, 9999999, 1879]) == "Hello world".
        Assert.Equal("Hello world", fx.Get("qwen3").Decode([9707, 9_999_999, 1879]));
    }

    [Fact]
    public void MergesAsPairsOrStringsGiveTheSameTokenizer()
    {
        // Qwen3's file has [a, b] pairs; rewrite them as "a b" strings.
        var dir = Path.Combine(fx.Root, "qwen3-string-merges");
        Directory.CreateDirectory(dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Dir("qwen3"), "tokenizer.json")))!;
        var merges = json["model"]!["merges"]!.AsArray();
        var asStrings = new JsonArray([.. merges.Select(m => (JsonNode)JsonValue.Create($"{m![0]} {m[1]}"))]);
        json["model"]!["merges"] = asStrings;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
        var tok = HfTokenizer.FromDirectory(dir);
        const string text = "Hello wörld, 你好 🤖 def f(x):\n\treturn 42";
        Assert.Equal(fx.Get("qwen3").Encode(text), tok.Encode(text));
    }

    [Theory]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [3]}}""", "model.merges[0]")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": "x"}, "merges": []}}""", "model.vocab")]
    [InlineData("""{"model": {"type": "WordPiece", "vocab": {}}}""", "model.type")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}""", "model.merges")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []}, "normalizer": {"type": "NFKD"}}""", "normalizer.type")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 1}]}""", "added_tokens[0].content")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []}, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "("}, "behavior": "Isolated"}}""", "pre_tokenizer.pattern.Regex")]
    [InlineData("""{"model": {"type": "BPE", "vocab": {}, "merges": []""", "invalid JSON")]
    [InlineData("""{"vocab": {}}""", "model: missing")]
    public void MalformedTokenizerJsonIsAnInputErrorNamingFileAndField(string json, string field)
    {
        var dir = Path.Combine(fx.Root, "bad-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json);
        var e = Assert.Throws<InputError>(() => HfTokenizer.FromDirectory(dir));
        Assert.Contains("tokenizer.json", e.Message);
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void MalformedConfigIsAnInputError()
    {
        var dir = Path.Combine(fx.Root, "bad-config");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(fx.Dir("qwen3"), "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": 5}""");
        var e = Assert.Throws<InputError>(() => HfTokenizer.FromDirectory(dir));
        Assert.Contains("tokenizer_config.json: eos_token:", e.Message);
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), """{"eos_token": {"content": "<|im_end|>", "lstrip": false}, "add_eos_token": true}""");
        var tok = HfTokenizer.FromDirectory(dir);
        Assert.Equal("<|im_end|>", tok.EosToken);
        Assert.True(tok.AddEosToken);
    }

    [Fact]
    public void AddedTokenFlagsLstripRstripSingleWord()
    {
        var dir = Path.Combine(fx.Root, "flags");
        Directory.CreateDirectory(dir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Dir("qwen3"), "tokenizer.json")))!;
        var added = json["added_tokens"]!.AsArray();
        added.Add(JsonNode.Parse("""{"id": 151669, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true}"""));
        added.Add(JsonNode.Parse("""{"id": 151670, "content": "word", "single_word": true, "lstrip": false, "rstrip": false, "normalized": false, "special": false}"""));
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
        var tok = HfTokenizer.FromDirectory(dir);
        var enc = tok.EncodeWithOffsets("a  <mask>  b");
        Assert.Equal([tok.Encode("a")[0], 151669, tok.Encode("b")[0]], enc.Ids);
        Assert.Equal(new TokenOffset(1, 11), enc.Offsets[1]);
        Assert.Contains(151670, tok.Encode("a word here"));
        Assert.DoesNotContain(151670, tok.Encode("swordfish"));
    }
}

public sealed class TokenizerConcurrencyTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    [Fact]
    public void ParallelEncodesGiveTheSequentialResult()
    {
        var tok = HfTokenizer.FromDirectory(fx.Dir("qwen3")); // fresh: empty caches
        var texts = Enumerable.Range(0, 400).Select(i => $"Line {i}: some wörds {i * 7919} 你好{i} e\u0301 😀 𝐀{i}x word{i % 37}ing").ToArray();
        var parallel = new int[texts.Length][];
        Parallel.For(0, texts.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = tok.Encode(texts[i]));
        var reference = fx.Get("qwen3");
        for (int i = 0; i < texts.Length; i++) Assert.Equal(reference.Encode(texts[i]), parallel[i]);
    }
}

public sealed class RegexFallbackTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    /// <summary>
    /// A split pattern we have no hand-written matcher for runs through .NET Regex over a text where
    /// each astral code point is one stand-in char; with Qwen's pattern spelled differently
    /// (\p{N}{1} for \p{N}) it must give HF's ids on the whole golden corpus.
    /// </summary>
    [Fact]
    public void RegexFallbackMatchesHuggingFaceOnGoldens()
    {
        var dir = Path.Combine(fx.Root, "qwen3-regex-fallback");
        Directory.CreateDirectory(dir);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(fx.Dir("qwen3"), "tokenizer.json")))!;
        var split = json["pre_tokenizer"]!["pretokenizers"]![0]!;
        Assert.Equal(KnownPatternSplitter.QwenPattern, (string)split["pattern"]!["Regex"]!);
        split["pattern"]!["Regex"] = KnownPatternSplitter.QwenPattern.Replace(@"|\p{N}|", @"|\p{N}{1}|");
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), json.ToJsonString());
        var tok = HfTokenizer.FromDirectory(dir);
        using var g = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerFixture.FixtureDir, "goldens.qwen3.json")));
        var failures = new List<string>();
        foreach (var c in g.RootElement.GetProperty("cases").EnumerateArray())
        {
            var text = c.GetProperty("text").GetString()!;
            var want = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32());
            if (!tok.Encode(text).SequenceEqual(want)) failures.Add(System.Text.Json.JsonSerializer.Serialize(text));
        }
        Assert.True(failures.Count == 0, $"{failures.Count} differ: " + string.Join(" ", failures.Take(10)));
    }
}
