using PostTrain.Evaluation;
using Xunit;

namespace PostTrain.Tests.Evaluation;

public class PyRandomTests
{
    // Expected values printed by CPython 3.11:
    //   r = random.Random(1234); r.sample(range(10), 3), r.sample(range(100), 6), r.sample(range(7473), 5), r.getrandbits(32)
    //   random.Random(0).sample(range(30), 30)[:5]
    [Fact]
    public void SampleEqualsCPython()
    {
        var r = new PyRandom(1234);
        Assert.Equal([7, 1, 0], r.Sample(Enumerable.Range(0, 10).ToList(), 3));
        Assert.Equal([11, 74, 4, 85, 88, 10], r.Sample(Enumerable.Range(0, 100).ToList(), 6));
        Assert.Equal([806, 6279, 2905, 1939, 142], r.Sample(Enumerable.Range(0, 7473).ToList(), 5));
        Assert.Equal(132345184UL, r.GetRandBits(32));
        Assert.Equal([27, 12, 24, 13, 1], new PyRandom(0).Sample(Enumerable.Range(0, 30).ToList(), 30).Take(5));
    }
}
