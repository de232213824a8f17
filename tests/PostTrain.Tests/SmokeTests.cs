using TorchSharp;
namespace PostTrain.Tests;
public class SmokeTests
{
    [Fact]
    public void TorchLoads() => Assert.Equal(4L, torch.ones(2, 2).sum().item<float>() is 4f ? 4L : 0L);
}
