using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Serving;
using static TorchSharp.torch;

namespace PostTrain.Tests.Serving;

public class ServingEngineTests
{
    static readonly int[][] Prompts =
    [
        [5, 17, 33, 2, 90, 41, 7, 8, 60],
        [11, 3, 72],
        [44, 45, 46, 47, 12, 13],
        [9],
    ];

    static CausalLM Model(Architecture arch = Architecture.Qwen3, long seed = 4) =>
        TestModels.Random(TestModels.Config(arch, tied: false, kvHeads: 2), seed: seed, std: 0.3);

    static string Decode(IReadOnlyList<int> ids) => new(ids.Select(i => (char)('a' + i % 26)).ToArray());

    static Completion[] Run(ServingEngine engine, int[] prompt, SamplingOptions o, int promptIndex = 0, string? adapter = null) =>
        engine.Submit(new EngineRequest { Prompt = prompt, Sampling = o, PromptIndex = promptIndex, Adapter = adapter })
            .CollectAsync(o.N).GetAwaiter().GetResult().Samples;

    static async Task<Completion[]> Samples(EngineStream stream, int n) => (await stream.CollectAsync(n)).Samples;

    static void SameCompletions(Completion[] expected, Completion[] got)
    {
        Assert.Equal(expected.Length, got.Length);
        for (int s = 0; s < expected.Length; s++)
        {
            Assert.Equal(expected[s].TokenIds, got[s].TokenIds);
            Assert.Equal(expected[s].FinishReason, got[s].FinishReason);
            Assert.Equal(expected[s].Text, got[s].Text);
            for (int t = 0; t < expected[s].LogProbs.Length; t++) Assert.Equal(expected[s].LogProbs[t], got[s].LogProbs[t], 3e-4f);
        }
    }

    [Theory]
    [InlineData(Architecture.Qwen3)]
    [InlineData(Architecture.Llama)]
    public void OneRequestEqualsTheGenerationEngine(Architecture arch)
    {
        using var model = Model(arch);
        var options = new SamplingOptions { Temperature = 0.9, TopP = 0.95, TopK = 40, RepetitionPenalty = 1.1, N = 3, MaxNewTokens = 10, Seed = 7, EosTokenIds = [] };
        var local = new GenerationEngine(model, Decode).Generate(Prompts, options);
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 8, MaxModelLength = 64 });
        for (int p = 0; p < Prompts.Length; p++) SameCompletions(local[p], Run(engine, Prompts[p], options, p));
    }

    [Fact]
    public async Task ConcurrentRequestsJoiningAtAnyStepEachGetWhatTheyWouldAlone()
    {
        using var model = Model();
        var sampled = new SamplingOptions { Temperature = 0.8, N = 2, MaxNewTokens = 14, Seed = 3, EosTokenIds = [] };
        var greedy = new SamplingOptions { Temperature = 0, MaxNewTokens = 9, EosTokenIds = [], Stop = ["q"] };
        var local = new GenerationEngine(model, Decode);
        var expectSampled = local.Generate(Prompts, sampled);
        var expectGreedy = local.Generate(Prompts, greedy);
        // A cache shorter than the longest run forces compaction; joins land mid-decode.
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 5, MaxModelLength = 24 });
        var streams = new List<(Task<Completion[]> Task, Completion[] Expected)>();
        for (int round = 0; round < 3; round++)
            for (int p = 0; p < Prompts.Length; p++)
            {
                bool sample = (p + round) % 2 == 0;
                var o = sample ? sampled : greedy;
                var stream = engine.Submit(new EngineRequest { Prompt = Prompts[p], Sampling = o, PromptIndex = p });
                streams.Add((Samples(stream, o.N), sample ? expectSampled[p] : expectGreedy[p]));
                if (p % 2 == 1) Thread.Sleep(5);
            }
        foreach (var (task, expected) in streams) SameCompletions(expected, await task);
        Assert.True(engine.Stats.DecodeRowTokens > engine.Stats.DecodeSteps, "requests shared decode steps");
    }

    [Fact]
    public async Task AdaptersByRequestInOneBatchEqualTheAdapterLoadedIntoTheModel()
    {
        using var model = Model();
        var dirA = TestModels.TempDir();
        var dirB = TestModels.TempDir();
        foreach (var (dir, seed) in new[] { (dirA, 11L), (dirB, 12L) })
        {
            using var trained = Model();
            LoraAdapters.Attach(trained, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, seed);
            using (no_grad())
                foreach (var (_, layer) in trained.Projections())
                    if (layer.Adapter is { } ab) ab.B.normal_(0, 0.2);
            PeftAdapter.WriteInto(trained, dir);
        }
        var o = new SamplingOptions { Temperature = 0.7, N = 2, MaxNewTokens = 8, Seed = 5, EosTokenIds = [] };
        Completion[][] Expected(string? dir)
        {
            using var m = Model();
            if (dir is not null) PeftAdapter.Load(m, dir);
            m.eval();
            return new GenerationEngine(m, Decode).Generate(Prompts, o);
        }
        var expected = new Dictionary<string, Completion[][]> { ["base"] = Expected(null), ["a"] = Expected(dirA), ["b"] = Expected(dirB) };
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 16, MaxModelLength = 32 });
        engine.LoadAdapter("a", dirA);
        engine.LoadAdapter("b", dirB);
        Assert.Equal(["a", "b"], engine.Adapters);
        var runs = new List<(Task<(PromptScored?, Completion[])> Task, Completion[] Expected)>();
        foreach (var name in new[] { "a", "base", "b" })
            for (int p = 0; p < Prompts.Length; p++)
                runs.Add((engine.Submit(new EngineRequest { Prompt = Prompts[p], Sampling = o, PromptIndex = p, Adapter = name == "base" ? null : name }).CollectAsync(o.N),
                    expected[name][p]));
        foreach (var (task, want) in runs) SameCompletions(want, (await task).Item2);
        Assert.NotEqual(expected["a"][0][0].TokenIds, expected["b"][0][0].TokenIds);

        engine.UnloadAdapter("a");
        Assert.Equal(["b"], engine.Adapters);
        var error = Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = Prompts[0], Sampling = o, Adapter = "a" }));
        Assert.Contains("no adapter named 'a'", error.Message);
        Assert.Throws<InputError>(() => engine.LoadAdapter("b", dirB));
        Assert.Throws<InputError>(() => engine.LoadAdapter("c", Path.Combine(dirB, "missing")));
    }

    [Fact]
    public async Task PromptLogprobsAreTheModelsOwnAndMaxTokensZeroOnlyScores()
    {
        using var model = Model();
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 4, MaxModelLength = 32 });
        var prompt = Prompts[0];
        var (scored, samples) = await engine.Submit(new EngineRequest { Prompt = prompt, Sampling = new SamplingOptions { MaxNewTokens = 0, Temperature = 0 }, PromptLogprobs = 2 })
            .CollectAsync(1);
        Assert.NotNull(scored);
        Assert.Empty(samples[0].TokenIds);
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var logps = model.Forward(TestModels.Ids(prompt))[0].log_softmax(-1);
        Assert.Null(scored!.LogProbs[0]);
        Assert.Null(scored.Top![0]);
        for (int t = 1; t < prompt.Length; t++)
        {
            Assert.Equal(logps[t - 1, prompt[t]].item<float>(), scored.LogProbs[t]!.Value, 1e-4f);
            var top = scored.Top[t]!;
            Assert.Equal(2, top.Length);
            Assert.Equal(logps[t - 1].argmax().item<long>(), top[0].TokenId);
            Assert.True(top[0].LogProb >= top[1].LogProb);
        }
    }

    [Fact]
    public async Task SampledLogprobsAndTopLogprobsComeFromTheSamplingDistribution()
    {
        using var model = Model();
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 4, MaxModelLength = 32 });
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 5, EosTokenIds = [] };
        var events = new List<TokenGenerated>();
        var stream = engine.Submit(new EngineRequest { Prompt = Prompts[1], Sampling = o, Logprobs = 3 });
        await foreach (var e in stream.Events.ReadAllAsync()) events.Add((TokenGenerated)e);
        Assert.Equal(5, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal(3, e.Top!.Length);
            Assert.Equal(e.TokenId, e.Top[0].TokenId); // greedy: the most likely
            Assert.Equal(e.LogProb, e.Top[0].LogProb, 1e-5f);
        });
        Assert.Equal("length", events[^1].FinishReason);
        Assert.All(events.SkipLast(1), e => Assert.Null(e.FinishReason));
    }

    [Fact]
    public void BadRequestsFailAtSubmitAndTheEngineKeepsServing()
    {
        using var model = Model();
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 2, MaxModelLength = 16 });
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 4, EosTokenIds = [] };
        Assert.Contains("maximum context length is 16", Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = new int[14], Sampling = o })).Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = [1, 99999], Sampling = o })).Message);
        Assert.Contains("empty", Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = [], Sampling = o })).Message);
        Assert.Contains("--max-batch", Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = [1], Sampling = o with { Temperature = 1, N = 3 } })).Message);
        Assert.Contains("--top-p", Assert.Throws<InputError>(() => engine.Submit(new EngineRequest { Prompt = [1], Sampling = o with { Temperature = 1, TopP = 2 } })).Message);
        Assert.Equal(4, Run(engine, Prompts[1], o).Single().TokenIds.Length);
    }

    [Fact]
    public async Task ACancelledRequestLeavesTheBatchAndOthersFinish()
    {
        using var model = Model();
        using var engine = new ServingEngine(model, Decode, new ServingEngineOptions { MaxBatch = 2, MaxModelLength = 256 });
        var longRun = new SamplingOptions { Temperature = 1, MaxNewTokens = 240, EosTokenIds = [], Seed = 1 };
        using var cancel = new CancellationTokenSource();
        var stream = engine.Submit(new EngineRequest { Prompt = Prompts[0], Sampling = longRun with { N = 2 } }, cancel.Token);
        Assert.True(await stream.Events.WaitToReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        cancel.Cancel();
        // The batch holds 2: this request can only run once the cancelled one's rows are free.
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 3, EosTokenIds = [] };
        var next = await engine.Submit(new EngineRequest { Prompt = Prompts[1], Sampling = o with { N = 1 } }).CollectAsync(1).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, next.Samples[0].TokenIds.Length);
        var got = (await stream.CollectAsync(2)).Samples;
        Assert.All(got, c => Assert.True(c.TokenIds.Length < 240));
        Assert.Equal(1L, engine.Stats.Cancelled);
    }
}
