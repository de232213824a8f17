using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// The reward model's loss and metrics, as TRL's RewardTrainer.compute_loss defines them, from
/// the rewards r_c of the chosen and r_r of the rejected sequences (the pooled score logits):
/// the Bradley-Terry loss −logσ(r_c − r_r − margin) (margin 0 without a margin column), plus,
/// with a center_rewards_coefficient c, c·(r_c + r_r)²; averaged over the pairs.
/// </summary>
public static class RewardLoss
{
    /// <summary>Per-pair losses [B] from rewards [B]; <paramref name="margins"/> [B] or null.</summary>
    public static Tensor PerPair(Tensor chosen, Tensor rejected, Tensor? margins, double? centerRewardsCoefficient)
    {
        var difference = chosen - rejected;
        var loss = -nn.functional.logsigmoid(margins is null ? difference : difference - margins);
        if (centerRewardsCoefficient is { } c) loss = loss + c * (chosen + rejected).square();
        return loss;
    }

    /// <summary>
    /// TRL's metrics of a micro-batch of B pairs, as sums the loop divides by the step's pairs:
    /// accuracy (r_c strictly above r_r) and margin (r_c − r_r) summed over the pairs; mean_reward,
    /// min_reward and max_reward (over all 2B rewards, chosen and rejected: TRL's per-batch
    /// values, which it averages over the logged batches) times B.
    /// </summary>
    public static Dictionary<string, double> MetricSums(Tensor chosen, Tensor rejected)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var c = chosen.detach().to(ScalarType.Float64);
        var r = rejected.detach().to(ScalarType.Float64);
        var all = cat([c, r]);
        double pairs = c.shape[0];
        return new Dictionary<string, double>
        {
            ["accuracy"] = c.gt(r).to(ScalarType.Float64).sum().item<double>(),
            ["margin"] = (c - r).sum().item<double>(),
            ["mean_reward"] = all.mean().item<double>() * pairs,
            ["min_reward"] = all.min().item<double>() * pairs,
            ["max_reward"] = all.max().item<double>() * pairs,
        };
    }
}
