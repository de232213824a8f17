using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// DPO's loss and metrics on sequence log-probabilities, as TRL's DPOTrainer defines them.
/// With Δ = (policy_chosen − ref_chosen) − (policy_rejected − ref_rejected), β and label
/// smoothing ε:
/// <list type="bullet">
/// <item>sigmoid: −logσ(βΔ) (TRL's sigmoid has not used ε since its DPO refactor, #3906: conservative DPO is gone)</item>
/// <item>robust: (−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)) / (1 − 2ε), the one loss here that uses ε</item>
/// <item>hinge: relu(1 − βΔ)</item>
/// <item>ipo: (Δ_c/|c| − Δ_r/|r| − 1/(2β))², each log-ratio divided by its completion's token count</item>
/// </list>
/// Rewards are β·(policy − ref) log-ratios for every loss type.
/// </summary>
public static class DpoLoss
{
    /// <summary>Per-pair losses [B] from sequence log-probabilities [B] and completion lengths [B].</summary>
    public static Tensor PerPair(Tensor chosenLogps, Tensor rejectedLogps, Tensor refChosenLogps, Tensor refRejectedLogps,
        Tensor chosenLengths, Tensor rejectedLengths, DpoLossType type, double beta, double labelSmoothing)
    {
        var chosenRatio = chosenLogps - refChosenLogps;
        var rejectedRatio = rejectedLogps - refRejectedLogps;
        var delta = chosenRatio - rejectedRatio;
        double e = labelSmoothing;
        switch (type)
        {
            case DpoLossType.Sigmoid:
                return -nn.functional.logsigmoid(beta * delta);
            case DpoLossType.Robust:
                return (-nn.functional.logsigmoid(beta * delta) * (1 - e) + nn.functional.logsigmoid(-beta * delta) * e) / (1 - 2 * e);
            case DpoLossType.Hinge:
                return nn.functional.relu(1 - beta * delta);
            case DpoLossType.Ipo:
                var ipoDelta = chosenRatio / chosenLengths.clamp_min(1) - rejectedRatio / rejectedLengths.clamp_min(1);
                return (ipoDelta - 1 / (2 * beta)).square();
            default:
                throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>
    /// TRL's pair metrics, as sums over the B pairs (the loop divides by the pair count):
    /// rewards/chosen, rewards/rejected, rewards/accuracies (chosen reward strictly greater),
    /// rewards/margins, logps/chosen, logps/rejected.
    /// </summary>
    public static Dictionary<string, double> PairMetricSums(Tensor chosenLogps, Tensor rejectedLogps, Tensor refChosenLogps,
        Tensor refRejectedLogps, double beta)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var chosenRewards = beta * (chosenLogps.detach() - refChosenLogps);
        var rejectedRewards = beta * (rejectedLogps.detach() - refRejectedLogps);
        double Sum(Tensor t) => t.to(ScalarType.Float64).sum().item<double>();
        return new Dictionary<string, double>
        {
            ["rewards/chosen"] = Sum(chosenRewards),
            ["rewards/rejected"] = Sum(rejectedRewards),
            ["rewards/accuracies"] = Sum(chosenRewards.gt(rejectedRewards)),
            ["rewards/margins"] = Sum(chosenRewards - rejectedRewards),
            ["logps/chosen"] = Sum(chosenLogps.detach()),
            ["logps/rejected"] = Sum(rejectedLogps.detach()),
        };
    }

    /// <summary>
    /// TRL's token metrics of a micro-batch, from per-token values of its completion tokens (the
    /// chosen rows' <paramref name="chosenTokens"/> first, then the rejected rows'); each is 0 when
    /// it has no tokens, as TRL: logits/chosen and logits/rejected (the mean over those tokens of
    /// the mean logit over the vocabulary), entropy (the mean entropy of the predicted
    /// distribution over every completion token, chosen and rejected) and mean_token_accuracy
    /// (the share of the chosen completions' tokens that are the logits' argmax).
    /// </summary>
    public static Dictionary<string, double> TokenMetrics(IReadOnlyList<float> meanLogits, IReadOnlyList<bool> correct,
        IReadOnlyList<float> entropy, int chosenTokens)
    {
        static double Mean(IEnumerable<double> values)
        {
            double sum = 0;
            long n = 0;
            foreach (var v in values) { sum += v; n++; }
            return n > 0 ? sum / n : 0;
        }
        return new Dictionary<string, double>
        {
            ["logits/chosen"] = Mean(meanLogits.Take(chosenTokens).Select(v => (double)v)),
            ["logits/rejected"] = Mean(meanLogits.Skip(chosenTokens).Select(v => (double)v)),
            ["entropy"] = Mean(entropy.Select(v => (double)v)),
            ["mean_token_accuracy"] = Mean(correct.Take(chosenTokens).Select(c => c ? 1.0 : 0.0)),
        };
    }
}
