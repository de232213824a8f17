using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>How PPO estimates the per-token KL to the reference (TRL's kl_estimator).</summary>
public enum KlEstimator { K1, K3 }

/// <summary>
/// PPO's arithmetic as TRL's PPOTrainer (trl/experimental/ppo/ppo_trainer.py) defines it, on
/// right-padded [completions, tokens] tensors of completion tokens with a 0/1 mask of the valid
/// ones (the completion up to and including its EOS):
/// <list type="bullet">
/// <item>rewards: −kl_coef·KL per token (k1: logp − ref; k3: (e^{ref−logp} − 1) − (ref − logp)),
/// plus the sequence's score at its last valid token;</item>
/// <item>GAE: δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}, returns = A + V; advantages
/// whitened over every valid token of the batch;</item>
/// <item>policy loss: masked mean of max(−A·ρ, −A·clip(ρ, 1±ε)); value loss: ½·masked mean of
/// max((V − R)², (clip(V, V_old ± ε_v) − R)²).</item>
/// </list>
/// One choice differs from TRL: TRL adds the score one position after the last token when there is
/// room (its value loss covers that position too); here it goes on the last token itself, where
/// the action that earned it was taken, as OpenRLHF does, and values and losses cover the valid
/// tokens only.
/// </summary>
public static class PpoLoss
{
    /// <summary>TRL's masked_mean: the mean of the values where <paramref name="mask"/> is 1.</summary>
    public static Tensor MaskedMean(Tensor values, Tensor mask) => (values * mask).sum() / mask.sum();

    /// <summary>TRL's masked_var (unbiased: Bessel's correction over the mask's count).</summary>
    public static Tensor MaskedVar(Tensor values, Tensor mask)
    {
        var mean = MaskedMean(values, mask);
        var variance = MaskedMean((values - mean).square(), mask);
        var count = mask.sum();
        return variance * count / (count - 1);
    }

    /// <summary>TRL's masked_whiten: (x − mean)/sqrt(var + 1e-8), the mean added back unless <paramref name="shiftMean"/>.</summary>
    public static Tensor MaskedWhiten(Tensor values, Tensor mask, bool shiftMean = true)
    {
        var mean = MaskedMean(values, mask);
        var whitened = (values - mean) * (MaskedVar(values, mask) + 1e-8).rsqrt();
        return shiftMean ? whitened : whitened + mean;
    }

    /// <summary>The per-token KL estimate from the sampling and reference log-probabilities (0 where masked).</summary>
    public static Tensor Kl(Tensor logps, Tensor refLogps, Tensor mask, KlEstimator estimator)
    {
        var logr = (refLogps - logps) * mask;
        return estimator == KlEstimator.K1 ? -logr : logr.exp() - 1 - logr;
    }

    /// <summary>
    /// Per-token rewards [B, T]: −<paramref name="klCoef"/>·KL on every valid token, plus each
    /// sequence's score at its last valid token; and the non-score part alone.
    /// </summary>
    public static (Tensor Rewards, Tensor NonScore) TokenRewards(Tensor kl, Tensor mask, Tensor scores, double klCoef)
    {
        var nonScore = -klCoef * kl * mask;
        var last = (mask.sum(1) - 1).clamp_min(0).to(ScalarType.Int64);                 // [B]
        var atLast = zeros_like(mask).scatter(1, last.unsqueeze(1), ones(mask.shape[0], 1, dtype: mask.dtype)) * mask;
        return (nonScore + atLast * scores.unsqueeze(1), nonScore);
    }

    /// <summary>
    /// Generalised advantage estimation over each row's valid tokens (values and rewards past them
    /// count as 0, as the episode has ended): advantages [B, T] and returns = advantages + values.
    /// </summary>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, Tensor mask, double gamma, double lam)
    {
        var r = rewards * mask;
        var v = values * mask;
        long t = r.shape[1];
        var steps = new Tensor[t];
        Tensor lastGae = zeros(r.shape[0], dtype: r.dtype);
        for (long i = t - 1; i >= 0; i--)
        {
            var next = i < t - 1 ? v[.., i + 1] : zeros(r.shape[0], dtype: r.dtype);
            var delta = r[.., i] + gamma * next - v[.., i];
            lastGae = delta + gamma * lam * lastGae;
            steps[i] = lastGae;
        }
        var advantages = stack(steps, 1) * mask;
        return (advantages, advantages + v);
    }

    /// <summary>The clipped policy loss and its statistics (no gradient in the statistics).</summary>
    public sealed record PolicyTerms(Tensor Loss, double ClipFraction, double ApproxKl, double RatioMean);

    /// <summary>Masked mean of max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)), ρ = exp(logp − logp_old).</summary>
    public static PolicyTerms PolicyLoss(Tensor logps, Tensor oldLogps, Tensor advantages, Tensor mask, double cliprange)
    {
        var diff = (logps - oldLogps) * mask;
        var ratio = diff.exp();
        var unclipped = -advantages * ratio;
        var clipped = -advantages * ratio.clamp(1 - cliprange, 1 + cliprange);
        var loss = MaskedMean(maximum(unclipped, clipped), mask);
        using var _ = no_grad();
        return new PolicyTerms(loss,
            MaskedMean((clipped > unclipped).to(mask.dtype), mask).to(ScalarType.Float64).item<double>(),
            MaskedMean(0.5 * diff.square(), mask).to(ScalarType.Float64).item<double>(),
            MaskedMean(ratio, mask).to(ScalarType.Float64).item<double>());
    }

    /// <summary>The clipped value loss and the fraction of tokens where clipping won.</summary>
    public sealed record ValueTerms(Tensor Loss, double ClipFraction);

    /// <summary>½·masked mean of max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²).</summary>
    public static ValueTerms ValueLoss(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double cliprangeValue)
    {
        var clippedValues = minimum(maximum(values, oldValues - cliprangeValue), oldValues + cliprangeValue);
        var unclipped = (values - returns).square();
        var clipped = (clippedValues - returns).square();
        var loss = 0.5 * MaskedMean(maximum(unclipped, clipped), mask);
        using var _ = no_grad();
        return new ValueTerms(loss, MaskedMean((clipped > unclipped).to(mask.dtype), mask).to(ScalarType.Float64).item<double>());
    }
}
