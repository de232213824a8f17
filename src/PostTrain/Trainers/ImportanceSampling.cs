namespace PostTrain.Trainers;

/// <summary>TRL's vllm_importance_sampling_mode: per token or per sequence, ratios clamped (truncate) or zeroed outside the bounds (mask).</summary>
public enum ImportanceSamplingMode { TokenTruncate, TokenMask, SequenceTruncate, SequenceMask }

/// <summary>
/// The importance-sampling correction of remote rollouts, as TRL's GRPOTrainer applies it with vLLM
/// (vllm_importance_sampling_correction): the server sampled from its own copy of the policy, whose
/// log-probabilities differ from the trainer's (other kernels, other precision, an adapter a step
/// behind), so each completion token's loss is weighted by exp(old − sampling), old being the
/// trainer's log-probability at sampling time and sampling the server's. Token modes use each
/// token's ratio; sequence modes one ratio per completion, exp of the summed differences, on every
/// token of it. Truncate clamps the ratio to [clip-min, clip-max]; mask sets ratios outside the
/// bounds to 0 (a missing bound does not apply).
/// </summary>
public sealed record ImportanceSampling(ImportanceSamplingMode Mode, double? ClipMin, double? ClipMax)
{
    public bool SequenceLevel => Mode is ImportanceSamplingMode.SequenceTruncate or ImportanceSamplingMode.SequenceMask;

    /// <summary>The weight of each token of one completion: <paramref name="old"/> the trainer's log-probabilities, <paramref name="sampling"/> the server's.</summary>
    public float[] Weights(IReadOnlyList<float> old, IReadOnlyList<float> sampling)
    {
        if (old.Count != sampling.Count) throw new ArgumentException($"{old.Count} trainer log-probabilities for {sampling.Count} sampled ones");
        var weights = new float[old.Count];
        if (SequenceLevel)
        {
            float sum = 0;
            for (int t = 0; t < old.Count; t++) sum += old[t] - sampling[t];
            Array.Fill(weights, Bound(MathF.Exp(sum)));
        }
        else
            for (int t = 0; t < old.Count; t++) weights[t] = Bound(MathF.Exp(old[t] - sampling[t]));
        return weights;
    }

    /// <summary>A ratio clamped (truncate) or zeroed outside the bounds (mask).</summary>
    public float Bound(float ratio)
    {
        double low = ClipMin ?? double.NegativeInfinity, high = ClipMax ?? double.PositiveInfinity;
        if (Mode is ImportanceSamplingMode.TokenTruncate or ImportanceSamplingMode.SequenceTruncate)
            return (float)Math.Clamp(ratio, low, high);
        return ratio < low || ratio > high ? 0 : ratio;
    }

    /// <summary>
    /// TRL's statistics of a rollout: sampling/sampling_logp_difference/mean and /max (|old − sampling|
    /// over the tokens in the loss; 0 when none), sampling/importance_sampling_ratio/min, /mean and
    /// /max (over those tokens in token modes; over every completion in sequence modes, where one
    /// not in the loss has ratio exp(0) bounded, as TRL's masked sum gives it).
    /// </summary>
    /// <param name="old">Per completion in the loss, the trainer's log-probabilities (null for the others).</param>
    /// <param name="sampling">Per completion, the server's.</param>
    /// <param name="weights">Per completion in the loss, <see cref="Weights"/> (null for the others).</param>
    public Dictionary<string, double> Metrics(IReadOnlyList<IReadOnlyList<float>?> old, IReadOnlyList<IReadOnlyList<float>> sampling, IReadOnlyList<float[]?> weights)
    {
        var deltas = new List<double>();
        var ratios = new List<double>();
        for (int i = 0; i < sampling.Count; i++)
        {
            if (old[i] is not { } o)
            {
                if (SequenceLevel) ratios.Add(Bound(1f));
                continue;
            }
            for (int t = 0; t < o.Count; t++) deltas.Add(Math.Abs(o[t] - sampling[i][t]));
            if (SequenceLevel) ratios.Add(weights[i]!.Length > 0 ? weights[i]![0] : Bound(1f));
            else ratios.AddRange(weights[i]!.Select(w => (double)w));
        }
        return new Dictionary<string, double>
        {
            ["sampling/sampling_logp_difference/mean"] = deltas.Count == 0 ? 0 : deltas.Average(),
            ["sampling/sampling_logp_difference/max"] = deltas.Count == 0 ? 0 : deltas.Max(),
            ["sampling/importance_sampling_ratio/min"] = ratios.Count == 0 ? 0 : ratios.Min(),
            ["sampling/importance_sampling_ratio/mean"] = ratios.Count == 0 ? 0 : ratios.Average(),
            ["sampling/importance_sampling_ratio/max"] = ratios.Count == 0 ? 0 : ratios.Max(),
        };
    }
}
