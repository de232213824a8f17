using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// A token sequence ready for training: which tokens are targets (<see cref="Trained"/>[t]:
/// token t is predicted from those before it and counts in the loss) and, for packed rows,
/// the position ids that restart at 0 for each packed sequence.
/// </summary>
public sealed record TokenizedSequence(int[] InputIds, bool[] Trained, int[]? PositionIds = null)
{
    public int Length => InputIds.Length;

    /// <summary>Targets: trained tokens that have a token before them in the same sequence.</summary>
    public int TrainedCount
    {
        get
        {
            int n = 0;
            for (int t = 1; t < Trained.Length; t++)
                if (Trained[t] && (PositionIds is null || PositionIds[t] != 0)) n++;
            return n;
        }
    }

    public bool IsTrainedTarget(int t) => t > 0 && Trained[t] && (PositionIds is null || PositionIds[t] != 0);
}

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
            var stats = new ChunkedTokenLogProbs.Stats();
            var chunked = -ChunkedTokenLogProbs.Apply(picked, model.OutputWeight, target, chunk, stats).sum();
            return new MicroBatchLoss(chunked, new Dictionary<string, double> { ["mean_token_accuracy"] = stats.Correct });
        }
        var logits = model.Logits(picked).to(ScalarType.Float32);
        var loss = nn.functional.cross_entropy(logits, target, reduction: nn.Reduction.Sum);
        double correct;
        using (no_grad())
            correct = logits.argmax(1).eq(target).sum().item<long>();
        return new MicroBatchLoss(loss, new Dictionary<string, double>
        {
            ["mean_token_accuracy"] = correct,
        });
    }
}

/// <summary>Length handling: truncation to --max-length and best-fit-decreasing packing.</summary>
public static class SequencePacking
{
    /// <summary>Keeps the first <paramref name="maxLength"/> tokens (as TRL truncates).</summary>
    public static TokenizedSequence Truncate(TokenizedSequence s, int maxLength) =>
        s.Length <= maxLength ? s : new TokenizedSequence(s.InputIds[..maxLength], s.Trained[..maxLength], s.PositionIds?[..maxLength]);

    /// <summary>
    /// Packs sequences into rows of at most <paramref name="maxLength"/> tokens, best fit
    /// decreasing (longest first, each into the fullest row it fits). Position ids restart at 0
    /// for each sequence, so attention stays within it; a row's sequences come in the order
    /// they were placed. Deterministic.
    /// </summary>
    public static IReadOnlyList<TokenizedSequence> BestFitDecreasing(IReadOnlyList<TokenizedSequence> sequences, int maxLength)
    {
        var order = Enumerable.Range(0, sequences.Count)
            .OrderByDescending(i => sequences[i].Length).ThenBy(i => i).ToArray();
        var bins = new List<List<TokenizedSequence>>();
        var space = new SortedSet<(int Remaining, int Bin)>();
        foreach (var i in order)
        {
            var s = Truncate(sequences[i], maxLength);
            var fits = space.GetViewBetween((s.Length, -1), (int.MaxValue, int.MaxValue));
            int bin;
            if (fits.Count > 0)
            {
                var best = fits.Min;
                space.Remove(best);
                bin = best.Bin;
                space.Add((best.Remaining - s.Length, bin));
            }
            else
            {
                bin = bins.Count;
                bins.Add(new List<TokenizedSequence>());
                space.Add((maxLength - s.Length, bin));
            }
            bins[bin].Add(s);
        }
        return bins.Select(Concatenate).ToList();
    }

    static TokenizedSequence Concatenate(List<TokenizedSequence> parts)
    {
        var ids = parts.SelectMany(p => p.InputIds).ToArray();
        var trained = parts.SelectMany(p => p.Trained.Select((x, t) => x && t > 0)).ToArray();
        var positions = parts.SelectMany(p => Enumerable.Range(0, p.Length)).ToArray();
        return new TokenizedSequence(ids, trained, positions);
    }
}
