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
    public void UnscorableCompletionsLeaveTheBaselineAndGetNoAdvantage()
    {
        const double nan = double.NaN;
        // Groups of 4: partly scored; never scored; one scored completion; fully scored with equal rewards.
        double[] rewards = [1, nan, 0, 1, nan, nan, nan, nan, 2, nan, nan, nan, 3, 3, 3, 3];
        double s0 = UnbiasedStd(1, 0, 1);
        var (group, std) = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.Group);
        Assert.Equal((1 - 2 / 3.0) / (s0 + 1e-4), group[0], 12); // TRL's nanmean and nanstd: the NaN is not a 0
        Assert.Equal((0 - 2 / 3.0) / (s0 + 1e-4), group[2], 12);
        Assert.Equal(0, group[1]);                                 // unscorable: advantage 0 (nan_to_num)
        Assert.All(group.Skip(4), a => Assert.Equal(0, a));        // no group, a lone score (std NaN), equal scores
        Assert.Equal(s0, std[0], 12);
        Assert.True(double.IsNaN(std[1]) && double.IsNaN(std[2])); // nanstd of fewer than two values
        Assert.Equal(0, std[3]);

        var (batch, batchStd) = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.Batch);
        double sb = UnbiasedStd(1, 0, 1, 2, 3, 3, 3, 3);
        Assert.All(batchStd, s => Assert.Equal(sb, s, 12));       // frac_reward_zero_std then checks the batch's std, as TRL
        Assert.Equal((1 - 2 / 3.0) / (sb + 1e-4), batch[0], 12);
        Assert.Equal(0, batch[8]);                                 // a lone score is its group's mean
        var none = GrpoLoss.GroupAdvantages(rewards, 4, ScaleRewards.None).Advantages;
        double[] expected = [1 / 3.0, 0, -2 / 3.0, 1 / 3.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], none[i], 12);

        // RLOO: the baseline is the mean of the other scorable rewards; a lone score has none (0/0): 0.
        var rloo = GrpoLoss.LeaveOneOutAdvantages(rewards, 4);
        Assert.Equal([1 - 1 / 2.0, 0, 0 - 2 / 2.0, 1 - 1 / 2.0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], rloo);
    }

    [Fact]
    public void RolloutMetricsAreTrlsOverTheBatch()
    {
        var scores = new RewardScores([1, double.NaN, 3, 0.5, 2, 4],
            [[1, null, 1, 0, 0, 1], [null, null, 2, 0.5, 2, 3]]);
        int[] lengths = [4, 6, 2, 6, 3, 5];
        bool[] truncated = [false, true, false, true, false, false];
        var m = GrpoLoss.RolloutMetrics(["a", "b"], scores, [0.5, 0, double.NaN], lengths, truncated);
        Assert.Equal(10.5 / 5, m["reward"], 12);
        Assert.Equal(UnbiasedStd(1, 3, 0.5, 2, 4), m["reward_std"], 12); // the std of the batch's rewards, not a mean of group stds
        Assert.Equal(3 / 5.0, m["rewards/a/mean"], 12);
        Assert.Equal(UnbiasedStd(1, 1, 0, 0, 1), m["rewards/a/std"], 12);
        Assert.Equal(7.5 / 4, m["rewards/b/mean"], 12);
        Assert.Equal(UnbiasedStd(2, 0.5, 2, 3), m["rewards/b/std"], 12);
        Assert.Equal(1 / 3.0, m["frac_reward_zero_std"], 12);              // NaN is not close to 0
        Assert.Equal(26 / 6.0, m["completions/mean_length"], 12);
        Assert.Equal(2, m["completions/min_length"]);
        Assert.Equal(6, m["completions/max_length"]);
        Assert.Equal(2 / 6.0, m["completions/clipped_ratio"], 12);
        Assert.Equal(14 / 4.0, m["completions/mean_terminated_length"], 12);
        Assert.Equal(2, m["completions/min_terminated_length"]);
        Assert.Equal(5, m["completions/max_terminated_length"]);
        // Every completion cut at the limit: the terminated lengths are 0, as TRL logs them.
        var cut = GrpoLoss.RolloutMetrics(["a", "b"], scores, [0.5], lengths, truncated.Select(_ => true).ToArray(), prefix: "eval_");
        Assert.Equal(0, cut["eval_completions/mean_terminated_length"]);
        Assert.Equal(0, cut["eval_completions/max_terminated_length"]);
        Assert.Equal(1, cut["eval_completions/clipped_ratio"]);
        // A function that scored nothing has no mean (NaN, left out of the logged average).
        var none = GrpoLoss.RolloutMetrics(["a"], new RewardScores([double.NaN, double.NaN], [[null, null]]), [double.NaN], [1, 1], [false, false]);
        Assert.True(double.IsNaN(none["rewards/a/mean"]) && double.IsNaN(none["reward"]) && double.IsNaN(none["reward_std"]));
    }

    [Fact]
    public void ClippedSharesPerCompletion()
    {
        using var scope = NewDisposeScope();
        // Completion 0: 1 of 2 tokens clipped low, none high; completion 1 has no tokens; completion 2: 0 of 3 low, 2 of 3 high.
        var values = tensor(new float[] { 1, 0, 0, 0, 0, 0, 0, 1, 0, 1 }, [5, 2]);
        var means = GrpoLoss.SequenceMeans(values, tensor(new long[] { 0, 0, 2, 2, 2 }), 3);
        Assert.Equal(2, means.Count);
        Assert.Equal([0.5, 0], means[0]);
        Assert.Equal([0, 2 / 3.0], means[1]);
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
        Assert.Equal(0, scores.Unscorable);
        // TRL: None where a function does not apply; the total is the nansum over the functions that
        // scored, and NaN (unscorable) when none did, never 0.
        var partial = new RewardSet([new Fixed("short", s => s.Completion.Length < 2 ? 1 : null), new Fixed("long", s => s.Completion.Length > 2 ? 3 : null)], [1, 0.5]);
        var partialScores = partial.Score(samples);
        Assert.Equal(1.0, partialScores.Total[0]);
        Assert.True(double.IsNaN(partialScores.Total[1]));
        Assert.Equal(1.5, partialScores.Total[2]);
        Assert.Equal(1, partialScores.Unscorable);
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
    [InlineData(OnlineAlgorithm.Rloo, null, 1)] // RLOO has no loss type: its loss is per sequence
    public void MeanRewardRisesOnACheckableTask(OnlineAlgorithm algorithm, GrpoLossType? lossType, int iterations)
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
        // TRL's GRPOTrainer and RLOOTrainer metric names (_metrics keys), each present.
        foreach (var key in new[] { "reward", "reward_std", "rewards/even/mean", "rewards/even/std", "frac_reward_zero_std", "num_tokens",
                     "completions/mean_length", "completions/min_length", "completions/max_length", "completions/clipped_ratio",
                     "completions/mean_terminated_length", "completions/min_terminated_length", "completions/max_terminated_length",
                     "clip_ratio/low_mean", "clip_ratio/low_min", "clip_ratio/high_mean", "clip_ratio/high_max", "clip_ratio/region_mean", "entropy" })
            Assert.True(metrics.ContainsKey(key) && metrics[key] is not null, key);
        if (algorithm == OnlineAlgorithm.Rloo) Assert.True(metrics.ContainsKey("kl"));
    }

    [Fact]
    public void UnscorableCompletionsAreLoggedReportedAndLeftOutOfTheRewardStatistics()
    {
        var dir = TestModels.TempDir();
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 2, std: 0.1);
        var random = new Random(5);
        // Prompts 0 and 1 have no reference: the reward does not apply to them (None in TRL).
        var units = Enumerable.Range(0, 8).Select(i => new PromptUnit(i, Enumerable.Range(0, 4).Select(_ => random.Next(3, 96)).ToArray(), $"p{i}",
            new PromptExample($"x:{i}", $"p{i}", null, null, new JsonObject { ["scored"] = i >= 2 }))).ToList();
        var reward = new Fixed("even", s => s.Row["scored"]!.GetValue<bool>() ? EvenTokens.Score([s])[0] : null);
        var never = new Fixed("never", _ => null);
        var options = new GrpoOptions
        {
            NumGenerations = 4, BatchSize = 8, GradientAccumulationSteps = 2, MaxCompletionLength = 6, MaxSteps = 2,
            LoggingSteps = 1, SaveSteps = 0, LogCompletionsSteps = 1, LearningRate = 0.01,
        };
        var method = new GrpoMethod(options, new RewardSet([reward, never]), null, null, [2], Path.Combine(dir, "completions.jsonl"));
        var console = new StringWriter();
        new Trainer<PromptUnit>(model, method, units, null, options, dir, null).Train(console);
        Assert.Contains("Warning: step ", console.ToString());
        Assert.Matches("every reward function returned null for [48] of 16 completions", console.ToString()); // prompt 0 or 1, or both, in the step

        var logged = File.ReadAllLines(Path.Combine(dir, "completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        var metrics = File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        Assert.Equal(32, logged.Count);
        Assert.Equal(8, logged.Count(l => l["reward"] is null));
        for (int step = 0; step < 2; step++)
        {
            var batch = logged.Where(l => l["step"]!.GetValue<int>() == step).ToList();
            for (int p = 0; p < 4; p++)
            {
                var group = batch.Skip(4 * p).Take(4).ToList();
                if (group[0]["reward"] is null)
                {
                    Assert.All(group, l => Assert.Null(l["reward"]));
                    Assert.All(group, l => Assert.Equal(0, l["advantage"]!.GetValue<double>())); // no signal from an unscorable completion
                    continue;
                }
                var r = group.Select(l => l["reward"]!.GetValue<double>()).ToArray();
                double std = UnbiasedStd(r);
                for (int j = 0; j < 4; j++)
                    Assert.Equal(std < 1e-12 ? 0 : (r[j] - r.Average()) / (std + 1e-4), group[j]["advantage"]!.GetValue<double>(), 9);
            }
            // reward and reward_std: the mean and the std of the scorable rewards of the whole step.
            var scored = batch.Where(l => l["reward"] is not null).Select(l => l["reward"]!.GetValue<double>()).ToArray();
            var line = metrics.Single(m => m["step"]!.GetValue<int>() == step + 1);
            Assert.Equal(scored.Average(), line["reward"]!.GetValue<double>(), 12);
            Assert.Equal(UnbiasedStd(scored), line["reward_std"]!.GetValue<double>(), 12);
            Assert.Equal(scored.Average(), line["rewards/even/mean"]!.GetValue<double>(), 12);
            Assert.True(line.ContainsKey("rewards/never/mean") && line["rewards/never/mean"] is null); // applied to nothing: NaN, written null
        }
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
