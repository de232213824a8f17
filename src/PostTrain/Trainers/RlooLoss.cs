using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// RLOO as TRL's RLOOTrainer defines it (trl/trainer/rloo_trainer.py): the KL to the reference
/// taken from the reward (first-order log-ratio summed over each completion, times beta), the
/// leave-one-out baseline with optional normalisation over the generation batch
/// (_generate_and_score_completions), and the loss (_compute_loss): one importance ratio per
/// completion, exp(Σ log π − Σ log π_old) over its tokens, the clipped surrogate
/// −min(ρA, clip(ρ, 1−ε, 1+ε_high)A) per completion, averaged over the completions.
/// </summary>
public static class RlooLoss
{
    /// <summary>
    /// Each reward minus the mean of the other scorable rewards of its prompt (G per prompt;
    /// TRL: nansum of the others over the scorable count − 1). With <paramref name="normalize"/>
    /// (TRL's normalize_advantages) the advantages of all <paramref name="rewards"/> (the step) are
    /// then shifted and scaled, (a − nanmean) / (nanstd + 1e-4), over the scorable ones. Last, every
    /// NaN (an unscorable completion, or a prompt's only scorable one: 0/0) becomes 0.
    /// </summary>
    public static double[] Advantages(IReadOnlyList<double> rewards, int g, bool normalize)
    {
        var advantages = new double[rewards.Count];
        for (int p = 0; p < rewards.Count / g; p++)
        {
            double sum = 0;
            int count = 0;
            for (int j = 0; j < g; j++)
                if (!double.IsNaN(rewards[p * g + j])) { sum += rewards[p * g + j]; count++; }
            for (int j = 0; j < g; j++)
            {
                double r = rewards[p * g + j];
                advantages[p * g + j] = r - (sum - r) / (count - 1);
            }
        }
        if (normalize)
        {
            double mean = GrpoLoss.NanMean(advantages, 0, advantages.Length), std = GrpoLoss.NanStd(advantages, 0, advantages.Length);
            for (int i = 0; i < advantages.Length; i++) advantages[i] = (advantages[i] - mean) / (std + 1e-4);
        }
        for (int i = 0; i < advantages.Length; i++)
            if (double.IsNaN(advantages[i])) advantages[i] = 0;
        return advantages;
    }

    /// <summary>
    /// The KL estimate RLOO puts in the reward: per completion the sum over its tokens of
    /// log π_old − log π_ref (first order, so it can be negative; 0 for a completion not in the
    /// loss, null), and the mean of that per-token difference over all tokens, TRL's logged kl.
    /// </summary>
    public static (double[] Sequence, double MeanPerToken) Kl(IReadOnlyList<IReadOnlyList<float>?> sampling, IReadOnlyList<IReadOnlyList<float>?> reference)
    {
        var sequence = new double[sampling.Count];
        double total = 0;
        long tokens = 0;
        for (int i = 0; i < sampling.Count; i++)
        {
            if (sampling[i] is not { } s) continue;
            var r = reference[i]!;
            double kl = 0;
            for (int t = 0; t < s.Count; t++) kl += s[t] - r[t];
            sequence[i] = kl;
            total += kl;
            tokens += s.Count;
        }
        return (sequence, total / Math.Max(1, tokens));
    }

    /// <summary>TRL: rewards − beta × the sequence KL (an unscorable reward stays NaN).</summary>
    public static double[] ShapedRewards(IReadOnlyList<double> rewards, IReadOnlyList<double> sequenceKl, double beta) =>
        rewards.Select((r, i) => beta == 0 ? r : r - beta * sequenceKl[i]).ToArray();

    /// <summary>Each sequence's sum of a per-token value [tokens] (with autograd): [sequences], 0 for a sequence without tokens.</summary>
    public static Tensor SequenceSums(Tensor tokenValues, Tensor sequenceOfToken, int sequences) =>
        zeros(sequences, dtype: tokenValues.dtype).index_add(0, sequenceOfToken, tokenValues, 1);

    /// <summary>Per sequence: the loss, and whether its ratio was clipped low (ratio &lt; 1 − ε with A &lt; 0) or high (ratio &gt; 1 + ε_high with A &gt; 0), as 0/1.</summary>
    public sealed record SequenceTerms(Tensor Loss, Tensor LowClipped, Tensor HighClipped);

    /// <summary>
    /// ratio = exp(logp − old) of whole sequences (summed token log-probabilities; a sequence
    /// left out of the loss has 0 for both, ratio 1, as TRL's masked sums); loss per sequence
    /// −min(ratio A, clip(ratio, 1 − epsLow, 1 + epsHigh) A). The loss of a micro-batch is their
    /// mean (here: their sum, divided by the step's completions by the loop).
    /// </summary>
    public static SequenceTerms SequenceLoss(Tensor logps, Tensor oldLogps, Tensor advantages, double epsLow, double epsHigh)
    {
        var ratio = (logps - oldLogps).exp();
        var clipped = ratio.clamp(1 - epsLow, 1 + epsHigh);
        var loss = -minimum(ratio * advantages, clipped * advantages);
        using var noGrad = no_grad();
        var r = ratio.detach();
        return new SequenceTerms(loss,
            r.lt(1 - epsLow).logical_and(advantages.lt(0)).to(ScalarType.Float64),
            r.gt(1 + epsHigh).logical_and(advantages.gt(0)).to(ScalarType.Float64));
    }

    /// <summary>
    /// TRL's clip statistics of a micro-batch, over its sequences: clip_ratio/low_mean, low_min
    /// (the smallest 0/1 flag: 1 only when every sequence clipped low), high_mean, high_max and region_mean.
    /// </summary>
    public static Dictionary<string, double> ClipMetrics(SequenceTerms terms)
    {
        using var noGrad = no_grad();
        var low = terms.LowClipped.data<double>().ToArray();
        var high = terms.HighClipped.data<double>().ToArray();
        if (low.Length == 0) return new();
        return new Dictionary<string, double>
        {
            ["clip_ratio/low_mean"] = low.Average(),
            ["clip_ratio/low_min"] = low.Min(),
            ["clip_ratio/high_mean"] = high.Average(),
            ["clip_ratio/high_max"] = high.Max(),
            ["clip_ratio/region_mean"] = low.Select((l, i) => l > 0 || high[i] > 0 ? 1.0 : 0.0).Average(),
        };
    }
}
