using System.Text.Json.Nodes;
using PostTrain.Trainers;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

/// <summary>PPO's rewards, GAE, whitening and clipped losses against tests/reference/ppo_reference.py (TRL's formulas in torch).</summary>
public class PpoLossTests
{
    static readonly JsonArray Cases = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "ppo", "golden.json")))!.AsArray();

    public static TheoryData<string> CaseNames() => new(Cases.Select(c => c!["name"]!.GetValue<string>()));

    static Tensor Matrix(JsonNode node) =>
        tensor(node.AsArray().SelectMany(r => r!.AsArray().Select(v => v!.GetValue<double>())).ToArray(), [node.AsArray().Count, node[0]!.AsArray().Count]);

    static void Near(JsonNode expected, Tensor actual, double tolerance = 1e-9)
    {
        var e = Matrix(expected);
        Assert.Equal(e.shape, actual.shape);
        Assert.True((e - actual).abs().max().item<double>() < tolerance, $"max difference {(e - actual).abs().max().item<double>()}");
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void RewardsAdvantagesAndLossesEqualTheReference(string name)
    {
        using var scope = NewDisposeScope();
        var c = Cases.Single(x => x!["name"]!.GetValue<string>() == name)!;
        var mask = Matrix(c["mask"]!);
        var estimator = c["kl_estimator"]!.GetValue<string>() == "k1" ? KlEstimator.K1 : KlEstimator.K3;
        var scores = tensor(c["scores"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray());

        var kl = PpoLoss.Kl(Matrix(c["old_logps"]!), Matrix(c["ref_logps"]!), mask, estimator);
        Near(c["kl"]!, kl);
        var (rewards, nonScore) = PpoLoss.TokenRewards(kl, mask, scores, c["kl_coef"]!.GetValue<double>());
        Near(c["rewards"]!, rewards);
        Near(c["non_score"]!, nonScore);
        var (advantages, returns) = PpoLoss.Gae(rewards, Matrix(c["old_values"]!), mask, c["gamma"]!.GetValue<double>(), c["lam"]!.GetValue<double>());
        Near(c["advantages"]!, advantages);
        Near(c["returns"]!, returns);
        var whitened = PpoLoss.MaskedWhiten(advantages, mask) * mask;
        Near(c["whitened"]!, whitened);

        var policy = PpoLoss.PolicyLoss(Matrix(c["new_logps"]!), Matrix(c["old_logps"]!), whitened, mask, c["cliprange"]!.GetValue<double>());
        Assert.Equal(c["pg_loss"]!.GetValue<double>(), policy.Loss.item<double>(), 9);
        Assert.Equal(c["pg_clipfrac"]!.GetValue<double>(), policy.ClipFraction, 6);
        Assert.Equal(c["approxkl"]!.GetValue<double>(), policy.ApproxKl, 6);
        Assert.Equal(c["ratio_mean"]!.GetValue<double>(), policy.RatioMean, 6);
        var value = PpoLoss.ValueLoss(Matrix(c["new_values"]!), Matrix(c["old_values"]!) * mask, returns, mask, c["cliprange_value"]!.GetValue<double>());
        Assert.Equal(c["vf_loss"]!.GetValue<double>(), value.Loss.item<double>(), 9);
        Assert.Equal(c["vf_clipfrac"]!.GetValue<double>(), value.ClipFraction, 6);
    }

    [Fact]
    public void GaeWithGammaAndLambdaOneIsTheRewardToGoMinusTheValue()
    {
        using var scope = NewDisposeScope();
        var rewards = tensor(new[] { 0.0, 0, 1, 0 }, [1, 4]);
        var values = tensor(new[] { 0.5, 0.25, 0.75, 9 }, [1, 4]);
        var mask = tensor(new[] { 1.0, 1, 1, 0 }, [1, 4]);
        var (advantages, returns) = PpoLoss.Gae(rewards, values, mask, 1, 1);
        Assert.Equal(new[] { 0.5, 0.75, 0.25, 0 }, advantages.data<double>().ToArray());
        Assert.Equal(new[] { 1.0, 1, 1, 0 }, returns.data<double>().ToArray());
    }
}
