using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Generation;

/// <summary>
/// Greedy decoding's choice and its log-probability for each row of float32 logits
/// [rows, vocab], in one parallel pass over the vocabulary instead of libtorch's argmax and
/// log_softmax-then-gather (both single-threaded while decoding, and three passes that write a
/// copy of the logits): the token is the first index of the largest logit (argmax's rule), and
/// its log-probability is (logit - max) - log(sum(exp(logits - max))).
/// Each row is split into segments of fixed size whose partial results combine in order, so a
/// row's result does not depend on the rows beside it or on the thread count.
/// </summary>
internal static unsafe class Greedy
{
    const int Segment = 16384;

    /// <summary>The picks, or null when a row's largest logit is not finite (NaN or infinities: libtorch's rules then apply).</summary>
    public static (long[] Tokens, float[] LogProbs)? Pick(Tensor logits)
    {
        if (logits.dtype != ScalarType.Float32 || logits.dim() != 2 || logits.device_type != DeviceType.CPU || !logits.is_contiguous())
            throw new ArgumentException("greedy picks take contiguous float32 CPU logits [rows, vocab]");
        int rows = (int)logits.shape[0];
        long vocab = logits.shape[1];
        if (rows == 0 || vocab == 0) throw new ArgumentException("greedy picks need at least one row and one token");
        int segments = (int)((vocab + Segment - 1) / Segment);
        var max = new float[rows * segments];
        var at = new long[rows * segments];
        var sums = new float[rows * segments];
        var rowMax = new float[rows];
        var tokens = new long[rows];
        bool finite = true;
        fixed (byte* bytes = logits.bytes)
        {
            float* data = (float*)bytes;
            (long Start, int Length) Span(int item)
            {
                long start = (long)(item % segments) * Segment;
                return (start, (int)Math.Min(Segment, vocab - start));
            }
            Gemv.For(rows * segments, item =>
            {
                var (start, length) = Span(item);
                (max[item], at[item]) = MaxAndFirst(data + (item / segments) * vocab + start, length);
                at[item] += start;
            });
            for (int r = 0; r < rows; r++)
            {
                int best = r * segments;
                for (int g = best + 1; g < (r + 1) * segments; g++)
                    if (max[g] > max[best]) best = g; // ties keep the earlier segment
                (rowMax[r], tokens[r]) = (max[best], at[best]);
                finite &= float.IsFinite(rowMax[r]);
            }
            if (!finite) return null;
            Gemv.For(rows * segments, item =>
            {
                var (start, length) = Span(item);
                sums[item] = SumExp(data + (item / segments) * vocab + start, length, rowMax[item / segments]);
            });
        }
        var logProbs = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            float sum = 0;
            for (int g = r * segments; g < (r + 1) * segments; g++) sum += sums[g];
            if (!float.IsFinite(sum)) return null; // a NaN the vector max let through
            logProbs[r] = -MathF.Log(sum); // the chosen logit is the max: (logit - max) = 0
        }
        return (tokens, logProbs);
    }

    // The largest value and the first index holding it; NaN counts as the largest (as argmax).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static (float Max, long At) MaxAndFirst(float* x, int n)
    {
        float best = float.NegativeInfinity;
        int i = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (; i + 16 <= n; i += 16) m = Vector512.Max(m, Vector512.Load(x + i)); // NaN propagates
            for (int lane = 0; lane < 16; lane++) best = MathF.Max(best, m[lane]);
        }
        for (; i < n; i++) best = MathF.Max(best, x[i]);
        if (float.IsNaN(best))
        {
            for (int j = 0; j < n; j++) if (float.IsNaN(x[j])) return (best, j);
        }
        int first = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var b = Vector512.Create(best);
            for (; first + 16 <= n; first += 16)
                if (Vector512.EqualsAny(Vector512.Load(x + first), b)) break;
        }
        while (x[first] != best) first++;
        return (best, first);
    }

    /// <summary>
    /// exp(x) for x &lt;= 0 to about one unit in the last place, exactly 1 at 0 (Vector512.Exp
    /// gives 1.0000001 there, which would make a certain token's log-probability -1.2e-7), and
    /// 0 below -87.3 (where float32 results would be subnormal). Cephes' expf: x = n ln 2 + r
    /// with |r| &lt;= ln 2 / 2, exp(r) by its polynomial, times 2^n.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> ExpNonPositive(Vector512<float> x)
    {
        var tiny = Vector512.LessThan(x, Vector512.Create(-87.3f)); // also -inf
        x = Vector512.Max(x, Vector512.Create(-87.3f));
        var n = Vector512.Round(x * Vector512.Create(1.44269504088896341f));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1.9875691500E-4f);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.3981999507E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(8.3334519073E-3f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(4.1665795894E-2f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.6666665459E-1f));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(5.0000001201E-1f));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512.Create(1f);
        var scaled = (p.AsInt32() + (Vector512.ConvertToInt32(n) << 23)).AsSingle();
        return Vector512.ConditionalSelect(tiny, Vector512<float>.Zero, scaled);
    }

    // sum(exp(x - max)), with four vector accumulators combined in a fixed order.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float SumExp(float* x, int n, float max)
    {
        int i = 0;
        float total = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(max);
            Vector512<float> a = default, b = default, c = default, d = default;
            for (; i + 64 <= n; i += 64)
            {
                a += ExpNonPositive(Vector512.Load(x + i) - m);
                b += ExpNonPositive(Vector512.Load(x + i + 16) - m);
                c += ExpNonPositive(Vector512.Load(x + i + 32) - m);
                d += ExpNonPositive(Vector512.Load(x + i + 48) - m);
            }
            total = Vector512.Sum((a + b) + (c + d));
        }
        for (; i < n; i++) total += MathF.Exp(x[i] - max);
        return total;
    }
}
