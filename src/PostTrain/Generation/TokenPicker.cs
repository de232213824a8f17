using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Generation;

/// <summary>
/// The next token of each row of float32 logits [rows, vocab] (after the logits processors)
/// and its log-probability, in parallel passes over the vocabulary instead of libtorch's
/// argmax or softmax-then-multinomial and log_softmax-then-gather (single-threaded while
/// decoding, several passes that each write a copy of the logits, and multinomial's checks and
/// cumulative sums alone took a quarter of a 16-row step):
/// - <see cref="Greedy"/>: the first index of the largest logit (argmax's rule);
/// - <see cref="Sample"/>: the token whose cumulative probability first exceeds u for a uniform
///   draw u of the row (inverse transform sampling, the distribution multinomial samples);
/// the log-probability is (logit - max) - log(sum(exp(logits - max))).
/// Each row is split into segments of fixed size whose partial results combine in order, so a
/// row's result does not depend on the rows beside it or on the thread count. Either returns
/// null when a row's largest logit is not finite (NaN or infinities): libtorch's rules apply then.
/// </summary>
internal static unsafe class TokenPicker
{
    const int Segment = 16384;

    // exp(x - max) below this is taken as 0 (float32 would be subnormal there): the same cut in
    // every pass, so a token counted in a sum is one a draw can land on.
    const float Underflow = -87.3f;

    /// <summary>Greedy decoding: each row's first largest logit.</summary>
    public static (long[] Tokens, float[] LogProbs)? Greedy(Tensor logits)
    {
        var pass = Pass.Run(logits);
        if (pass is null) return null;
        var logProbs = new float[pass.Rows];
        for (int r = 0; r < pass.Rows; r++) logProbs[r] = -MathF.Log(pass.Total[r]); // logit - max = 0
        return (pass.First, logProbs);
    }

    /// <summary>
    /// Sampling: for each row, the first token whose cumulative probability exceeds
    /// <paramref name="uniforms"/>[row] (each in [0, 1)). Tokens of probability 0 (logit -inf,
    /// or below the max by more than float32's exp resolves) are never drawn.
    /// </summary>
    public static (long[] Tokens, float[] LogProbs)? Sample(Tensor logits, float[] uniforms)
    {
        var pass = Pass.Run(logits);
        if (pass is null) return null;
        if (uniforms.Length != pass.Rows) throw new ArgumentException($"{pass.Rows} rows but {uniforms.Length} draws");
        var tokens = new long[pass.Rows];
        var logProbs = new float[pass.Rows];
        for (int r = 0; r < pass.Rows; r++)
        {
            float* row = pass.Data + r * pass.Vocab;
            tokens[r] = pass.Find(r, uniforms[r] * pass.Total[r]);
            logProbs[r] = (row[tokens[r]] - pass.Max[r]) - MathF.Log(pass.Total[r]);
        }
        return (tokens, logProbs);
    }

    /// <summary>
    /// The two parallel passes over the logits: each row's max (with its first index), then
    /// each segment's sum of exp(logit - max). Holds the logits' native address: the caller
    /// keeps the tensor alive while it is used.
    /// </summary>
    sealed class Pass
    {
        public int Rows;
        public long Vocab;
        public float* Data;
        public float[] Max = [], Total = [];
        public long[] First = [];
        float[] segmentSums = [];
        int segments;

        public static Pass? Run(Tensor logits)
        {
            if (logits.dtype != ScalarType.Float32 || logits.dim() != 2 || logits.device_type != DeviceType.CPU || !logits.is_contiguous())
                throw new ArgumentException("token picks take contiguous float32 CPU logits [rows, vocab]");
            var p = new Pass { Rows = (int)logits.shape[0], Vocab = logits.shape[1] };
            if (p.Rows == 0 || p.Vocab == 0) throw new ArgumentException("token picks need at least one row and one token");
            p.Compute(logits);
            return p.Max.All(float.IsFinite) && p.Total.All(float.IsFinite) ? p : null;
        }

        void Compute(Tensor logits)
        {
            int rows = Rows;
            long vocab = Vocab;
            segments = (int)((vocab + Segment - 1) / Segment);
            int items = rows * segments;
            var max = new float[items];
            var at = new long[items];
            segmentSums = new float[items];
            Max = new float[rows];
            First = new long[rows];
            Total = new float[rows];
            // The tensor's native memory: it does not move, so the address needs no pinning.
            Data = (float*)Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(logits.bytes));
            float* data = Data;
            int segs = segments;
            (long Start, int Length) Bounds(int item)
            {
                long start = (long)(item % segs) * Segment;
                return (start, (int)Math.Min(Segment, vocab - start));
            }
            Gemv.For(items, item =>
            {
                var (start, length) = Bounds(item);
                (max[item], at[item]) = MaxAndFirst(data + (item / segs) * vocab + start, length);
                at[item] += start;
            });
            for (int r = 0; r < rows; r++)
            {
                int best = r * segs;
                for (int g = best + 1; g < (r + 1) * segs; g++)
                    if (max[g] > max[best]) best = g; // ties keep the earlier segment
                (Max[r], First[r]) = (max[best], at[best]);
            }
            if (Max.Any(m => !float.IsFinite(m))) return;
            var rowMax = Max;
            var sums = segmentSums;
            Gemv.For(items, item =>
            {
                var (start, length) = Bounds(item);
                sums[item] = SumExp(data + (item / segs) * vocab + start, length, rowMax[item / segs]);
            });
            for (int r = 0; r < rows; r++)
            {
                float total = 0;
                for (int g = r * segs; g < (r + 1) * segs; g++) total += sums[g];
                Total[r] = total;
            }
        }

        // The first token of row r at which the running sum of exp(logit - max) exceeds
        // target: whole segments by their sums, then the segment's vectors by theirs, then the
        // lanes. Rounding may leave the target unreached: then the last token of nonzero
        // probability.
        public long Find(int r, float target)
        {
            float* row = Data + r * Vocab;
            float max = Max[r], running = 0;
            int g = 0;
            while (g < segments - 1 && running + segmentSums[r * segments + g] <= target)
                running += segmentSums[r * segments + g++];
            long i = (long)g * Segment, last = -1;
            if (Vector512.IsHardwareAccelerated)
            {
                var m = Vector512.Create(max);
                for (; i + 16 <= Vocab; i += 16)
                {
                    var e = ExpNonPositive(Vector512.Load(row + i) - m);
                    float sum = Vector512.Sum(e);
                    if (sum == 0) continue;
                    if (running + sum <= target)
                    {
                        running += sum;
                        for (int lane = 15; lane >= 0; lane--)
                            if (e[lane] > 0) { last = i + lane; break; }
                        continue;
                    }
                    for (int lane = 0; lane < 16; lane++)
                    {
                        if (e[lane] == 0) continue;
                        last = i + lane;
                        running += e[lane];
                        if (running > target) return last;
                    }
                }
            }
            if (Vector512.IsHardwareAccelerated)
                for (; i < Vocab; i++)
                {
                    float x = row[i] - max;
                    if (x < Underflow) continue; // probability 0, as ExpNonPositive
                    last = i;
                    running += MathF.Exp(x);
                    if (running > target) return i;
                }
            else
            {
                double exact = running; // one term at a time, in double as SumExp's
                for (; i < Vocab; i++)
                {
                    float x = row[i] - max;
                    if (x < Underflow) continue;
                    last = i;
                    exact += MathF.Exp(x);
                    if (exact > target) return i;
                }
            }
            if (last >= 0) return last;
            for (i = (long)g * Segment - 1; i >= 0; i--)
                if (row[i] - max >= Underflow) return i;
            return First[r];
        }
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
        var tiny = Vector512.LessThan(x, Vector512.Create(Underflow)); // also -inf
        x = Vector512.Max(x, Vector512.Create(Underflow));
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

    // sum(exp(x - max)), with four vector accumulators combined in a fixed order. Without AVX-512
    // the terms are added one at a time, in double: a float32 running sum over a 16384-token
    // segment drifts by about 1e-5 of the total.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static float SumExp(float* x, int n, float max)
    {
        if (!Vector512.IsHardwareAccelerated)
        {
            double exact = 0;
            for (int j = 0; j < n; j++)
            {
                float y = x[j] - max;
                if (y >= Underflow) exact += MathF.Exp(y);
            }
            return (float)exact;
        }
        int i = 0;
        var m = Vector512.Create(max);
        Vector512<float> a = default, b = default, c = default, d = default;
        for (; i + 64 <= n; i += 64)
        {
            a += ExpNonPositive(Vector512.Load(x + i) - m);
            b += ExpNonPositive(Vector512.Load(x + i + 16) - m);
            c += ExpNonPositive(Vector512.Load(x + i + 32) - m);
            d += ExpNonPositive(Vector512.Load(x + i + 48) - m);
        }
        float total = Vector512.Sum((a + b) + (c + d));
        for (; i < n; i++)
        {
            float y = x[i] - max;
            if (y >= Underflow) total += MathF.Exp(y); // below, probability 0 as in ExpNonPositive
        }
        return total;
    }
}
