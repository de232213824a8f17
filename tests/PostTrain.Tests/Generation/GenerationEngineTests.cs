using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Generation;

public class GenerationEngineTests
{
    static readonly int[][] Prompts =
    [
        [5, 17, 33, 2, 90, 41, 7, 8, 60],
        [11, 3, 72],
        [44, 45, 46, 47, 12, 13],
        [9],
    ];

    public static TheoryData<Architecture, bool> Architectures => new()
    {
        { Architecture.Qwen2, true },
        { Architecture.Qwen3, false },
        { Architecture.Llama, false },
    };

    static ModelConfig ConfigFor(Architecture arch, bool tied, int kvHeads = 2) => TestModels.Config(arch, tied, kvHeads: kvHeads,
        scaling: arch == Architecture.Llama ? new RopeScaling("llama3", 8.0, 1.0, 4.0, 16) : null);

    static readonly SamplingOptions Greedy = new() { Temperature = 0, MaxNewTokens = 12, EosTokenIds = [] };

    // Greedy decoding without a cache: the whole sequence recomputed for every new token.
    static (List<int> Tokens, List<float> LogProbs) GreedyByRecompute(CausalLM model, int[] prompt, int steps)
    {
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var seq = prompt.ToList();
        var logProbs = new List<float>();
        for (int i = 0; i < steps; i++)
        {
            using var inner = NewDisposeScope();
            var logits = model.Forward(TestModels.Ids(seq.ToArray()))[0, -1];
            int next = (int)logits.argmax().item<long>();
            logProbs.Add(logits.log_softmax(-1)[next].item<float>());
            seq.Add(next);
        }
        return (seq.Skip(prompt.Length).ToList(), logProbs);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void GreedyWithCacheEqualsRecomputingEachStep(Architecture arch, bool tied)
    {
        using var model = TestModels.Random(ConfigFor(arch, tied), seed: 3, std: 0.3);
        var engine = new GenerationEngine(model);
        var result = engine.Generate(Prompts, Greedy);
        for (int p = 0; p < Prompts.Length; p++)
        {
            var (expected, expectedLp) = GreedyByRecompute(model, Prompts[p], Greedy.MaxNewTokens);
            var c = Assert.Single(result[p]);
            Assert.Equal(expected, c.TokenIds);
            Assert.Equal("length", c.FinishReason);
            for (int t = 0; t < expected.Count; t++)
                Assert.True(Math.Abs(expectedLp[t] - c.LogProbs[t]) < 1e-4, $"prompt {p} token {t}: {expectedLp[t]} vs {c.LogProbs[t]}");
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void BatchOfDifferentLengthsEqualsEachPromptAlone(Architecture arch, bool tied)
    {
        using var model = TestModels.Random(ConfigFor(arch, tied, kvHeads: 1), seed: 4, std: 0.3);
        var engine = new GenerationEngine(model);
        var batched = engine.Generate(Prompts, Greedy with { BatchSize = 8 });
        for (int p = 0; p < Prompts.Length; p++)
        {
            var alone = engine.Generate([Prompts[p]], Greedy with { BatchSize = 1 });
            Assert.Equal(alone[0][0].TokenIds, batched[p][0].TokenIds);
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void CachedChunksScoreAsOneForward(Architecture arch, bool tied)
    {
        // Left-padded prompts prefilled, then a chunk of 3 and a chunk of 1: every logit equals
        // the uncached forward of the whole left-padded batch.
        using var model = TestModels.Random(ConfigFor(arch, tied), seed: 5);
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        int[][] full = [[5, 17, 33, 2, 90, 41, 7, 8], [11, 3, 72, 4, 5, 6], [44, 45, 46, 47, 12]];
        var (ids, mask, positions) = Batching.LeftPad(full.Select(s => s[..^4]).ToArray());
        var (allIds, allMask, allPositions) = Batching.LeftPad(full);
        var expected = model.Forward(allIds, allMask, allPositions);
        using var cache = new KvCache(model.Config, 3, 16, model.DType);
        var prefill = model.Forward(ids, mask, positions, cache);
        long w = ids.shape[1];
        var chunk = model.Forward(allIds.narrow(1, w, 3), null, allPositions.narrow(1, w, 3), cache);
        var one = model.Forward(allIds.narrow(1, w + 3, 1), null, allPositions.narrow(1, w + 3, 1), cache);
        var got = cat([prefill, chunk, one], 1);
        // Compare real positions only (pad queries attend to themselves: defined but meaningless).
        var real = allMask.to(ScalarType.Bool).unsqueeze(-1);
        Assert.True(TestModels.MaxAbsDiff(expected.masked_fill(real.logical_not(), 0), got.masked_fill(real.logical_not(), 0)) < 1e-4f);
        Assert.Equal(w + 4, cache.Length);
    }

    [Fact]
    public void FixedSeedReproducesSamples()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen2, false), seed: 6);
        var engine = new GenerationEngine(model);
        var options = new SamplingOptions { Temperature = 0.9, TopP = 0.95, TopK = 40, MinP = 0.01, RepetitionPenalty = 1.1, N = 3, MaxNewTokens = 10, Seed = 7, EosTokenIds = [] };
        var a = engine.Generate(Prompts, options);
        var b = engine.Generate(Prompts, options);
        var c = engine.Generate(Prompts, options with { Seed = 8 });
        string Key(Completion[][] r) => string.Join("|", r.SelectMany(x => x).Select(x => string.Join(",", x.TokenIds)));
        Assert.Equal(Key(a), Key(b));
        Assert.Equal(a.SelectMany(x => x).SelectMany(x => x.LogProbs), b.SelectMany(x => x).SelectMany(x => x.LogProbs));
        Assert.NotEqual(Key(a), Key(c));
        Assert.All(a, x => Assert.Equal(3, x.Length));
    }

    [Fact]
    public void TopKOneEqualsGreedy()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Llama, false), seed: 7, std: 0.3);
        var engine = new GenerationEngine(model);
        var greedy = engine.Generate(Prompts, Greedy);
        var topK = engine.Generate(Prompts, Greedy with { Temperature = 0.7, TopK = 1, N = 2, Seed = 3 });
        for (int p = 0; p < Prompts.Length; p++)
            foreach (var sample in topK[p])
            {
                Assert.Equal(greedy[p][0].TokenIds, sample.TokenIds);
                Assert.All(sample.LogProbs, lp => Assert.Equal(0f, lp)); // the only token left
            }
    }

    [Fact]
    public void SamplesOfAPromptShareOnePrefill()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen3, false), seed: 8);
        var engine = new GenerationEngine(model);
        var result = engine.Generate(Prompts, new SamplingOptions { N = 4, MaxNewTokens = 6, Seed = 1, EosTokenIds = [] });
        Assert.Equal(Prompts.Length, engine.LastStats.PrefillRows);
        Assert.All(result, r => Assert.Equal(4, r.Length));
        // Samples differ (the shared prefill is expanded, not the sampled tokens).
        Assert.Contains(result, r => r.Select(c => string.Join(",", c.TokenIds)).Distinct().Count() > 1);
        Assert.Equal(Prompts.Length * 4 * 5, engine.LastStats.DecodeRowTokens);
    }

    [Fact]
    public void EosStopsWithFinishReasonStopAndFinishedRowsLeaveTheBatch()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen2, false), seed: 9, std: 0.3);
        var engine = new GenerationEngine(model, Decode);
        var free = engine.Generate(Prompts, Greedy);
        // Make prompt 0's 4th token an end-of-sequence token.
        int eosId = free[0][0].TokenIds[3];
        int cut = Array.IndexOf(free[0][0].TokenIds, eosId);
        var stopped = engine.Generate(Prompts, Greedy with { EosTokenIds = [eosId] });
        var c = stopped[0][0];
        Assert.Equal("stop", c.FinishReason);
        Assert.Equal(free[0][0].TokenIds[..(cut + 1)], c.TokenIds);
        Assert.Equal(cut + 1, c.LogProbs.Length);
        Assert.Equal(Decode(free[0][0].TokenIds[..cut]), c.Text); // the eos token is not in the text
        // Every row's decode steps stop when it finishes.
        long expected = stopped.Sum(r => (long)r[0].TokenIds.Length - 1);
        Assert.Equal(expected, engine.LastStats.DecodeRowTokens);
    }

    // A fake tokenizer: one letter per id.
    static string Decode(IReadOnlyList<int> ids) => new(ids.Select(i => (char)('a' + i % 26)).ToArray());

    [Fact]
    public void StopStringsCutTheText()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Llama, true), seed: 10, std: 0.3);
        var engine = new GenerationEngine(model, Decode);
        var free = engine.Generate(Prompts, Greedy);
        var text = free[1][0].Text!;
        Assert.Equal(Decode(free[1][0].TokenIds), text);
        var stop = text.Substring(4, 2);
        int at = text.IndexOf(stop, StringComparison.Ordinal);
        var stopped = engine.Generate(Prompts, Greedy with { Stop = ["zzzzzzzz", stop] });
        var c = stopped[1][0];
        Assert.Equal("stop", c.FinishReason);
        Assert.Equal(text[..at], c.Text);
        Assert.Equal(free[1][0].TokenIds[..(at + 2)], c.TokenIds); // up to the token completing the stop string
    }

    [Fact]
    public void ErrorsForTooLongPromptsBadIdsAndBadOptions()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen2, false), seed: 11);
        var engine = new GenerationEngine(model);
        var tooLong = Enumerable.Repeat(5, model.Config.MaxPositionEmbeddings + 1).ToArray();
        var e = Assert.Throws<InputError>(() => engine.Generate([[1, 2], tooLong], Greedy));
        Assert.Contains("prompt 1", e.Message);
        Assert.Contains("max_position_embeddings", e.Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<InputError>(() => engine.Generate([[1, 96]], Greedy)).Message);
        Assert.Contains("empty", Assert.Throws<InputError>(() => engine.Generate([[]], Greedy)).Message);
        foreach (var (bad, option) in new (SamplingOptions, string)[]
        {
            (new() { Temperature = -0.5 }, "--temperature"),
            (new() { TopP = 0 }, "--top-p"),
            (new() { TopP = 1.5 }, "--top-p"),
            (new() { TopK = -1 }, "--top-k"),
            (new() { MinP = 2 }, "--min-p"),
            (new() { RepetitionPenalty = 0 }, "--repetition-penalty"),
            (new() { N = 0 }, "--n"),
            (new() { MaxNewTokens = 0 }, "--max-new-tokens"),
            (new() { Temperature = 0, N = 2 }, "--n"),
        })
            Assert.StartsWith(option, Assert.Throws<InputError>(() => engine.Generate([[1, 2]], bad)).Message);
    }

    [Fact]
    public void LiveTensorsDoNotGrowAcrossCalls()
    {
        using var model = TestModels.Random(ConfigFor(Architecture.Qwen3, false), seed: 12);
        var engine = new GenerationEngine(model, Decode);
        var options = new SamplingOptions { N = 2, MaxNewTokens = 8, RepetitionPenalty = 1.2, TopP = 0.9, EosTokenIds = [3], Stop = ["q"] };
        engine.Generate(Prompts, options);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 3; i++) engine.Generate(Prompts, options with { Seed = i });
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
