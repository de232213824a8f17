using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Tokenization;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Tests.Tokenization;

/// <summary>
/// BpeTrainer against the goldens of tests/reference/bpe_goldens.mjs (Hugging Face tokenizers:
/// its BpeTrainer's merges on the fixture corpus, and how it encodes and decodes with the
/// tokenizer.json our trainer wrote) and bpe_template_goldens.py (jinja2 as transformers sets it up).
/// </summary>
public sealed class BpeTrainerTests : IDisposable
{
    static string FixtureDir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "tokenizers", "demo-bpe");

    readonly string _root = Path.Combine(Path.GetTempPath(), "posttrain-bpe-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root)) Directory.Delete(_root, recursive: true);
    }

    /// <summary>The fixture corpus as HF's train(files) feeds it: one sequence per line, line ending kept.</summary>
    static List<string> CorpusLines()
    {
        var text = File.ReadAllText(Path.Combine(FixtureDir, "corpus.txt"));
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
            if (text[i] == '\n') { lines.Add(text[start..(i + 1)]); start = i + 1; }
        if (start < text.Length) lines.Add(text[start..]);
        return lines;
    }

    static JsonObject Goldens(string file) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(FixtureDir, file)))!;

    string TrainFixture(string name = "out")
    {
        var dir = Path.Combine(_root, name);
        BpeTrainer.Train(CorpusLines(), dir, new BpeTrainerOptions());
        return dir;
    }

    static List<string> MergeStrings(List<(string A, string B)> merges) => merges.Select(m => m.A + " " + m.B).ToList();

    [Fact]
    public void WritesTheCommittedFixtureFiles()
    {
        var dir = TrainFixture();
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            var path = Path.Combine(FixtureDir, file);
            var expected = File.Exists(path) ? File.ReadAllBytes(path) : [];
            var actual = File.ReadAllBytes(Path.Combine(dir, file));
            if (!expected.AsSpan().SequenceEqual(actual))
            {
                // Keep the fresh output for inspection (and for regenerating the fixture).
                var keep = Path.Combine(Path.GetTempPath(), "posttrain-demo-bpe-fresh");
                Directory.CreateDirectory(keep);
                File.Copy(Path.Combine(dir, file), Path.Combine(keep, file), overwrite: true);
                Assert.Fail($"{file} differs from Fixtures/tokenizers/demo-bpe/{file}; the new one is in {keep}");
            }
        }
    }

    [Fact]
    public void MergesEqualHfTrainersToTheLastMerge()
    {
        // HF's trainer with its defaults (min_frequency 0, vocab_size 30000) merges until no pair is left.
        var hf = Goldens("goldens.json")["hf_trainer_merges"]!.AsArray().Select(m => (string)m!).ToList();
        var (_, merges) = BpeTrainer.Learn(CorpusLines(), new BpeTrainerOptions(Merges: int.MaxValue, MinFrequency: 0));
        Assert.Equal(hf.Count, merges.Count);
        Assert.Equal(hf, MergeStrings(merges));
    }

    [Fact]
    public void DefaultOptionsLearnAPrefixOfHfTrainersMergesAndStopBelowMinFrequency()
    {
        var hf = Goldens("goldens.json")["hf_trainer_merges"]!.AsArray().Select(m => (string)m!).ToList();
        var (tokens, merges) = BpeTrainer.Learn(CorpusLines(), new BpeTrainerOptions());
        Assert.InRange(merges.Count, 100, 400);
        Assert.Equal(hf.Take(merges.Count), MergeStrings(merges));
        Assert.Equal(256 + merges.Count, tokens.Count);
        // MinFrequency 1 goes on where 2 stopped.
        var (_, more) = BpeTrainer.Learn(CorpusLines(), new BpeTrainerOptions(Merges: merges.Count + 5, MinFrequency: 1));
        Assert.Equal(hf.Take(merges.Count + 5), MergeStrings(more));
    }

    [Fact]
    public void EncodesAndDecodesAsHfTokenizers()
    {
        var tok = HfTokenizer.FromDirectory(TrainFixture());
        var goldens = Goldens("goldens.json");
        foreach (var c in goldens["cases"]!.AsArray())
        {
            var text = (string)c!["text"]!;
            var ids = c["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            Assert.True(ids.SequenceEqual(tok.Encode(text)), $"encode {text}: expected [{string.Join(",", ids)}], got [{string.Join(",", tok.Encode(text))}]");
            Assert.Equal((string)c["decoded"]!, tok.Decode(ids));
            Assert.Equal((string)c["decoded_skip_special"]!, tok.Decode(ids, skipSpecialTokens: true));
        }
        foreach (var c in goldens["decode_cases"]!.AsArray())
        {
            var ids = c!["ids"]!.AsArray().Select(i => (int)i!).ToArray();
            Assert.Equal((string)c["decoded"]!, tok.Decode(ids));
            Assert.Equal((string)c["decoded_skip_special"]!, tok.Decode(ids, skipSpecialTokens: true));
        }
    }

    [Fact]
    public void ConfigNamesTheChatmlSpecialTokensAfterTheVocabulary()
    {
        var dir = TrainFixture();
        var tok = HfTokenizer.FromDirectory(dir);
        var (tokens, _) = BpeTrainer.Learn(CorpusLines(), new BpeTrainerOptions());
        Assert.Equal(tokens.Count + 3, tok.VocabSize);
        Assert.Equal(tokens.Count, tok.PadTokenId);
        Assert.Equal(tokens.Count + 1, tok.TokenToId("<|im_start|>"));
        Assert.Equal(tokens.Count + 2, tok.EosTokenId);
        Assert.Null(tok.BosToken);
        Assert.True(tok.IsSpecialId(tokens.Count + 2));
        Assert.Equal(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], tok.AddedTokensDecoder.OrderBy(kv => kv.Key).Select(kv => kv.Value.Content));
    }

    [Fact]
    public void ChatTemplateRendersAsJinja2()
    {
        var template = ChatTemplate.FromModelDirectory(TrainFixture());
        foreach (var c in Goldens("template_goldens.json")["cases"]!.AsArray())
        {
            var input = new ChatTemplateInput
            {
                Messages = (JsonArray)c!["messages"]!.DeepClone(),
                AddGenerationPrompt = (bool)c["add_generation_prompt"]!,
            };
            if (c["error"] is { } error)
            {
                var ex = Assert.ThrowsAny<TemplateError>(() => template.Render(input));
                Assert.Equal((string)error!, ex.Detail);
            }
            else Assert.Equal((string)c["text"]!, template.Render(input).Text);
        }
    }

    [Fact]
    public void SameCorpusGivesByteIdenticalFiles()
    {
        var a = TrainFixture("a");
        var b = TrainFixture("b");
        foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(a, file)), File.ReadAllBytes(Path.Combine(b, file)));
        Assert.Equal(["tokenizer.json", "tokenizer_config.json"], Directory.GetFiles(a).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void MergesTheMostFrequentPairFirstAndStopsAtMinFrequency()
    {
        // Words hug x10, pug x5, pun x12, bun x4, hugs x5. Pair counts: u g 20, u n 16, p u 17, h u 15, ...
        // 1. u g (20)   -> p u drops to 12 (pug's is gone)
        // 2. u n (16)
        // 3. h ug (15)
        // 4. p un (12)
        // 5. p ug (5) and hug s (5) tie: p (id 79) < hug (id 258), so p ug first
        // 6. hug s (5); then b un (4) is below MinFrequency 5.
        var texts = Repeat("hug", 10).Concat(Repeat("pug", 5)).Concat(Repeat("pun", 12)).Concat(Repeat("bun", 4)).Concat(Repeat("hugs", 5));
        var (_, merges) = BpeTrainer.Learn(texts, new BpeTrainerOptions(Merges: 100, MinFrequency: 5));
        Assert.Equal(["u g", "u n", "h ug", "p un", "p ug", "hug s"], MergeStrings(merges));
        var (_, two) = BpeTrainer.Learn(Repeat("hug", 10).Concat(Repeat("pug", 5)), new BpeTrainerOptions(Merges: 2));
        Assert.Equal(["u g", "h ug"], MergeStrings(two));
    }

    [Fact]
    public void TiesGoToTheSmallestIdsNotTheSmallestStrings()
    {
        // zzb x2, aab x2, zz x2: z z (4) first, then a a / a b / zz b all at 2: a a (ids 64, 64) is smallest.
        // Then aa b and zz b tie at 2: zz (id 256, made first) < aa (id 257), though "aa" < "zz" as strings.
        var texts = Repeat("zzb", 2).Concat(Repeat("aab", 2)).Concat(Repeat("zz", 2));
        var (tokens, merges) = BpeTrainer.Learn(texts, new BpeTrainerOptions(Merges: 4));
        Assert.Equal(["z z", "a a", "zz b", "aa b"], MergeStrings(merges));
        Assert.Equal(["zz", "aa", "zzb", "aab"], tokens.Skip(256));
    }

    [Fact]
    public void PreTokenizesWithTheQwen2RegexAndByteLevel()
    {
        // " the" is one pre-token (space joins the letters), digits are single, and é is two bytes.
        var (tokens, merges) = BpeTrainer.Learn(["the the the 12 12 é é"], new BpeTrainerOptions(Merges: 10));
        Assert.Contains("Ġthe", tokens);
        Assert.DoesNotContain("12", tokens);
        Assert.Contains("Ã©", tokens); // é's UTF-8 bytes C3 A9 as byte-level characters
        Assert.DoesNotContain("Ġ1", tokens);
        Assert.Equal(["h e", "t he", "Ã ©", "Ġ the", "Ġ Ã©"], merges.Select(m => m.A + " " + m.B));
    }

    [Fact]
    public void NoMergesWritesTheByteVocabulary()
    {
        var dir = Path.Combine(_root, "empty");
        BpeTrainer.Train([], dir, new BpeTrainerOptions(Merges: 0));
        var tok = HfTokenizer.FromDirectory(dir);
        Assert.Equal(259, tok.VocabSize);
        Assert.Equal("héllo 😀", tok.Decode(tok.Encode("héllo 😀")));
        Assert.Equal(Encoding.UTF8.GetByteCount("héllo 😀"), tok.Encode("héllo 😀").Length);
        Assert.Equal([256, 257, 258], tok.Encode("<|endoftext|><|im_start|><|im_end|>"));
    }

    [Fact]
    public void RejectsNegativeOptions()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Learn([], new BpeTrainerOptions(Merges: -1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Learn([], new BpeTrainerOptions(MinFrequency: -1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => BpeTrainer.Learn([], new BpeTrainerOptions(ModelMaxLength: 0)));
    }

    static IEnumerable<string> Repeat(string s, int n) => Enumerable.Repeat(s, n);
}
