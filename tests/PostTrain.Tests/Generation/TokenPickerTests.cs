using PostTrain.Generation;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Generation;

public class TokenPickerTests
{
    // Vocabularies below one vector, not a multiple of the vector width, and over several segments.
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(4, 130)]
    [InlineData(5, 16384)]
    [InlineData(3, 40001)]
    public void EqualsArgmaxAndLogSoftmax(int rows, int vocab)
    {
        using var scope = NewDisposeScope();
        var logits = randn(rows, vocab, generator: new Generator(3)) * 4;
        var (tokens, logProbs) = TokenPicker.Greedy(logits)!.Value;
        var expected = logits.argmax(-1);
        Assert.Equal(expected.data<long>().ToArray(), tokens);
        var expectedLp = logits.log_softmax(-1).gather(1, expected.unsqueeze(1)).squeeze(1).data<float>().ToArray();
        for (int r = 0; r < rows; r++) Assert.True(Math.Abs(expectedLp[r] - logProbs[r]) < 1e-5, $"row {r}: {expectedLp[r]} vs {logProbs[r]}");
    }

    [Fact]
    public void TiesGoToTheFirstIndexWithinAndAcrossSegments()
    {
        using var scope = NewDisposeScope();
        var logits = zeros(3, 40001);
        logits[0, 5] = 2; logits[0, 9] = 2;          // one segment
        logits[1, 39999] = 3; logits[1, 16390] = 3;  // different segments, later one first in memory order below
        logits[1, 20000] = 3;
        logits[2].fill_(-1);                          // every logit equal
        var (tokens, logProbs) = TokenPicker.Greedy(logits)!.Value;
        Assert.Equal([5L, 16390L, 0L], tokens);
        Assert.Equal(logits.argmax(-1).data<long>().ToArray(), tokens);
        Assert.Equal(-MathF.Log(40001), logProbs[2], 4);
    }

    [Fact]
    public void OneFiniteLogitHasLogProbabilityZero()
    {
        using var scope = NewDisposeScope();
        var logits = full(2, 1000, float.NegativeInfinity);
        logits[0, 17] = 1.5f;
        logits[1, 999] = -3;
        var (tokens, logProbs) = TokenPicker.Greedy(logits)!.Value;
        Assert.Equal([17L, 999L], tokens);
        Assert.Equal([0f, 0f], logProbs);
    }

    [Fact]
    public void ARowGivesTheSameAloneAsInABatchOnAnyThreadCount()
    {
        using var scope = NewDisposeScope();
        var logits = randn(6, 50000, generator: new Generator(5));
        var (tokens, logProbs) = TokenPicker.Greedy(logits)!.Value;
        for (int r = 0; r < 6; r++)
        {
            var (alone, aloneLp) = TokenPicker.Greedy(logits.narrow(0, r, 1).contiguous())!.Value;
            Assert.Equal(tokens[r], alone[0]);
            Assert.Equal(logProbs[r], aloneLp[0]); // bitwise
        }
        using (Gemv.SmallBatchDecoding())
        {
            var (spun, spunLp) = TokenPicker.Greedy(logits)!.Value;
            Assert.Equal(tokens, spun);
            Assert.Equal(logProbs, spunLp);
        }
    }

    [Fact]
    public void ExpIsExactAtZeroAndCloseElsewhere()
    {
        Assert.Equal(1f, TokenPicker.ExpNonPositive(System.Runtime.Intrinsics.Vector512<float>.Zero)[0]);
        Assert.Equal(0f, TokenPicker.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(float.NegativeInfinity))[0]);
        Assert.Equal(0f, TokenPicker.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(-90f))[0]);
        for (float x = -87f; x <= 0; x += 0.0137f)
        {
            double expected = Math.Exp(x), got = TokenPicker.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(x))[0];
            Assert.True(Math.Abs(got - expected) <= 3e-7 * expected, $"exp({x}) = {got}, expected {expected}");
        }
    }

    // Inverse transform sampling against the probabilities: each draw u picks the first token
    // whose cumulative probability exceeds u, so evenly spaced draws land on every token in
    // proportion to its probability.
    [Theory]
    [InlineData(7)]
    [InlineData(130)]
    [InlineData(40001)]
    public void SamplingFollowsTheCumulativeProbabilities(int vocab)
    {
        using var scope = NewDisposeScope();
        var logits = (randn(1, vocab, generator: new Generator(9)) * 2).contiguous();
        var cumulative = logits.to(ScalarType.Float64).softmax(-1).cumsum(-1).squeeze(0).data<double>().ToArray();
        foreach (double u in new[] { 0.0, 1e-7, 0.1, 0.25, 0.5, 0.77, 0.9, 0.999, 0.9999999 })
        {
            var (tokens, logProbs) = TokenPicker.Sample(logits, [(float)u])!.Value;
            long expected = Array.FindIndex(cumulative, c => c > u);
            // float32 sums may put a draw within rounding of a boundary on its neighbour.
            Assert.True(Math.Abs(tokens[0] - expected) <= 1 && (tokens[0] == expected || Math.Abs(cumulative[Math.Min(tokens[0], expected)] - u) < 1e-5),
                $"u {u}: token {tokens[0]}, expected {expected}");
            float lp = logits.log_softmax(-1)[0, tokens[0]].item<float>();
            Assert.True(Math.Abs(lp - logProbs[0]) < 1e-5, $"log-probability {logProbs[0]} vs {lp}");
        }
    }

    [Fact]
    public void SamplingNeverDrawsRemovedTokens()
    {
        using var scope = NewDisposeScope();
        // Only tokens 3, 20000 and 39999 remain (the others -inf, as top-k leaves them).
        var logits = full(3, 40001, float.NegativeInfinity);
        foreach (int t in new[] { 3, 20000, 39999 }) logits[TensorIndex.Colon, t] = 0.5f;
        var seen = new HashSet<long>();
        var random = new Random(2);
        for (int i = 0; i < 200; i++)
        {
            float[] u = [(float)random.NextDouble(), 0f, 0.99999994f];
            var (tokens, logProbs) = TokenPicker.Sample(logits, u)!.Value;
            Assert.All(tokens, t => Assert.Contains(t, new long[] { 3, 20000, 39999 }));
            Assert.All(logProbs, lp => Assert.Equal(-MathF.Log(3), lp, 5));
            Assert.Equal(3, tokens[1]);     // u = 0: the first token that remains
            Assert.Equal(39999, tokens[2]); // u just below 1: the last
            seen.Add(tokens[0]);
        }
        Assert.Equal(3, seen.Count);
    }

    [Fact]
    public void SamplingARowAloneEqualsItInABatch()
    {
        using var scope = NewDisposeScope();
        var logits = randn(5, 30000, generator: new Generator(4));
        float[] u = [0.1f, 0.5f, 0.9f, 0.33f, 0.999f];
        var (tokens, logProbs) = TokenPicker.Sample(logits, u)!.Value;
        for (int r = 0; r < 5; r++)
        {
            var (alone, aloneLp) = TokenPicker.Sample(logits.narrow(0, r, 1).contiguous(), [u[r]])!.Value;
            Assert.Equal(tokens[r], alone[0]);
            Assert.Equal(logProbs[r], aloneLp[0]);
        }
    }

    [Fact]
    public void NonFiniteMaximaAreLeftToLibtorch()
    {
        using var scope = NewDisposeScope();
        var nan = randn(2, 100);
        nan[1, 50] = float.NaN;
        Assert.Null(TokenPicker.Greedy(nan));
        var inf = randn(2, 100);
        inf[0, 3] = float.PositiveInfinity;
        Assert.Null(TokenPicker.Greedy(inf));
        Assert.Null(TokenPicker.Greedy(full(1, 10, float.NegativeInfinity)));
        Assert.Null(TokenPicker.Sample(nan, [0.5f, 0.5f]));
    }
}
