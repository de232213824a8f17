using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// Supervised fine-tuning: the loss is the negative log-likelihood of the trained tokens
/// (completions, or assistant turns), summed and divided by the number of trained tokens of the
/// whole optimiser step. Logits are computed for trained positions only; when those logits
/// would exceed <paramref name="logitsBytesLimit"/> they are computed in chunks and never held
/// whole (<see cref="ChunkedTokenLogProbs"/>), which bounds the loss's memory for large batches
/// and vocabularies.
/// </summary>
public sealed class SftMethod(long logitsBytesLimit = SftMethod.DefaultLogitsBytesLimit, long chunkBytes = SftMethod.DefaultChunkBytes)
    : TrainingMethod<TokenizedSequence>
{
    public const long DefaultLogitsBytesLimit = 512L << 20;
    public const long DefaultChunkBytes = 256L << 20;

    public override long CountItems(IReadOnlyList<TokenizedSequence> units) => units.Sum(u => (long)u.TrainedCount);

    public override long CountTokens(IReadOnlyList<TokenizedSequence> units) => units.Sum(u => (long)u.Length);

    /// <summary>
    /// TRL's SFTTrainer metrics as sums over the trained tokens (the loop divides by the step's
    /// trained tokens): mean_token_accuracy (the logits' argmax is the target) and entropy (of the
    /// predicted distribution, in nats), both without gradient.
    /// </summary>
    static Dictionary<string, double> TokenMetricSums(double correct, double entropy) => new()
    {
        ["mean_token_accuracy"] = correct,
        ["entropy"] = entropy,
    };

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<TokenizedSequence> units)
    {
        int rows = units.Count, width = units.Max(u => u.Length);
        bool packed = units.Any(u => u.PositionIds is not null);
        var ids = new long[rows * width];
        var positions = packed ? new long[rows * width] : null;
        var rowIndex = new List<long>();
        var colIndex = new List<long>();
        var targets = new List<long>();
        for (int r = 0; r < rows; r++)
        {
            var u = units[r];
            for (int t = 0; t < width; t++)
            {
                // Right padding: real tokens never attend to the pads after them.
                ids[r * width + t] = t < u.Length ? u.InputIds[t] : 0;
                if (positions is not null)
                    positions[r * width + t] = t < u.Length ? (u.PositionIds?[t] ?? t) : t - u.Length;
                if (t < u.Length && u.IsTrainedTarget(t))
                {
                    rowIndex.Add(r);
                    colIndex.Add(t - 1); // the hidden state at t-1 predicts token t
                    targets.Add(u.InputIds[t]);
                }
            }
        }
        using var inputIds = tensor(ids, [rows, width]);
        using var positionIds = positions is null ? null : tensor(positions, [rows, width]);
        var hidden = model.ForwardHidden(inputIds, positionIds: positionIds);
        if (targets.Count == 0)
            return new MicroBatchLoss(hidden.sum() * 0, new Dictionary<string, double>());
        var picked = hidden[tensor(rowIndex.ToArray()), tensor(colIndex.ToArray())];
        var target = tensor(targets.ToArray());
        long logitsBytes = (long)targets.Count * model.Config.VocabSize * 4;
        if (logitsBytes > logitsBytesLimit)
        {
            int chunk = (int)Math.Max(1, chunkBytes / (model.Config.VocabSize * 4L));
            var stats = new ChunkedTokenLogProbs.Stats { RecordEntropy = true };
            var chunked = -ChunkedTokenLogProbs.Apply(picked, model.OutputWeight, target, chunk, stats).sum();
            return new MicroBatchLoss(chunked, TokenMetricSums(stats.Correct.Count(c => c), stats.Entropy.Sum(e => (double)e)));
        }
        var logits = model.Logits(picked).to(ScalarType.Float32);
        var loss = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.Sum);
        double correct, entropy;
        using (no_grad())
        {
            correct = logits.argmax(1).eq(target).sum().item<long>();
            var logp = logits.detach().log_softmax(1);
            entropy = -(logp.exp() * logp).sum(1).to(ScalarType.Float64).sum().item<double>();
        }
        return new MicroBatchLoss(loss, TokenMetricSums(correct, entropy));
    }
}
