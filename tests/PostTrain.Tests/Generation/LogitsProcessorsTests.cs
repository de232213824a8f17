using PostTrain.Generation;
using static TorchSharp.torch;

namespace PostTrain.Tests.Generation;

/// <summary>Each processor on fixed logits against values worked out by hand.</summary>
public class LogitsProcessorsTests
{
    // softmax = [0.6070, 0.2233, 0.1354, 0.0302, 0.0041]
    static readonly float[] Logits = [2.0f, 1.0f, 0.5f, -1.0f, -3.0f];
    const float Inf = float.NegativeInfinity;

    static float[] Run(Func<Tensor, Tensor> f, float[]? logits = null)
    {
        using var scope = NewDisposeScope();
        return f(tensor(logits ?? Logits).unsqueeze(0))[0].data<float>().ToArray();
    }

    static void Same(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(float.IsNegativeInfinity(expected[i]) ? float.IsNegativeInfinity(actual[i]) : Math.Abs(expected[i] - actual[i]) < 1e-6,
                $"[{i}]: expected {expected[i]}, got {actual[i]} ({string.Join(", ", actual)})");
    }

    [Fact]
    public void RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogitsOfPresentTokens()
    {
        Same([1.0f, 1.0f, 0.5f, -2.0f, -3.0f],
            Run(x => LogitsProcessors.RepetitionPenalty(x, tensor(new[] { true, false, false, true, false }).unsqueeze(0), 2.0)));
    }

    [Fact]
    public void TemperatureDivides() => Same([4f, 2f, 1f, -2f, -6f], Run(x => LogitsProcessors.Temperature(x, 0.5)));

    [Fact]
    public void TopKKeepsTheKLargestAndTies()
    {
        Same([2f, 1f, Inf, Inf, Inf], Run(x => LogitsProcessors.TopK(x, 2)));
        Same([1f, 1f, Inf], Run(x => LogitsProcessors.TopK(x, 1), [1f, 1f, 0f]));
        Same(Logits, Run(x => LogitsProcessors.TopK(x, 50))); // k above the vocabulary keeps all
    }

    [Fact]
    public void TopPKeepsTheSmallestMostLikelySetReachingP()
    {
        // ascending cumulative: 0.0041, 0.0343, 0.1697, 0.3930, 1 -> removed where <= 1 - p
        Same([2f, 1f, Inf, Inf, Inf], Run(x => LogitsProcessors.TopP(x, 0.8)));
        Same([2f, Inf, Inf, Inf, Inf], Run(x => LogitsProcessors.TopP(x, 0.5)));
        Same([2f, Inf, Inf, Inf, Inf], Run(x => LogitsProcessors.TopP(x, 0.01))); // at least one token
        Same([2f, 1f, 0.5f, -1f, Inf], Run(x => LogitsProcessors.TopP(x, 0.99)));
        Same(Logits, Run(x => LogitsProcessors.TopP(x, 0.999))); // 1 - p = 0.001 is below every probability
    }

    [Fact]
    public void MinPRemovesTokensBelowMinPTimesTheTopProbability()
    {
        // threshold 0.2 x 0.6070 = 0.1214: 0.1354 stays, 0.0302 goes
        Same([2f, 1f, 0.5f, Inf, Inf], Run(x => LogitsProcessors.MinP(x, 0.2)));
        Same([2f, Inf, Inf, Inf, Inf], Run(x => LogitsProcessors.MinP(x, 1.0)));
    }

    [Fact]
    public void ApplyRunsTemperatureBeforeTopPAndPenaltyFirst()
    {
        // temperature 2: logits/2 softmax = [0.4194, 0.2544, 0.1981, 0.0936, 0.0344]; ascending
        // cumulative 0.0344, 0.1280, 0.3261, ... so top-p 0.8 keeps three tokens (two if top-p ran first).
        var o = new SamplingOptions { Temperature = 2, TopP = 0.8 };
        Same([1f, 0.5f, 0.25f, Inf, Inf], Run(x => LogitsProcessors.Apply(x, o, null)));
        // Greedy: only the penalty applies.
        var greedy = new SamplingOptions { Temperature = 0, TopK = 1, RepetitionPenalty = 4 };
        using var present = tensor(new[] { true, false, false, false, false }).unsqueeze(0);
        Same([0.5f, 1f, 0.5f, -1f, -3f], Run(x => LogitsProcessors.Apply(x, greedy, present)));
        // Sampling: penalty, temperature, top-k, min-p in that order.
        var all = new SamplingOptions { Temperature = 0.5, TopK = 3, MinP = 0.3, RepetitionPenalty = 4 };
        // penalty -> [0.5, 1, 0.5, -1, -3]; /0.5 -> [1, 2, 1, -2, -6]; top-3 keeps 1, 2, 1;
        // min-p 0.3: probs of [1, 2, 1] = [0.2119, 0.5761, 0.2119] >= 0.1728: all stay.
        Same([1f, 2f, 1f, Inf, Inf], Run(x => LogitsProcessors.Apply(x, all, present)));
    }
}
