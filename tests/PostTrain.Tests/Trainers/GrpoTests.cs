using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Trainers;
using PostTrain.Training;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

public class GrpoTests(ITestOutputHelper output)
{
    static double UnbiasedStd(params double[] x)
    {
        double m = x.Average();
        return Math.Sqrt(x.Sum(v => (v - m) * (v - m)) / (x.Length - 1));
    }

    [Fact]
    public void GroupAdvantagesAsTrlScalesThem()
    {
        double[] rewards = [1, 0, 0, 1, 2, 2, 2, 2, 0, 0, 0, 3];
        var (group, std) = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.Group);
        double s1 = UnbiasedStd(1, 0, 0, 1), s3 = UnbiasedStd(0, 0, 0, 3);
        Assert.Equal([s1, 0, s3], std.Select(x => Math.Round(x, 12)).ToArray().Select((x, i) => i == 1 ? x : std[i]));
        Assert.Equal(0.5 / (s1 + 1e-4), group[0], 12);
        Assert.Equal(-0.5 / (s1 + 1e-4), group[1], 12);
        Assert.All(group.Skip(4).Take(4), a => Assert.Equal(0, a)); // equal rewards: no signal
        Assert.Equal(2.25 / (s3 + 1e-4), group[11], 12);
        Assert.Equal(-0.75 / (s3 + 1e-4), group[8], 12);

        var (batch, _) = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.Batch);
        double sb = UnbiasedStd(rewards);
        Assert.Equal(0.5 / (sb + 1e-4), batch[0], 12);     // group mean, batch std
        Assert.Equal(2.25 / (sb + 1e-4), batch[11], 12);
        var (none, _) = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.None);
        Assert.Equal([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0, -0.75, -0.75, -0.75, 2.25], none);
    }

    [Fact]
    public void RlooBaselineExcludesTheSampleItself()
    {
        double[] rewards = [1, 2, 3, 10, 10, 4];
        var a = GrpoLoss.LeaveOneOutAdvantages(rewards, 3);
        Assert.Equal(1 - (2 + 3) / 2.0, a[0], 12);
        Assert.Equal(2 - (1 + 3) / 2.0, a[1], 12);
        Assert.Equal(3 - (1 + 2) / 2.0, a[2], 12);
        Assert.Equal(10 - (10 + 4) / 2.0, a[3], 12);
        Assert.Equal(4 - (10 + 10) / 2.0, a[5], 12);
        // A sample's own reward never lowers its advantage the way a mean including it would.
        var withSelf = GrpoLoss.GroupAdvantages(rewards, 3, ScaleRewards.None).Advantages;
        Assert.Equal(a[0] * 2 / 3, withSelf[0], 12); // r - mean(all) = (G-1)/G (r - mean(others))
    }

    [Fact]
    public void ClippingEngagesExactlyOutsideTheTrustRegion()
    {
        double[] ratios = [0.7, 0.79, 0.81, 1.0, 1.2, 1.27, 1.29, 1.5];
        double[] adv = [-1, -1, -1, 2, 2, 2, 2, -1];
        const double epsLow = 0.2, epsHigh = 0.28;
        using var scope = NewDisposeScope();
        var old = tensor(new float[] { -1, -2, -0.5f, -3, -1, -2, -1.5f, -0.1f });
        var logps = old + tensor(ratios.Select(r => (float)Math.Log(r)).ToArray());
        var terms = GrpoLoss.TokenLoss(logps, old, null, tensor(adv.Select(x => (float)x).ToArray()), epsLow, epsHigh, 0);
        var loss = terms.Loss.data<float>().ToArray();
        var low = terms.LowClipped.data<float>().ToArray();
        var high = terms.HighClipped.data<float>().ToArray();
        for (int i = 0; i < ratios.Length; i++)
        {
            double clipped = Math.Clamp(ratios[i], 1 - epsLow, 1 + epsHigh);
            Assert.Equal(-Math.Min(ratios[i] * adv[i], clipped * adv[i]), loss[i], 5);
            Assert.Equal(ratios[i] < 1 - epsLow && adv[i] < 0 ? 1f : 0f, low[i]);
            Assert.Equal(ratios[i] > 1 + epsHigh && adv[i] > 0 ? 1f : 0f, high[i]);
        }
        Assert.Equal([1f, 1f, 0, 0, 0, 0, 0, 0], low);
        Assert.Equal([0f, 0, 0, 0, 0, 0, 1f, 0], high); // 1.5 with A < 0 is not clipped: min keeps the unclipped term
        Assert.Null(terms.Kl);

        // The k3 KL estimator: exp(ref - logp) - (ref - logp) - 1, added with beta.
        var reference = tensor(new float[] { -1.2f, -2, -0.4f, -3.5f, -1, -2, -1, -0.3f });
        var withKl = GrpoLoss.TokenLoss(logps, old, reference, tensor(adv.Select(x => (float)x).ToArray()), epsLow, epsHigh, 0.04);
        var kl = withKl.Kl!.data<float>().ToArray();
        var lp = logps.data<float>().ToArray();
        var rf = reference.data<float>().ToArray();
        for (int i = 0; i < ratios.Length; i++)
        {
            double d = rf[i] - lp[i];
            Assert.Equal(Math.Exp(d) - d - 1, kl[i], 5);
            Assert.Equal(loss[i] + 0.04 * (Math.Exp(d) - d - 1), withKl.Loss.data<float>()[i], 5);
        }
    }

    [Fact]
    public void LossTypesNormaliseAsTrl()
    {
        using var scope = NewDisposeScope();
        // Two completions of 2 and 3 tokens, plus one fully masked (no tokens); max length 4.
        float[] l = [1, 3, 2, 4, 6];
        var tokenLoss = tensor(l);
        var seq = tensor(new long[] { 0, 0, 1, 1, 1 });
        double Sum(GrpoLossType t) => GrpoLoss.LossSum(tokenLoss, seq, 3, t).item<float>();
        double Items(GrpoLossType t) => GrpoLoss.Items(t, completions: 3, tokens: 5, maxCompletionLength: 4);
        Assert.Equal((2.0 + 4.0 + 0) / 3, Sum(GrpoLossType.Grpo) / Items(GrpoLossType.Grpo), 6);   // mean of sequence means
        Assert.Equal(16.0 / 5, Sum(GrpoLossType.Bnpo) / Items(GrpoLossType.Bnpo), 6);            // token mean of the micro-batch
        Assert.Equal(16.0 / (3 * 4), Sum(GrpoLossType.DrGrpo) / Items(GrpoLossType.DrGrpo), 6);  // sum / (completions x max length)
        Assert.Equal(16.0 / 5, Sum(GrpoLossType.Dapo) / Items(GrpoLossType.Dapo), 6);            // sum / tokens of the step
    }

    sealed class Fixed(string name, Func<RewardSample, double?> f) : IRewardFunction
    {
        public string Name => name;
        public double?[] Score(IReadOnlyList<RewardSample> samples) => samples.Select(f).ToArray();
    }

    [Fact]
    public void RewardSetWeighsAndNamesFailures()
    {
        var samples = new[] { "a", "bb", "ccc" }.Select(c => new RewardSample("prompt " + c, null, c, [], new JsonObject())).ToList();
        var set = new RewardSet([new Fixed("len", s => s.Completion.Length), new Fixed("short", s => s.Completion.Length < 3 ? 1 : null)], [0.5, 2]);
        var scores = set.Score(samples);
        Assert.Equal([0.5 + 2, 1 + 2, 1.5], scores.Total);
        Assert.Equal([1.0, null, null], scores.PerFunction[1].Select((v, i) => i == 0 ? v : (i == 1 ? null : v)));
        var failing = new RewardSet([new Fixed("boom", s => s.Completion == "bb" ? throw new FormatException("bad number") : 1)]);
        var e = Assert.Throws<InputError>(() => failing.Score(samples));
        Assert.Contains("reward 'boom' failed", e.Message);
        Assert.Contains("prompt a", e.Message);
        Assert.Contains("bad number", e.Message);
        Assert.Throws<InputError>(() => new RewardSet([new Fixed("x", _ => 1)], [1, 2]));
        Assert.Contains("--reward-weights: 'x'", Assert.Throws<InputError>(() => RewardSet.ParseWeights("1,x")).Message);
    }

    /// <summary>The mean reward of the logged steps, first and last.</summary>
    static (double First, double Last) Run(GrpoOptions options, string dir, IRewardFunction reward)
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 1, std: 0.1);
        var random = new Random(3);
        var units = Enumerable.Range(0, 8).Select(i => new PromptUnit(i, Enumerable.Range(0, 4).Select(_ => random.Next(3, 96)).ToArray(), $"p{i}",
            new PromptExample($"x:{i}", $"p{i}", null, null, new JsonObject()))).ToList();
        using var reference = options.EffectiveBeta > 0 ? new ReferenceModel(TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 1, std: 0.1)) : null;
        var method = new GrpoMethod(options, new RewardSet([reward]), reference, null, [2], Path.Combine(dir, "completions.jsonl"));
        new Trainer<PromptUnit>(model, method, units, null, options, dir, null).Train(TextWriter.Null);
        var rewards = File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!)
            .Where(m => m["reward"] is not null).Select(m => m["reward"]!.GetValue<double>()).ToList();
        return (rewards[0], rewards[^1]);
    }

    // Reward: the share of even token ids in the completion (dense, so every group has a signal).
    static readonly IRewardFunction EvenTokens = new Fixed("even", s => s.CompletionIds.Length == 0 ? 0 : s.CompletionIds.Count(t => t % 2 == 0) / (double)s.CompletionIds.Length);

    [Trait("Category", "Slow")]
    [Theory]
    [InlineData(OnlineAlgorithm.Grpo, GrpoLossType.Dapo, 1)]
    [InlineData(OnlineAlgorithm.Grpo, GrpoLossType.Grpo, 2)]
    [InlineData(OnlineAlgorithm.Rloo, GrpoLossType.Dapo, 1)]
    public void MeanRewardRisesOnACheckableTask(OnlineAlgorithm algorithm, GrpoLossType lossType, int iterations)
    {
        var dir = TestModels.TempDir();
        var options = new GrpoOptions
        {
            Algorithm = algorithm, LossType = lossType, NumIterations = iterations, NumGenerations = 4, BatchSize = 16, MaxCompletionLength = 6,
            LearningRate = 0.03, MaxSteps = 24 * iterations, LoggingSteps = 4 * iterations, SaveSteps = 0, LogCompletionsSteps = 8,
            Beta = algorithm == OnlineAlgorithm.Rloo ? 0.01 : 0.0, MaxGradNorm = 1.0,
        };
        var (first, last) = Run(options, dir, EvenTokens);
        output.WriteLine($"{algorithm} {lossType} x{iterations}: mean reward {first:0.000} -> {last:0.000}");
        Assert.True(last > first + 0.2, $"mean reward {first} -> {last}");
        var logged = File.ReadAllLines(Path.Combine(dir, "completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        // Logged when a batch is sampled (every num_iterations steps) at a multiple of --log-completions-steps.
        var steps = logged.Select(l => l["step"]!.GetValue<int>()).Distinct().ToList();
        Assert.Equal(Enumerable.Range(0, options.MaxSteps).Where(s => s % 8 == 0 && s % iterations == 0), steps);
        Assert.Equal(16 * steps.Count, logged.Count);
        Assert.All(logged, l => Assert.NotNull(l["rewards"]!["even"]));
        var metrics = File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).First();
        foreach (var key in new[] { "reward", "reward_std", "rewards/even/mean", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean",
                     "completions/mean_length", "completions/clipped_ratio", "entropy", "frac_reward_zero_std" })
            Assert.True(metrics.ContainsKey(key), key);
        if (algorithm == OnlineAlgorithm.Rloo) Assert.True(metrics.ContainsKey("kl"));
    }

    [Fact]
    public void FirstIterationRatiosAreOneAndLaterOnesClip()
    {
        var dir = TestModels.TempDir();
        var options = new GrpoOptions
        {
            NumIterations = 3, NumGenerations = 4, BatchSize = 16, MaxCompletionLength = 6, LearningRate = 0.2, MaxSteps = 6,
            LoggingSteps = 1, SaveSteps = 0, LogCompletionsSteps = 0, MaxGradNorm = 0, Epsilon = 0.01,
        };
        Run(options, dir, EvenTokens);
        var lines = File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!).ToList();
        var region = lines.Select(m => m["clip_ratio/region_mean"]!.GetValue<double>()).ToList();
        output.WriteLine("clip_ratio/region_mean by step: " + string.Join(", ", region.Select(r => r.ToString("0.000"))));
        Assert.Equal(0, region[0]); // sampled by these very weights: ratio 1
        Assert.Equal(0, region[3]);
        Assert.True(region[1] > 0 && region[2] > 0); // a large step moves ratios out of [0.99, 1.01]
        // The same completions for the num_iterations steps of a batch: identical reward metrics.
        Assert.Equal(lines[0]["reward"]!.GetValue<double>(), lines[2]["reward"]!.GetValue<double>());
    }

    [Fact]
    public void LiveTensorsDoNotGrowOverSteps()
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 1, std: 0.1);
        var units = Enumerable.Range(0, 4).Select(i => new PromptUnit(i, [5 + i, 9, 13], $"p{i}", new PromptExample("x", $"p{i}", null, null, new JsonObject()))).ToList();
        using var reference = new ReferenceModel(TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 1, std: 0.1));
        var options = new GrpoOptions { NumGenerations = 2, BatchSize = 4, MaxCompletionLength = 4, MaxSteps = 2, SaveSteps = 0, LogCompletionsSteps = 0, NumIterations = 2, Beta = 0.1, LoggingSteps = 1 };
        GrpoMethod Method() => new(options, new RewardSet([EvenTokens]), reference, null, [2], null);
        new Trainer<PromptUnit>(model, Method(), units, null, options, TestModels.TempDir(), null).Train(TextWriter.Null);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        new Trainer<PromptUnit>(model, Method(), units, null, options with { MaxSteps = 12 }, TestModels.TempDir(), null).Train(TextWriter.Null);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
