using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// DPO's loss and metrics on sequence log-probabilities, as TRL's DPOTrainer defines them.
/// With Δ = (policy_chosen − ref_chosen) − (policy_rejected − ref_rejected), β and label
/// smoothing ε:
/// <list type="bullet">
/// <item>sigmoid: −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ) (ε = 0 is DPO; ε &gt; 0 conservative DPO)</item>
/// <item>robust: (−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)) / (1 − 2ε)</item>
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
                return -nn.functional.logsigmoid(beta * delta) * (1 - e) - nn.functional.logsigmoid(-beta * delta) * e;
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
}
