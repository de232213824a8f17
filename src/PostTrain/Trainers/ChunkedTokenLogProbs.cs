using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// Per-row log-probabilities log softmax(hidden·Wᵀ)[target], computed a chunk of rows at a time
/// so that the full [rows, vocab] logits never exist (SFT's loss is minus their sum, DPO's
/// sequence log-probabilities their sums per row): forward keeps each row's log-sum-exp,
/// backward recomputes each chunk's logits for the gradients of the hidden states and the output
/// weight. The forward pass also records, without gradient, each row's mean logit (over the
/// vocabulary, for DPO's logits/* metrics), whether its most likely token is the target
/// (mean_token_accuracy) and, when asked, the entropy of its distribution (TRL's entropy metric).
/// </summary>
public sealed class ChunkedTokenLogProbs : autograd.SingleTensorFunction<ChunkedTokenLogProbs>
{
    /// <summary>What the forward pass records besides its output (no gradient).</summary>
    public sealed class Stats
    {
        /// <summary>Also record each row's entropy, −Σ p log p over the vocabulary (one more pass over each chunk's logits).</summary>
        public bool RecordEntropy { get; init; }
        public float[] MeanLogits = [];
        /// <summary>Per row: the argmax of the logits is the target.</summary>
        public bool[] Correct = [];
        /// <summary>Per row, when <see cref="RecordEntropy"/>; else empty.</summary>
        public float[] Entropy = [];
    }

    public override string Name => nameof(ChunkedTokenLogProbs);

    /// <summary>[rows] float32 log-probabilities of <paramref name="targets"/>.</summary>
    public static Tensor Apply(Tensor hidden, Tensor weight, Tensor targets, int chunkRows, Stats stats) =>
        apply(hidden, weight, targets, chunkRows, stats);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, weight, targets) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        int chunk = (int)vars[3];
        var stats = (Stats)vars[4];
        long rows = hidden.shape[0];
        var lse = empty(rows, dtype: ScalarType.Float32);
        var result = empty(rows, dtype: ScalarType.Float32);
        stats.MeanLogits = new float[rows];
        stats.Correct = new bool[rows];
        stats.Entropy = stats.RecordEntropy ? new float[rows] : [];
        using (no_grad())
        {
            for (long start = 0; start < rows; start += chunk)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(chunk, rows - start);
                var logits = hidden.narrow(0, start, n).matmul(weight.t()).to(ScalarType.Float32);
                var rowLse = logits.logsumexp(1);
                lse.narrow(0, start, n).copy_(rowLse);
                result.narrow(0, start, n).copy_(logits.gather(1, targets.narrow(0, start, n).unsqueeze(1)).squeeze(1) - rowLse);
                logits.mean([1]).data<float>().CopyTo(stats.MeanLogits, (int)start);
                logits.argmax(1).eq(targets.narrow(0, start, n)).data<bool>().CopyTo(stats.Correct, (int)start);
                if (stats.RecordEntropy)
                {
                    // In place, as logits are not needed any more: log p = logits − lse; entropy = −Σ p log p.
                    var logp = logits.sub_(rowLse.unsqueeze(1));
                    logp.exp().mul_(logp).sum(1).neg_().data<float>().CopyTo(stats.Entropy, (int)start);
                }
            }
        }
        ctx.save_for_backward([hidden, weight, targets, lse]);
        ctx.save_data("chunk", chunk);
        return result;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var (hidden, weight, targets, lse) = (saved[0], saved[1], saved[2], saved[3]);
        int chunk = (int)ctx.get_data("chunk");
        long rows = hidden.shape[0];
        var gradHidden = empty_like(hidden);
        Tensor? gradWeight = weight.requires_grad ? zeros(weight.shape, dtype: ScalarType.Float32) : null;
        using (no_grad())
        {
            var g = gradOutput.to(ScalarType.Float32).contiguous();
            for (long start = 0; start < rows; start += chunk)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(chunk, rows - start);
                var h = hidden.narrow(0, start, n);
                var gn = g.narrow(0, start, n).unsqueeze(1);
                // d logp[target] / d logits = onehot(target) - softmax, times the incoming gradient.
                var p = h.matmul(weight.t()).to(ScalarType.Float32).sub_(lse.narrow(0, start, n).unsqueeze(1)).exp_();
                p.mul_(gn).neg_();
                p.scatter_add_(1, targets.narrow(0, start, n).unsqueeze(1), gn);
                gradHidden.narrow(0, start, n).copy_(p.matmul(weight.to(ScalarType.Float32)).to(hidden.dtype));
                gradWeight?.addmm_(p.t(), h.to(ScalarType.Float32));
            }
        }
        var weightGrad = gradWeight is null || gradWeight.dtype == weight.dtype ? gradWeight : gradWeight.to(weight.dtype);
        foreach (var t in saved) t.Dispose(); // wrappers made by get_saved_variables
        // Gradients for hidden, weight; none for targets, the chunk size and the stats.
        return [gradHidden, weightGrad!, null!, null!, null!];
    }
}
