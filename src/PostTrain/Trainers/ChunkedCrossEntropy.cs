using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// The summed cross-entropy of <c>hidden @ weightᵀ</c> against targets, computed a chunk of
/// rows at a time so that the full [rows, vocab] logits never exist: forward keeps only each
/// row's log-sum-exp; backward recomputes each chunk's logits and turns them into gradients for
/// the hidden states and the output weight. Memory for the loss drops from several
/// rows x vocab buffers to two chunks, for one more output matmul in backward.
/// </summary>
public sealed class ChunkedCrossEntropy : autograd.SingleTensorFunction<ChunkedCrossEntropy>
{
    /// <summary>Counts filled in by the forward pass (no gradient).</summary>
    public sealed class Stats
    {
        public long Correct;
    }

    public override string Name => nameof(ChunkedCrossEntropy);

    /// <summary>Sum over rows of -log softmax(hidden·Wᵀ)[target], in float32.</summary>
    public static Tensor Apply(Tensor hidden, Tensor weight, Tensor targets, int chunkRows, Stats stats) =>
        apply(hidden, weight, targets, chunkRows, stats);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var (hidden, weight, targets) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
        int chunk = (int)vars[3];
        var stats = (Stats)vars[4];
        long rows = hidden.shape[0];
        var lse = empty(rows, dtype: ScalarType.Float32);
        double loss = 0;
        using (no_grad())
        {
            for (long start = 0; start < rows; start += chunk)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(chunk, rows - start);
                var t = targets.narrow(0, start, n);
                var logits = hidden.narrow(0, start, n).matmul(weight.t()).to(ScalarType.Float32);
                var rowLse = logits.logsumexp(1);
                lse.narrow(0, start, n).copy_(rowLse);
                loss += (rowLse - logits.gather(1, t.unsqueeze(1)).squeeze(1)).sum().item<float>();
                stats.Correct += logits.argmax(1).eq(t).sum().item<long>();
            }
        }
        ctx.save_for_backward([hidden, weight, targets, lse]);
        ctx.save_data("chunk", chunk);
        return tensor((float)loss);
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        var (hidden, weight, targets, lse) = (saved[0], saved[1], saved[2], saved[3]);
        int chunk = (int)ctx.get_data("chunk");
        long rows = hidden.shape[0];
        float scale = gradOutput.to(ScalarType.Float32).item<float>();
        var gradHidden = empty_like(hidden);
        Tensor? gradWeight = weight.requires_grad ? zeros(weight.shape, dtype: ScalarType.Float32) : null;
        using (no_grad())
        {
            for (long start = 0; start < rows; start += chunk)
            {
                using var scope = NewDisposeScope();
                long n = Math.Min(chunk, rows - start);
                var h = hidden.narrow(0, start, n);
                // d loss / d logits = softmax - onehot(target), times the incoming gradient.
                var p = h.matmul(weight.t()).to(ScalarType.Float32).sub_(lse.narrow(0, start, n).unsqueeze(1)).exp_();
                p.scatter_add_(1, targets.narrow(0, start, n).unsqueeze(1), full(n, 1, -1.0f));
                if (scale != 1f) p.mul_(scale);
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
