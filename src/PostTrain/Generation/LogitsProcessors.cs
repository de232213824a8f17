using static TorchSharp.torch;

namespace PostTrain.Generation;

/// <summary>
/// transformers' logits processors and warpers (generation/logits_process.py), on float32
/// logits [batch, vocab]; removed tokens get -inf. <see cref="Apply"/> runs them in the order
/// generate() builds them: repetition penalty, then (when sampling) temperature, top-k, top-p,
/// min-p, each only when it changes something.
/// </summary>
public static class LogitsProcessors
{
    /// <summary>
    /// RepetitionPenaltyLogitsProcessor: for tokens already present (<paramref name="present"/>,
    /// bool [batch, vocab], the prompt's and completion's tokens), positive logits are divided by
    /// the penalty and negative ones multiplied, so a penalty above 1 makes them less likely.
    /// </summary>
    public static Tensor RepetitionPenalty(Tensor logits, Tensor present, double penalty)
    {
        using var scope = NewDisposeScope();
        var penalized = where(logits < 0, logits * penalty, logits / penalty);
        return where(present, penalized, logits).MoveToOuterDisposeScope();
    }

    /// <summary>TemperatureLogitsWarper: logits / temperature.</summary>
    public static Tensor Temperature(Tensor logits, double temperature) => logits / temperature;

    /// <summary>TopKLogitsWarper: removes tokens whose logit is below the k-th largest (ties with it stay).</summary>
    public static Tensor TopK(Tensor logits, int k)
    {
        using var scope = NewDisposeScope();
        k = (int)Math.Min(Math.Max(k, 1), logits.shape[^1]);
        var kth = logits.topk(k, dim: -1).values.narrow(-1, k - 1, 1);
        return logits.masked_fill(logits < kth, float.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// TopPLogitsWarper: sorts ascending, removes the tokens whose cumulative probability is at
    /// most 1 - top_p (the least likely ones), and always keeps the most likely token.
    /// </summary>
    public static Tensor TopP(Tensor logits, double topP)
    {
        using var scope = NewDisposeScope();
        var (sorted, indices) = logits.sort(-1, descending: false);
        var cumulative = sorted.softmax(-1).cumsum(-1);
        var removeSorted = cumulative <= (1 - topP);
        removeSorted.narrow(-1, logits.shape[^1] - 1, 1).fill_(false); // min_tokens_to_keep = 1
        var remove = removeSorted.scatter(-1, indices, removeSorted);
        return logits.masked_fill(remove, float.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// MinPLogitsWarper: removes tokens whose probability is below min_p times the most likely
    /// token's (which always stays).
    /// </summary>
    public static Tensor MinP(Tensor logits, double minP)
    {
        using var scope = NewDisposeScope();
        var probs = logits.softmax(-1);
        var threshold = probs.amax([-1], keepdim: true) * minP;
        return logits.masked_fill(probs < threshold, float.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// All processors the options turn on, in generate()'s order. <paramref name="present"/> is
    /// needed only with a repetition penalty.
    /// </summary>
    public static Tensor Apply(Tensor logits, SamplingOptions o, Tensor? present)
    {
        using var scope = NewDisposeScope();
        var x = logits;
        if (o.RepetitionPenalty != 1.0)
            x = RepetitionPenalty(x, present ?? throw new ArgumentNullException(nameof(present)), o.RepetitionPenalty);
        if (!o.Greedy)
        {
            if (o.Temperature != 1.0) x = Temperature(x, o.Temperature);
            if (o.TopK != 0) x = TopK(x, o.TopK);
            if (o.TopP < 1.0) x = TopP(x, o.TopP);
            if (o.MinP > 0) x = MinP(x, o.MinP);
        }
        return (ReferenceEquals(x, logits) ? x.alias() : x).MoveToOuterDisposeScope();
    }
}
