using System.Text.Json.Nodes;
using PostTrain.Trainers;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

/// <summary>
/// RLOO's loss, advantages and KL penalty against goldens computed with TRL's RLOOTrainer formulas
/// by tests/reference/rloo_reference.py (torch, float64, padded tensors with a completion mask).
/// </summary>
public class RlooLossTests
{
    static readonly JsonObject Golden = JsonNode.Parse(File.ReadAllText(
        Path.Combine(AppContext.BaseDirectory, "Fixtures", "rloo", "golden.json")))!.AsObject();

    static double[] Doubles(JsonNode? node) => node!.AsArray().Select(x => x is null ? double.NaN : x.GetValue<double>()).ToArray();
    static double[][] Rows(JsonNode? node) => node!.AsArray().Select(Doubles).ToArray();
    static bool[] Flags(JsonNode? node) => node!.AsArray().Select(x => x!.GetValue<bool>()).ToArray();

    [Fact]
    public void SequenceLossGradientAndClipRatiosMatchTrl()
    {
        var inputs = Golden["loss"]!["inputs"]!;
        var logps = Rows(inputs["logps"]);
        var old = Rows(inputs["old_logps"]);
        var inLoss = Flags(inputs["in_loss"]);
        var advantages = Doubles(inputs["advantages"]);
        int n = logps.Length;
        // The scored tokens as TokenRows gives them: row order, only the completions in the loss.
        var sequenceOfToken = Enumerable.Range(0, n).Where(i => inLoss[i]).SelectMany(i => Enumerable.Repeat((long)i, logps[i].Length)).ToArray();
        var cases = Golden["loss"]!["cases"]!.AsArray();
        Assert.Equal(3, cases.Count);
        foreach (var c in cases)
        {
            using var scope = NewDisposeScope();
            var tokens = tensor(Enumerable.Range(0, n).Where(i => inLoss[i]).SelectMany(i => logps[i]).ToArray(), ScalarType.Float64).requires_grad_(true);
            var oldTokens = tensor(Enumerable.Range(0, n).Where(i => inLoss[i]).SelectMany(i => old[i]).ToArray(), ScalarType.Float64);
            var seq = tensor(sequenceOfToken);
            var terms = RlooLoss.SequenceLoss(RlooLoss.SequenceSums(tokens, seq, n), RlooLoss.SequenceSums(oldTokens, seq, n),
                tensor(advantages, ScalarType.Float64), c!["epsilon"]!.GetValue<double>(), c["epsilon_high"]!.GetValue<double>());
            var perSequence = terms.Loss.data<double>().ToArray();
            var expected = Doubles(c["per_sequence_loss"]);
            for (int i = 0; i < n; i++) Assert.Equal(expected[i], perSequence[i], 1e-12);
            // The loop divides the summed loss by the step's items, the completions: TRL's mean.
            var loss = terms.Loss.sum() / n;
            Assert.Equal(c["loss"]!.GetValue<double>(), loss.item<double>(), 1e-12);
            loss.backward();
            var grad = tokens.grad!.data<double>().ToArray();
            var expectedGrad = Rows(c["grad"]).Where((_, i) => inLoss[i]).SelectMany(g => g).ToArray();
            Assert.Equal(expectedGrad.Length, grad.Length);
            for (int t = 0; t < grad.Length; t++) Assert.Equal(expectedGrad[t], grad[t], 1e-12);
            Assert.All(Rows(c["grad"]).Where((_, i) => !inLoss[i]).SelectMany(g => g), g => Assert.Equal(0, g)); // a masked completion has no gradient
            var metrics = RlooLoss.ClipMetrics(terms);
            foreach (var (key, value) in c["metrics"]!.AsObject())
                Assert.Equal(value!.GetValue<double>(), metrics[key], 1e-12);
        }
    }

    [Fact]
    public void KlPenaltyLeaveOneOutBaselineAndNormalisationMatchTrl()
    {
        var part = Golden["advantages"]!;
        var inputs = part["inputs"]!;
        int g = inputs["num_generations"]!.GetValue<int>();
        var rewards = Doubles(inputs["rewards"]);
        var inLoss = Flags(inputs["in_loss"]);
        // The rollout's per-completion log-probabilities: float32, null for a completion not in the loss.
        IReadOnlyList<float>?[] PerCompletion(JsonNode? node) =>
            Rows(node).Select((r, i) => inLoss[i] ? r.Select(x => (float)x).ToArray() : null).ToArray();
        var (sequenceKl, meanKl) = RlooLoss.Kl(PerCompletion(inputs["old_logps"]), PerCompletion(inputs["ref_logps"]));
        var expectedKl = Doubles(part["sequence_kl"]);
        for (int i = 0; i < expectedKl.Length; i++) Assert.Equal(expectedKl[i], sequenceKl[i], 1e-5); // float32 log-probabilities
        Assert.Equal(part["kl"]!.GetValue<double>(), meanKl, 1e-6);
        Assert.Equal(0, sequenceKl[6]); // masked: no KL

        var cases = part["cases"]!.AsArray();
        Assert.Equal(4, cases.Count);
        foreach (var c in cases)
        {
            double beta = c!["beta"]!.GetValue<double>();
            // The shaping itself, on TRL's float64 KL, so the rest compares at 1e-12.
            var shaped = RlooLoss.ShapedRewards(rewards, expectedKl, beta);
            var expectedShaped = Doubles(c["shaped_rewards"]);
            for (int i = 0; i < shaped.Length; i++)
                if (double.IsNaN(expectedShaped[i])) Assert.True(double.IsNaN(shaped[i]));
                else Assert.Equal(expectedShaped[i], shaped[i], 1e-12);
            var advantages = RlooLoss.Advantages(shaped, g, c["normalize_advantages"]!.GetValue<bool>());
            var expected = Doubles(c["advantages"]);
            for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], advantages[i], 1e-12);
            // frac_reward_zero_std looks at each group's std after the penalty (NaN for a lone score).
            var std = GrpoLoss.GroupAdvantages(shaped, g, ScaleRewards.None).Std;
            var expectedStd = Doubles(c["std_rewards"]);
            for (int p = 0; p < std.Length; p++)
                if (double.IsNaN(expectedStd[p])) Assert.True(double.IsNaN(std[p]));
                else Assert.Equal(expectedStd[p], std[p], 1e-12);
        }
    }

    [Fact]
    public void OptionsThatBelongToTheOtherAlgorithmAreErrors()
    {
        var rloo = new GrpoOptions { Algorithm = OnlineAlgorithm.Rloo };
        Assert.Equal(2, rloo.EffectiveNumGenerations); // TRL's RLOOConfig
        Assert.Equal(8, new GrpoOptions().EffectiveNumGenerations); // TRL's GRPOConfig
        Assert.Equal(4, rloo.UnitsPerMicroBatch); // the loop's --batch-size 8 counts completions
        rloo.Validate();
        Assert.StartsWith("--loss-type: applies to grpo only", Assert.Throws<InputError>(() => (rloo with { LossType = GrpoLossType.Dapo }).Validate()).Message);
        Assert.StartsWith("--scale-rewards: applies to grpo only", Assert.Throws<InputError>(() => (rloo with { ScaleRewards = ScaleRewards.Batch }).Validate()).Message);
        (rloo with { NormalizeAdvantages = true }).Validate();
        Assert.StartsWith("--normalize-advantages: applies to rloo only", Assert.Throws<InputError>(() => new GrpoOptions { NormalizeAdvantages = true }.Validate()).Message);
        Assert.Contains("must be a multiple of --num-generations (8)", Assert.Throws<InputError>(() => new GrpoOptions { BatchSize = 4 }.Validate()).Message);
    }
}
