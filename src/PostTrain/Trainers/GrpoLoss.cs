using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// The arithmetic of GRPO and RLOO as TRL defines it: advantages from grouped rewards, the
/// clipped token surrogate with an optional k3 KL penalty, and the loss types' normalisations.
/// Rewards come ordered by prompt, G samples each.
/// </summary>
public static class GrpoLoss
{
    /// <summary>
    /// GRPO: reward minus its group's mean, divided by (std + 1e-4) of the group (scale "group"),
    /// of the whole batch ("batch"), or not at all ("none"); std is torch's unbiased std.
    /// Also returns each group's std (for reward_std and frac_reward_zero_std).
    /// </summary>
    public static (double[] Advantages, double[] GroupStd) GroupAdvantages(IReadOnlyList<double> rewards, int g, ScaleRewards scale)
    {
        int groups = rewards.Count / g;
        var advantages = new double[rewards.Count];
        var groupStd = new double[groups];
        double batchStd = Std(rewards, 0, rewards.Count);
        for (int p = 0; p < groups; p++)
        {
            double mean = 0;
            for (int j = 0; j < g; j++) mean += rewards[p * g + j];
            mean /= g;
            groupStd[p] = Std(rewards, p * g, g);
            double divisor = scale switch { ScaleRewards.Group => groupStd[p] + 1e-4, ScaleRewards.Batch => batchStd + 1e-4, _ => 1 };
            for (int j = 0; j < g; j++) advantages[p * g + j] = (rewards[p * g + j] - mean) / divisor;
        }
        return (advantages, groupStd);
    }

    /// <summary>RLOO: each reward minus the mean of the other G-1 rewards of its prompt.</summary>
    public static double[] LeaveOneOutAdvantages(IReadOnlyList<double> rewards, int g)
    {
        var advantages = new double[rewards.Count];
        for (int p = 0; p < rewards.Count / g; p++)
        {
            double sum = 0;
            for (int j = 0; j < g; j++) sum += rewards[p * g + j];
            for (int j = 0; j < g; j++)
            {
                double r = rewards[p * g + j];
                advantages[p * g + j] = r - (sum - r) / (g - 1);
            }
        }
        return advantages;
    }

    static double Std(IReadOnlyList<double> x, int start, int n)
    {
        if (n < 2) return 0;
        double mean = 0;
        for (int i = 0; i < n; i++) mean += x[start + i];
        mean /= n;
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (x[start + i] - mean) * (x[start + i] - mean);
        return Math.Sqrt(ss / (n - 1));
    }

    /// <summary>Per-token terms: the loss and the clipping indicators (and the KL when beta &gt; 0).</summary>
    public sealed record TokenTerms(Tensor Loss, Tensor LowClipped, Tensor HighClipped, Tensor? Kl);

    /// <summary>
    /// ratio = exp(logp - old); loss = -min(ratio A, clip(ratio, 1 - epsLow, 1 + epsHigh) A)
    /// + beta * (exp(ref - logp) - (ref - logp) - 1). A token is clipped low when ratio &lt;
    /// 1 - epsLow with A &lt; 0, high when ratio &gt; 1 + epsHigh with A &gt; 0 (TRL's clip_ratio).
    /// </summary>
    public static TokenTerms TokenLoss(Tensor logps, Tensor oldLogps, Tensor? refLogps, Tensor advantages, double epsLow, double epsHigh, double beta)
    {
        var ratio = (logps - oldLogps).exp();
        var clipped = ratio.clamp(1 - epsLow, 1 + epsHigh);
        var loss = -minimum(ratio * advantages, clipped * advantages);
        Tensor? kl = null;
        if (beta != 0 && refLogps is not null)
        {
            var d = refLogps - logps;
            kl = d.exp() - d - 1;
            loss = loss + beta * kl;
        }
        using var noGrad = no_grad();
        var r = ratio.detach();
        var low = r.lt(1 - epsLow).logical_and(advantages.lt(0)).to(ScalarType.Float32);
        var high = r.gt(1 + epsHigh).logical_and(advantages.gt(0)).to(ScalarType.Float32);
        return new TokenTerms(loss, low, high, kl?.detach());
    }

    /// <summary>
    /// The micro-batch's share of the step loss, to be divided by <see cref="Items"/> summed over
    /// the step: grpo sums each completion's token mean (items: completions); bnpo takes the
    /// micro-batch's token mean (items: 1 per micro-batch); dr_grpo sums tokens (items:
    /// completions x max_completion_length); dapo sums tokens (items: the step's tokens).
    /// </summary>
    public static Tensor LossSum(Tensor tokenLoss, Tensor sequenceOfToken, int sequences, GrpoLossType type)
    {
        switch (type)
        {
            case GrpoLossType.Grpo:
            {
                var sums = zeros(sequences, dtype: tokenLoss.dtype).index_add(0, sequenceOfToken, tokenLoss, 1);
                var counts = zeros(sequences, dtype: tokenLoss.dtype).index_add(0, sequenceOfToken, ones_like(tokenLoss), 1);
                return (sums / counts.clamp_min(1)).sum();
            }
            case GrpoLossType.Bnpo:
                return tokenLoss.sum() / Math.Max(1, tokenLoss.shape[0]);
            default:
                return tokenLoss.sum();
        }
    }

    /// <summary>The normaliser's share of a micro-batch for <see cref="LossSum"/>.</summary>
    public static long Items(GrpoLossType type, int completions, long tokens, int maxCompletionLength) => type switch
    {
        GrpoLossType.Grpo => completions,
        GrpoLossType.Bnpo => 1,
        GrpoLossType.DrGrpo => (long)completions * maxCompletionLength,
        _ => tokens,
    };
}
