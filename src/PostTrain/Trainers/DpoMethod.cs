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
/// (<see cref="ChunkedTokenLogProbs"/>).
/// </summary>
public sealed class DpoMethod(DpoOptions options, ReferenceModel? reference,
    long logitsBytesLimit = SftMethod.DefaultLogitsBytesLimit, long chunkBytes = SftMethod.DefaultChunkBytes) : TrainingMethod<PreferencePair>
{
    public override long CountItems(IReadOnlyList<PreferencePair> units) => units.Count;

    public override long CountTokens(IReadOnlyList<PreferencePair> units) => units.Sum(u => (long)u.ChosenLength + u.RejectedLength);

    /// <summary>The 2B rows of a micro-batch and the positions that score completion tokens.</summary>
    sealed class Rows
    {
        public required Tensor InputIds, RowIndex, ColIndex, Targets;
        public required int Pairs, Tokens, ChosenTokens;
    }

    static Rows Build(IReadOnlyList<PreferencePair> units)
    {
        int b = units.Count;
        var sequences = units.Select(u => (u.PromptIds, u.ChosenIds)).Concat(units.Select(u => (u.PromptIds, Completion: u.RejectedIds))).ToArray();
        int width = sequences.Max(s => s.PromptIds.Length + s.Item2.Length);
        var ids = new long[2 * b * width];
        var rowIndex = new List<long>();
        var colIndex = new List<long>();
        var targets = new List<long>();
        int chosenTokens = 0;
        for (int r = 0; r < 2 * b; r++)
        {
            var (prompt, completion) = sequences[r];
            for (int t = 0; t < prompt.Length; t++) ids[r * width + t] = prompt[t];
            for (int k = 0; k < completion.Length; k++)
            {
                int t = prompt.Length + k;
                ids[r * width + t] = completion[k];
                if (t == 0) continue; // the first token of a row has no context (TRL's shifted labels drop it)
                rowIndex.Add(r);
                colIndex.Add(t - 1);
                targets.Add(completion[k]);
                if (r < b) chosenTokens++;
            }
        }
        return new Rows
        {
            InputIds = tensor(ids, [2 * b, width]),
            RowIndex = tensor(rowIndex.ToArray()),
            ColIndex = tensor(colIndex.ToArray()),
            Targets = tensor(targets.ToArray()),
            Pairs = b,
            Tokens = targets.Count,
            ChosenTokens = chosenTokens,
        };
    }

    /// <summary>What <see cref="Score"/> gives: per-row sequence log-probabilities [2B], the completion tokens' log-probabilities [n], and per completion token (no gradient; empty when not asked) the mean logit over the vocabulary, whether the argmax is the target, and the entropy.</summary>
    sealed record Scored(Tensor SequenceLogps, Tensor TokenLogps, float[] MeanLogits, bool[] Correct, float[] Entropy);

    /// <summary>
    /// Scores the rows' completion tokens, with the token metrics when <paramref name="metrics"/>
    /// (the policy's; the reference needs only the sequence log-probabilities). When the completion
    /// tokens' logits would exceed <paramref name="bytesLimit"/> they are computed in chunks and never held whole.
    /// </summary>
    static Scored Score(CausalLM model, Rows rows, long bytesLimit, long chunkBytes, bool metrics)
    {
        var hidden = model.ForwardHidden(rows.InputIds);
        if (rows.Tokens == 0)
        {
            var none = zeros(2 * rows.Pairs, dtype: ScalarType.Float32) + hidden.sum().to(ScalarType.Float32) * 0;
            return new Scored(none, zeros(0), [], [], []);
        }
        var picked = hidden[rows.RowIndex, rows.ColIndex];
        long vocab = model.Config.VocabSize;
        Tensor tokenLogps;
        float[] meanLogits = [], entropy = [];
        bool[] correct = [];
        if ((long)rows.Tokens * vocab * 4 > bytesLimit)
        {
            var stats = new ChunkedTokenLogProbs.Stats { RecordEntropy = metrics };
            tokenLogps = ChunkedTokenLogProbs.Apply(picked, model.OutputWeight, rows.Targets, (int)Math.Max(1, chunkBytes / (vocab * 4)), stats);
            if (metrics) (meanLogits, correct, entropy) = (stats.MeanLogits, stats.Correct, stats.Entropy);
        }
        else
        {
            var logits = model.Logits(picked).to(ScalarType.Float32);                 // [n, vocab]
            var logp = logits.log_softmax(1);
            tokenLogps = logp.gather(1, rows.Targets.unsqueeze(1)).squeeze(1);       // [n]
            if (metrics)
                using (no_grad())
                {
                    var lp = logp.detach();
                    meanLogits = logits.detach().mean([1]).data<float>().ToArray();
                    correct = logits.detach().argmax(1).eq(rows.Targets).data<bool>().ToArray();
                    entropy = (lp.exp() * lp).sum(1).neg().data<float>().ToArray();
                }
        }
        // Sum each row's tokens: a [2B, n] 0/1 matrix times the token log-probabilities.
        var owner = zeros(2 * rows.Pairs, rows.Tokens, dtype: ScalarType.Float32);
        owner.index_put_(ones(rows.Tokens, dtype: ScalarType.Float32), rows.RowIndex, arange(rows.Tokens, dtype: ScalarType.Int64));
        return new Scored(owner.matmul(tokenLogps), tokenLogps, meanLogits, correct, entropy);
    }

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<PreferencePair> units)
    {
        var rows = Build(units);
        int b = rows.Pairs;
        var scored = Score(model, rows, logitsBytesLimit, chunkBytes, metrics: true);
        var (logps, tokenLogps) = (scored.SequenceLogps, scored.TokenLogps);
        Tensor refLogps;
        if (units.All(u => u.RefChosenLogp is not null && u.RefRejectedLogp is not null))
            refLogps = tensor(units.Select(u => (float)u.RefChosenLogp!.Value).Concat(units.Select(u => (float)u.RefRejectedLogp!.Value)).ToArray());
        else if (reference is not null)
            refLogps = reference.Run(model, m => Score(m, rows, logitsBytesLimit, chunkBytes, metrics: false).SequenceLogps);
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
        foreach (var (key, value) in DpoLoss.TokenMetrics(scored.MeanLogits, scored.Correct, scored.Entropy, rows.ChosenTokens))
            metrics[key] = value * b;
        if (options.RpoAlpha is { } alpha)
        {
            // RPO: the chosen completions' token-mean NLL over the micro-batch, added to the pair-mean loss.
            var nll = rows.ChosenTokens > 0 ? -tokenLogps.narrow(0, 0, rows.ChosenTokens).sum() / rows.ChosenTokens : zeros(1).sum();
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
            var logps = reference.Run(policy, m => Score(m, rows, logitsBytesLimit, chunkBytes, metrics: false).SequenceLogps).to(ScalarType.Float64).data<double>().ToArray();
            for (int k = 0; k < batch.Length; k++)
                result[i + k] = batch[k] with { RefChosenLogp = logps[k], RefRejectedLogp = logps[batch.Length + k] };
        }
        return result;
    }
}
