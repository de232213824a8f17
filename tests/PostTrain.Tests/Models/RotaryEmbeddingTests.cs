using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

public class RotaryEmbeddingTests
{
    // transformers' apply_rotary_pos_emb, written out: x * cos + rotate_half(x) * sin with
    // rotate_half(x) = cat(-x2, x1), cos and sin of cat(freqs, freqs).
    static Tensor Reference(Tensor x, Tensor positions, Tensor invFreq, ScalarType dtype)
    {
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * invFreq;
        var emb = cat([freqs, freqs], -1).unsqueeze(1);
        var (cos, sin) = (emb.cos().to(dtype), emb.sin().to(dtype));
        long half = x.shape[^1] / 2;
        var rotated = cat([x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void RollWithSignedSinEqualsRotateHalfBitwise(ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var config = TestModels.Config(Architecture.Qwen2, true);
        using var rotary = new RotaryEmbedding(config);
        var positions = tensor(new long[] { 0, 1, 2, 7, 3, 4, 5, 900 }).reshape(2, 4);
        var x = randn(2, 3, 4, config.HeadDim, generator: new Generator(11)).to(dtype) * 3;
        var (cos, sin) = rotary.CosSin(positions, dtype);
        var got = RotaryEmbedding.Apply(x, cos, sin);
        var invFreq = RotaryEmbedding.InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
        var expected = Reference(x, positions, invFreq, dtype);
        Assert.True(got.to(ScalarType.Float32).eq(expected.to(ScalarType.Float32)).all().item<bool>(), "not bitwise equal");
        // A transposed (non-contiguous) input, as attention passes it.
        var t = x.transpose(1, 2).contiguous().transpose(1, 2);
        Assert.True(RotaryEmbedding.Apply(t, cos, sin).to(ScalarType.Float32).eq(expected.to(ScalarType.Float32)).all().item<bool>());
    }
}
