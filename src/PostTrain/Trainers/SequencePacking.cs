using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

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
