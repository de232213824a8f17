using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// Rotary position embedding with transformers' conventions: inverse frequencies
/// 1 / theta^(2i/d) in float32 (rescaled for "linear" and "llama3" rope types), cos/sin of
/// position x frequency duplicated over both halves, and rotate_half (not interleaved pairs).
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly Tensor invFreq; // [headDim / 2], float32

    public RotaryEmbedding(ModelConfig config)
    {
        invFreq = InverseFrequencies(config.HeadDim, config.RopeTheta, config.RopeScaling);
    }

    public static Tensor InverseFrequencies(int dim, double theta, RopeScaling? scaling)
    {
        using var scope = NewDisposeScope();
        var exponents = arange(0, dim, 2, dtype: ScalarType.Int64).to(ScalarType.Float32) / dim;
        var inv = 1.0f / pow(tensor((float)theta), exponents);
        if (scaling is { Type: "linear" })
            inv = inv / (float)scaling.Factor;
        else if (scaling is { Type: "llama3" })
            inv = Llama3(inv, scaling);
        return inv.MoveToOuterDisposeScope();
    }

    // transformers' _compute_llama3_parameters: long wavelengths are divided by the factor,
    // short ones kept, and the band between interpolated smoothly.
    static Tensor Llama3(Tensor inv, RopeScaling s)
    {
        double oldContext = s.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / s.LowFreqFactor;
        double highFreqWavelen = oldContext / s.HighFreqFactor;
        var wavelen = 2 * Math.PI / inv;
        var scaled = where(wavelen > lowFreqWavelen, inv / s.Factor, inv);
        var smooth = (oldContext / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        var smoothed = (1 - smooth) * scaled / s.Factor + smooth * scaled;
        var medium = (wavelen >= highFreqWavelen).logical_and(wavelen <= lowFreqWavelen);
        return where(medium, smoothed, scaled);
    }

    /// <summary>
    /// cos and sin for positions [batch, seq], each [batch, 1, seq, headDim] in
    /// <paramref name="dtype"/>: cos of position x frequency over both halves, and sin with its
    /// first half negated (see <see cref="Apply"/>).
    /// </summary>
    public (Tensor Cos, Tensor SignedSin) CosSin(Tensor positionIds, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1) * invFreq; // [b, s, d/2]
        var c = freqs.cos();
        var s = freqs.sin();
        var cos = cat([c, c], -1).unsqueeze(1).to(dtype);                      // [b, 1, s, d]
        var sin = cat([s.neg(), s], -1).unsqueeze(1).to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// transformers' x * cos + rotate_half(x) * sin for x [batch, heads, seq, headDim], with
    /// rotate_half(x) = cat(-x2, x1) and sin = cat(s, s): the same values as
    /// x * cos + cat(x2, x1) * cat(-s, s), where cat(x2, x1) is x rolled by half a head and
    /// cat(-s, s) is <see cref="CosSin"/>'s signed sin (negating before or after a product gives
    /// the same float). Four ops where rotate_half takes seven.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin)
    {
        using var scope = NewDisposeScope();
        long half = x.shape[^1] / 2;
        return (x * cos + x.roll(half, -1) * signedSin).MoveToOuterDisposeScope();
    }

    public void Dispose() => invFreq.Dispose();
}
