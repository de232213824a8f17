using System.Text.Json.Nodes;
using PostTrain.Models;
using PostTrain.Trainers;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

/// <summary>
/// The reward model's loss, metrics and gradient against goldens computed with TRL's RewardTrainer
/// formulas by tests/reference/reward_reference.py (torch), on fixed rewards and on the tiny
/// qwen2-reward classifier scoring token-id pairs.
/// </summary>
public class RewardLossTests(ITestOutputHelper output)
{
    static readonly JsonObject Golden = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "reward", "golden.json")))!.AsObject();

    static string ModelDir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "models", name);

    static double[] Doubles(JsonNode node) => node.AsArray().Select(x => x!.GetValue<double>()).ToArray();
    static int[] Ints(JsonNode node) => node.AsArray().Select(x => x!.GetValue<int>()).ToArray();

    static RewardOptions Options(JsonNode config) => new() { CenterRewardsCoefficient = config["center_rewards_coefficient"]?.GetValue<double>() };

    [Fact]
    public void LossAndMetricsMatchTrlOnFixedRewards()
    {
        var inputs = Golden["fixed"]!["inputs"]!;
        using var scope = NewDisposeScope();
        Tensor T(string key) => tensor(Doubles(inputs[key]!), ScalarType.Float64);
        var cases = Golden["fixed"]!["cases"]!.AsArray();
        Assert.Equal(4, cases.Count);
        foreach (var c in cases)
        {
            var config = c!["config"]!;
            bool margins = config["margins"]!.GetValue<bool>();
            var losses = RewardLoss.PerPair(T("rewards_chosen"), T("rewards_rejected"), margins ? T("margins") : null,
                config["center_rewards_coefficient"]?.GetValue<double>());
            var expected = Doubles(c["per_pair_loss"]!);
            var actual = losses.data<double>().ToArray();
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], actual[i], 1e-12);
            var metrics = c["metrics"]!.AsObject();
            Assert.Equal(metrics["loss"]!.GetValue<double>(), losses.mean().item<double>(), 1e-12);
            var sums = RewardLoss.MetricSums(T("rewards_chosen"), T("rewards_rejected"));
            Assert.Equal(["accuracy", "margin", "max_reward", "mean_reward", "min_reward"], sums.Keys.Order());
            foreach (var (key, sum) in sums)
                Assert.True(Math.Abs(metrics[key]!.GetValue<double>() - sum / expected.Length) < 1e-7, $"{config.ToJsonString()}: {key}");
        }
    }

    [Fact]
    public void RewardsLossMetricsAndHeadGradientMatchTrlOnATinyClassifier()
    {
        var model = Golden["model"]!;
        int pad = model["pad_token_id"]!.GetValue<int>();
        var pairs = model["pairs"]!.AsArray().Select((p, i) => new RewardPair(Ints(p!["chosen_ids"]!), Ints(p["rejected_ids"]!),
            p["margin"]!.GetValue<double>(), $"pair {i}")).ToList();
        // Loaded as `posttrain reward --model` loads a sequence classifier: its own head, one label.
        using var classifier = RewardRun.LoadClassifier(new RewardOptions { Model = ModelDir("qwen2-reward") }, TextWriter.Null);
        Assert.Equal(1, classifier.NumLabels);

        using (var scope = NewDisposeScope())
        {
            var rows = pairs.Select(p => p.ChosenIds).Concat(pairs.Select(p => p.RejectedIds));
            var positions = SequenceClassifier.PooledPositions(TestModels.Ids(rows.Select(r => r.Concat(Enumerable.Repeat(pad, 8 - r.Length)).ToArray()).ToArray()), pad);
            Assert.Equal(Ints(model["pooled_positions"]!).Select(x => (long)x), positions.data<long>().ToArray());
        }
        foreach (var c in model["cases"]!.AsArray())
        {
            var config = c!["config"]!;
            bool margins = config["margins"]!.GetValue<bool>();
            var units = margins ? pairs : pairs.Select(p => p with { Margin = null }).ToList();
            var method = new RewardMethod(Options(config), classifier, pad);
            using var scope = NewDisposeScope();
            var rewards = method.Rewards(units).data<float>().ToArray();
            var expectedRewards = Doubles(model["rewards"]!);
            for (int i = 0; i < rewards.Length; i++) Assert.True(Math.Abs(expectedRewards[i] - rewards[i]) < 1e-5, $"reward {i}: {rewards[i]} vs {expectedRewards[i]}");

            classifier.Score.weight!.grad?.zero_();
            var result = method.Loss(classifier.Decoder, units);
            (result.LossSum / units.Count).backward();
            var metrics = c["metrics"]!.AsObject();
            double loss = result.LossSum.item<float>() / units.Count;
            output.WriteLine($"{config.ToJsonString()}: loss {loss} (TRL {metrics["loss"]})");
            Assert.True(Math.Abs(metrics["loss"]!.GetValue<double>() - loss) < 1e-5, $"loss {loss}");
            foreach (var (key, sum) in result.MetricSums)
                Assert.True(Math.Abs(metrics[key]!.GetValue<double>() - sum / units.Count) < 1e-5, $"{key}: {sum / units.Count} vs {metrics[key]}");
            Assert.Equal(metrics.Count - 1, result.MetricSums.Count);
            var grad = classifier.Score.weight!.grad!.data<float>().ToArray();
            var expectedGrad = Doubles(c["score_grad"]!);
            for (int i = 0; i < grad.Length; i++) Assert.True(Math.Abs(expectedGrad[i] - grad[i]) < 1e-5, $"score.weight.grad[{i}]: {grad[i]} vs {expectedGrad[i]}");
        }
    }

    [Fact]
    public void ANewHeadIsNormalWithTheInitializerRangeAndSeeded()
    {
        var config = TestModels.Config(Architecture.Llama, vocab: 64);
        using var a = new SequenceClassifier(config, 1);
        using var b = new SequenceClassifier(config, 1);
        using var other = new SequenceClassifier(config, 1);
        a.InitializeScore(7);
        b.InitializeScore(7);
        other.InitializeScore(8);
        Assert.True(a.Score.weight!.allclose(b.Score.weight!, rtol: 0, atol: 0));
        Assert.False(a.Score.weight!.allclose(other.Score.weight!, rtol: 0, atol: 0));
        using var big = new SequenceClassifier(ModelConfig.Create(Architecture.Llama, vocabSize: 8, hiddenSize: 4096, intermediateSize: 8, layers: 1, heads: 1,
            kvHeads: 1, headDim: 8, maxPositions: 16, ropeTheta: 10000, ropeScaling: null, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2]), 1);
        big.InitializeScore(1);
        double std = big.Score.weight!.std().item<float>();
        Assert.True(Math.Abs(std - 0.02) < 0.002, $"std {std}");
    }

    [Fact]
    public void LiveTensorsDoNotGrowOverLossCalls()
    {
        var pairs = Golden["model"]!["pairs"]!.AsArray().Select((p, i) => new RewardPair(Ints(p!["chosen_ids"]!), Ints(p["rejected_ids"]!), null, $"pair {i}")).ToList();
        using var classifier = RewardRun.LoadClassifier(new RewardOptions { Model = ModelDir("qwen2-reward") }, TextWriter.Null);
        var method = new RewardMethod(new RewardOptions { CenterRewardsCoefficient = 0.01 }, classifier, 266);
        void Step()
        {
            using var scope = NewDisposeScope();
            method.Loss(classifier.Decoder, pairs).LossSum.backward();
        }
        Step();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++) Step();
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
