using PostTrain.Generation;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Generation;

public class GreedyTests
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
        var (tokens, logProbs) = Greedy.Pick(logits)!.Value;
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
        var (tokens, logProbs) = Greedy.Pick(logits)!.Value;
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
        var (tokens, logProbs) = Greedy.Pick(logits)!.Value;
        Assert.Equal([17L, 999L], tokens);
        Assert.Equal([0f, 0f], logProbs);
    }

    [Fact]
    public void ARowGivesTheSameAloneAsInABatchOnAnyThreadCount()
    {
        using var scope = NewDisposeScope();
        var logits = randn(6, 50000, generator: new Generator(5));
        var (tokens, logProbs) = Greedy.Pick(logits)!.Value;
        for (int r = 0; r < 6; r++)
        {
            var (alone, aloneLp) = Greedy.Pick(logits.narrow(0, r, 1).contiguous())!.Value;
            Assert.Equal(tokens[r], alone[0]);
            Assert.Equal(logProbs[r], aloneLp[0]); // bitwise
        }
        using (Gemv.SmallBatchDecoding())
        {
            var (spun, spunLp) = Greedy.Pick(logits)!.Value;
            Assert.Equal(tokens, spun);
            Assert.Equal(logProbs, spunLp);
        }
    }

    [Fact]
    public void ExpIsExactAtZeroAndCloseElsewhere()
    {
        Assert.Equal(1f, Greedy.ExpNonPositive(System.Runtime.Intrinsics.Vector512<float>.Zero)[0]);
        Assert.Equal(0f, Greedy.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(float.NegativeInfinity))[0]);
        Assert.Equal(0f, Greedy.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(-90f))[0]);
        for (float x = -87f; x <= 0; x += 0.0137f)
        {
            double expected = Math.Exp(x), got = Greedy.ExpNonPositive(System.Runtime.Intrinsics.Vector512.Create(x))[0];
            Assert.True(Math.Abs(got - expected) <= 3e-7 * expected, $"exp({x}) = {got}, expected {expected}");
        }
    }

    [Fact]
    public void NonFiniteMaximaAreLeftToLibtorch()
    {
        using var scope = NewDisposeScope();
        var nan = randn(2, 100);
        nan[1, 50] = float.NaN;
        Assert.Null(Greedy.Pick(nan));
        var inf = randn(2, 100);
        inf[0, 3] = float.PositiveInfinity;
        Assert.Null(Greedy.Pick(inf));
        Assert.Null(Greedy.Pick(full(1, 10, float.NegativeInfinity)));
    }
}
