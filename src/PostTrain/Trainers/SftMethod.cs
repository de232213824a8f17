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
    public const long DefaultLogitsBytesLimit = TokenScoring.DefaultLogitsBytesLimit;
    public const long DefaultChunkBytes = TokenScoring.DefaultChunkBytes;

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
        var rows = TokenRows.Build(units.Select(u => u.InputIds).ToList(), (r, t) => units[r].IsTrainedTarget(t),
            units.Any(u => u.PositionIds is not null) ? units.Select(u => u.PositionIds).ToList() : null);
        var scores = TokenLogProbs.Score(model, rows, new TokenScoring { LogitsBytesLimit = logitsBytesLimit, ChunkBytes = chunkBytes, Statistics = true });
        return new MicroBatchLoss(-scores.Logps.sum(), TokenMetricSums(scores.Correct.Count(c => c), scores.Entropy.Sum(e => (double)e)));
    }
}
