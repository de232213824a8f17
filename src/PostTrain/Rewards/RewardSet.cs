namespace PostTrain.Rewards;

/// <summary>
/// The scores of a batch: each function's (null where it does not apply) and the weighted total
/// (NaN for a completion no function scored).
/// </summary>
public sealed record RewardScores(double[] Total, double?[][] PerFunction)
{
    /// <summary>Completions that every function left unscored (null): their total is NaN.</summary>
    public int Unscorable => Total.Count(double.IsNaN);
}

/// <summary>
/// Several reward functions with weights (--reward-weights, default 1 each): the total of a
/// sample is the weighted sum of the scores that apply to it, as TRL's nansum over functions; a
/// sample no function scores totals NaN (TRL marks it unscorable rather than letting nansum make
/// it 0: it is left out of the baselines and gets advantage 0). A function that throws is an
/// error naming it and the prompt: never a silent 0.
/// </summary>
public sealed class RewardSet
{
    readonly IReadOnlyList<IRewardFunction> functions;
    readonly double[] weights;

    public RewardSet(IReadOnlyList<IRewardFunction> functions, IReadOnlyList<double>? weights = null)
    {
        if (functions.Count == 0) throw new InputError("--reward: give at least one reward function");
        if (weights is not null && weights.Count != functions.Count)
            throw new InputError($"--reward-weights: {weights.Count} weights for {functions.Count} reward functions");
        this.functions = functions;
        this.weights = weights?.ToArray() ?? Enumerable.Repeat(1.0, functions.Count).ToArray();
    }

    public IReadOnlyList<string> Names => functions.Select(f => f.Name).ToList();

    public RewardScores Score(IReadOnlyList<RewardSample> samples)
    {
        var per = new double?[functions.Count][];
        for (int f = 0; f < functions.Count; f++)
        {
            double?[] scores;
            try
            {
                scores = functions[f].Score(samples);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                throw new InputError($"reward '{functions[f].Name}' failed on a batch starting with the prompt \"{Shorten(samples.Count > 0 ? samples[0].Prompt : "")}\": {e.Message}");
            }
            if (scores.Length != samples.Count)
                throw new InputError($"reward '{functions[f].Name}' returned {scores.Length} scores for {samples.Count} completions");
            for (int i = 0; i < scores.Length; i++)
                if (scores[i] is { } s && !double.IsFinite(s))
                    throw new InputError($"reward '{functions[f].Name}' scored {s} on the prompt \"{Shorten(samples[i].Prompt)}\"");
            per[f] = scores;
        }
        var total = new double[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            bool scored = false;
            for (int f = 0; f < functions.Count; f++)
                if (per[f][i] is { } s)
                {
                    total[i] += weights[f] * s;
                    scored = true;
                }
            if (!scored) total[i] = double.NaN;
        }
        return new RewardScores(total, per);
    }

    static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";

    /// <summary>Parses "1,0.5"; a bad number is an error naming --reward-weights.</summary>
    public static IReadOnlyList<double>? ParseWeights(string? text) => text?.Split(',', StringSplitOptions.TrimEntries).Select(w =>
        double.TryParse(w, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v : throw new InputError($"--reward-weights: '{w}' is not a number")).ToList();
}
