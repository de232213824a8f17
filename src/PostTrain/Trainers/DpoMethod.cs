using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// Direct preference optimisation on the shared loop. Items are preference pairs: the loss is
/// the sum of per-pair losses divided by the pairs of the whole step. A micro-batch of B pairs
/// is one right-padded forward of 2B rows (prompt + chosen for each pair, then prompt + rejected);
/// sequence log-probabilities are summed over completion tokens (each predicted from the hidden
/// state before it). The reference's are computed on the same rows through
/// <see cref="ReferenceModel.Run{T}"/>, or taken from the pairs when precomputed. Logits are
/// computed at completion positions only, in chunks when they would exceed 512 MB
/// (<see cref="TokenLogProbs"/>).
/// </summary>
public sealed class DpoMethod(DpoOptions options, ReferenceModel? reference,
    long logitsBytesLimit = SftMethod.DefaultLogitsBytesLimit, long chunkBytes = SftMethod.DefaultChunkBytes) : TrainingMethod<PreferencePair>
{
    public override long CountItems(IReadOnlyList<PreferencePair> units) => units.Count;

    public override long CountTokens(IReadOnlyList<PreferencePair> units) => units.Sum(u => (long)u.ChosenLength + u.RejectedLength);

    /// <summary>The 2B rows of a micro-batch: prompt + chosen for each pair, then prompt + rejected; their completion tokens are scored.</summary>
    static TokenRows Build(IReadOnlyList<PreferencePair> units) =>
        TokenRows.PromptCompletion([.. units.Select(u => (u.PromptIds, u.ChosenIds)), .. units.Select(u => (u.PromptIds, u.RejectedIds))]);

    static TokenScoring Scoring(long logitsBytesLimit, long chunkBytes, bool statistics) =>
        new() { LogitsBytesLimit = logitsBytesLimit, ChunkBytes = chunkBytes, Statistics = statistics };

    /// <summary>Each row's sequence log-probability [2B]: the sum over its completion tokens.</summary>
    static Tensor SequenceLogps(CausalLM model, TokenRows rows, long logitsBytesLimit, long chunkBytes) =>
        rows.RowSums(TokenLogProbs.Score(model, rows, Scoring(logitsBytesLimit, chunkBytes, statistics: false)).Logps);

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<PreferencePair> units)
    {
        var rows = Build(units);
        int b = units.Count;
        int chosenTokens = rows.RowOfToken.Count(r => r < b);
        var scored = TokenLogProbs.Score(model, rows, Scoring(logitsBytesLimit, chunkBytes, statistics: true));
        var (logps, tokenLogps) = (rows.RowSums(scored.Logps), scored.Logps);
        Tensor refLogps;
        if (units.All(u => u.RefChosenLogp is not null && u.RefRejectedLogp is not null))
            refLogps = tensor(units.Select(u => (float)u.RefChosenLogp!.Value).Concat(units.Select(u => (float)u.RefRejectedLogp!.Value)).ToArray());
        else if (reference is not null)
            refLogps = reference.Run(model, m => SequenceLogps(m, rows, logitsBytesLimit, chunkBytes));
        else
            throw new InvalidOperationException("DPO needs a reference model or precomputed reference log-probabilities");

        var chosenLengths = tensor(units.Select(u => (float)u.ChosenIds.Length).ToArray());
        var rejectedLengths = tensor(units.Select(u => (float)u.RejectedIds.Length).ToArray());
        var chosen = logps.narrow(0, 0, b);
        var rejected = logps.narrow(0, b, b);
        var refChosen = refLogps.narrow(0, 0, b);
        var refRejected = refLogps.narrow(0, b, b);
        var loss = DpoLoss.PerPair(chosen, rejected, refChosen, refRejected, chosenLengths, rejectedLengths,
            options.LossType, options.Beta, options.LabelSmoothing).sum();

        var metrics = DpoLoss.PairMetricSums(chosen, rejected, refChosen, refRejected, options.Beta);
        // TRL's token metrics are means over the micro-batch's completion tokens; the loop divides
        // sums by the step's pairs, so each is weighted by the micro-batch's pairs here.
        foreach (var (key, value) in DpoLoss.TokenMetrics(scored.MeanLogits, scored.Correct, scored.Entropy, chosenTokens))
            metrics[key] = value * b;
        if (options.RpoAlpha is { } alpha)
        {
            // RPO: the chosen completions' token-mean NLL over the micro-batch, added to the pair-mean loss.
            var nll = chosenTokens > 0 ? -tokenLogps.narrow(0, 0, chosenTokens).sum() / chosenTokens : zeros(1).sum();
            loss = loss + alpha * b * nll;
            metrics["nll_loss"] = nll.item<float>() * (double)b;
        }
        return new MicroBatchLoss(loss, metrics);
    }

    /// <summary>
    /// Scores every pair with the reference once (--precompute-ref-logps): the returned pairs carry
    /// the reference's sequence log-probabilities, so the reference can then be freed.
    /// </summary>
    public static IReadOnlyList<PreferencePair> PrecomputeReferenceLogps(ReferenceModel reference, CausalLM policy,
        IReadOnlyList<PreferencePair> pairs, int batchSize, long logitsBytesLimit = SftMethod.DefaultLogitsBytesLimit, long chunkBytes = SftMethod.DefaultChunkBytes)
    {
        var result = new PreferencePair[pairs.Count];
        for (int i = 0; i < pairs.Count; i += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = pairs.Skip(i).Take(batchSize).ToArray();
            var rows = Build(batch);
            var logps = reference.Run(policy, m => SequenceLogps(m, rows, logitsBytesLimit, chunkBytes)).to(ScalarType.Float64).data<double>().ToArray();
            for (int k = 0; k < batch.Length; k++)
                result[i + k] = batch[k] with { RefChosenLogp = logps[k], RefRejectedLogp = logps[batch.Length + k] };
        }
        return result;
    }
}
