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
/// The arithmetic of GRPO as TRL defines it: advantages from grouped rewards (NaN for a
/// completion no reward function scored), the clipped token surrogate with an optional k3 KL
/// penalty, the loss types' normalisations, and the rollout statistics GRPO and RLOO both log
/// (RLOO's own loss: <see cref="RlooLoss"/>). Rewards come ordered by prompt, G samples each.
/// </summary>
public static class GrpoLoss
{
    /// <summary>
    /// GRPO: reward minus its group's mean, divided by (std + 1e-4) of the group (scale "group"),
    /// of the whole batch ("batch"), or not at all ("none"); std is torch's unbiased std. NaN
    /// rewards (completions no reward function scored) are left out of the means and stds (TRL's
    /// nanmean and nanstd; a std of fewer than two rewards is NaN) and every NaN advantage becomes
    /// 0 (TRL's nan_to_num): an unscorable completion, or a group with one scorable completion,
    /// moves nothing. Also returns, per group, the std TRL checks for frac_reward_zero_std: the
    /// group's, or with batch scaling the batch's.
    /// </summary>
    public static (double[] Advantages, double[] Std) GroupAdvantages(IReadOnlyList<double> rewards, int g, ScaleRewards scale)
    {
        int groups = rewards.Count / g;
        var advantages = new double[rewards.Count];
        var stds = new double[groups];
        double batchStd = NanStd(rewards, 0, rewards.Count);
        for (int p = 0; p < groups; p++)
        {
            double mean = NanMean(rewards, p * g, g);
            stds[p] = scale == ScaleRewards.Batch ? batchStd : NanStd(rewards, p * g, g);
            double divisor = scale == ScaleRewards.None ? 1 : stds[p] + 1e-4;
            for (int j = 0; j < g; j++)
            {
                double a = (rewards[p * g + j] - mean) / divisor;
                advantages[p * g + j] = double.IsNaN(a) ? 0 : a;
            }
        }
        return (advantages, stds);
    }

    /// <summary>
    /// RLOO: each reward minus the mean of the other rewards of its prompt. NaN rewards are left
    /// out of the baseline (TRL: nansum of the others over the scorable count − 1) and get
    /// advantage 0, as does a prompt's only scorable completion (0/0).
    /// </summary>
    public static double[] LeaveOneOutAdvantages(IReadOnlyList<double> rewards, int g) => RlooLoss.Advantages(rewards, g, normalize: false);

    /// <summary>The mean of the values that are not NaN (NaN when none is).</summary>
    public static double NanMean(IReadOnlyList<double> x, int start, int n)
    {
        double sum = 0;
        int count = 0;
        for (int i = 0; i < n; i++)
            if (!double.IsNaN(x[start + i])) { sum += x[start + i]; count++; }
        return count > 0 ? sum / count : double.NaN;
    }

    /// <summary>TRL's nanstd: the unbiased std of the values that are not NaN (NaN when fewer than two are).</summary>
    public static double NanStd(IReadOnlyList<double> x, int start, int n)
    {
        double mean = NanMean(x, start, n);
        double ss = 0;
        int count = 0;
        for (int i = 0; i < n; i++)
            if (!double.IsNaN(x[start + i])) { ss += (x[start + i] - mean) * (x[start + i] - mean); count++; }
        return count > 1 ? Math.Sqrt(ss / (count - 1)) : double.NaN;
    }

    /// <summary>
    /// TRL's statistics of one generation batch (GRPOTrainer and RLOOTrainer,
    /// _generate_and_score_completions), each name after <paramref name="prefix"/>:
    /// reward and reward_std (nanmean and nanstd of the weighted totals: unscorable completions,
    /// NaN, left out), rewards/NAME/mean and rewards/NAME/std (each function over the completions
    /// it scored; NaN when it scored none), frac_reward_zero_std (the share of
    /// <paramref name="groupStd"/> within 1e-8 of 0, torch.isclose; NaN is not), and
    /// completions/mean_length, min_length, max_length (tokens, EOS included),
    /// clipped_ratio (the share cut at the length limit) and mean_terminated_length,
    /// min_terminated_length, max_terminated_length (over the completions that ended; 0 when none did).
    /// </summary>
    public static Dictionary<string, double> RolloutMetrics(IReadOnlyList<string> names, RewardScores scores, IReadOnlyList<double> groupStd,
        IReadOnlyList<int> lengths, IReadOnlyList<bool> truncated, string prefix = "")
    {
        var m = new Dictionary<string, double>();
        for (int f = 0; f < names.Count; f++)
        {
            var scored = scores.PerFunction[f].Select(v => v ?? double.NaN).ToArray();
            m[$"{prefix}rewards/{names[f]}/mean"] = NanMean(scored, 0, scored.Length);
            m[$"{prefix}rewards/{names[f]}/std"] = NanStd(scored, 0, scored.Length);
        }
        m[prefix + "reward"] = NanMean(scores.Total, 0, scores.Total.Length);
        m[prefix + "reward_std"] = NanStd(scores.Total, 0, scores.Total.Length);
        m[prefix + "frac_reward_zero_std"] = groupStd.Count == 0 ? double.NaN : groupStd.Count(s => Math.Abs(s) <= 1e-8) / (double)groupStd.Count;
        m[prefix + "completions/mean_length"] = lengths.Average();
        m[prefix + "completions/min_length"] = lengths.Min();
        m[prefix + "completions/max_length"] = lengths.Max();
        m[prefix + "completions/clipped_ratio"] = truncated.Count(t => t) / (double)truncated.Count;
        var terminated = lengths.Where((_, i) => !truncated[i]).DefaultIfEmpty(0).ToList();
        m[prefix + "completions/mean_terminated_length"] = terminated.Average();
        m[prefix + "completions/min_terminated_length"] = terminated.Min();
        m[prefix + "completions/max_terminated_length"] = terminated.Max();
        return m;
    }

    /// <summary>Per-token terms: the loss and the clipping indicators (and the KL when beta &gt; 0).</summary>
    public sealed record TokenTerms(Tensor Loss, Tensor LowClipped, Tensor HighClipped, Tensor? Kl);

    /// <summary>
    /// ratio = exp(logp - old); loss = -min(ratio A, clip(ratio, 1 - epsLow, 1 + epsHigh) A)
    /// + beta * (exp(ref - logp) - (ref - logp) - 1). A token is clipped low when ratio &lt;
    /// 1 - epsLow with A &lt; 0, high when ratio &gt; 1 + epsHigh with A &gt; 0 (TRL's clip_ratio).
    /// With <paramref name="importanceWeights"/> (remote rollouts' correction) the surrogate is
    /// multiplied by them before the KL term is added, as TRL does.
    /// </summary>
    public static TokenTerms TokenLoss(Tensor logps, Tensor oldLogps, Tensor? refLogps, Tensor advantages, double epsLow, double epsHigh, double beta,
        Tensor? importanceWeights = null)
    {
        var ratio = (logps - oldLogps).exp();
        var clipped = ratio.clamp(1 - epsLow, 1 + epsHigh);
        var loss = -minimum(ratio * advantages, clipped * advantages);
        if (importanceWeights is not null) loss = loss * importanceWeights;
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

    /// <summary>
    /// Per sequence that has tokens, the mean over its tokens of each column of
    /// <paramref name="tokenValues"/> [tokens, k] (no gradient); sequences without tokens are left out
    /// (TRL's masked mean is NaN there, and nanmin and nanmax skip it).
    /// </summary>
    public static List<double[]> SequenceMeans(Tensor tokenValues, Tensor sequenceOfToken, int sequences)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var values = tokenValues.detach().to(ScalarType.Float64);
        long k = values.shape[1];
        var sums = zeros(sequences, k, dtype: ScalarType.Float64).index_add(0, sequenceOfToken, values, 1).data<double>().ToArray();
        var counts = zeros(sequences, dtype: ScalarType.Float64).index_add(0, sequenceOfToken, ones(values.shape[0], dtype: ScalarType.Float64), 1)
            .data<double>().ToArray();
        var result = new List<double[]>();
        for (int i = 0; i < sequences; i++)
            if (counts[i] > 0)
                result.Add(Enumerable.Range(0, (int)k).Select(j => sums[i * k + j] / counts[i]).ToArray());
        return result;
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
