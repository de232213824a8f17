using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// y[r, o] = sum_i x[r, i] W[o, i] (+ bias[o]) for a few input rows (batch-1 or small-batch
/// decoding), where libtorch's GEMV stays far below the memory bandwidth. W is contiguous
/// [out, in] in float32 or bfloat16, x has W's dtype, sums are float32, and the output has W's
/// dtype (bfloat16 rounded to nearest even, as torch does). Output rows are split across
/// torch.get_num_threads() threads.
/// Every output element is computed by the same sequence of operations whatever the number of
/// rows, the thread count or its place in a block, so a row's result does not depend on the
/// rows beside it.
/// </summary>
internal static unsafe class Gemv
{
    /// <summary>The most input rows (flattened over batch and sequence) the kernel takes.</summary>
    public const int MaxRows = 4;

    /// <summary>
    /// The most rows for which the kernel replaces libtorch: 4 for float32 weights; 3 for
    /// bfloat16, where at 4 rows libtorch is as fast (measured with `generate --micro 1`).
    /// </summary>
    public static int RowLimit(ScalarType dtype) => dtype == ScalarType.BFloat16 ? 3 : MaxRows;

    // At least this many weight bytes per parallel chunk.
    const long MinChunkBytes = 256 << 10;

    /// <summary>
    /// Whether <see cref="Linear"/> may replace nn.functional.linear(x, weight, bias): autograd
    /// off, CPU, contiguous, float32 or bfloat16 throughout, 1..<see cref="RowLimit"/> rows.
    /// </summary>
    public static bool Applies(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Vector128.IsHardwareAccelerated || is_grad_enabled()) return false;
        var dtype = weight.dtype;
        if (dtype != ScalarType.Float32 && dtype != ScalarType.BFloat16) return false;
        if (x.dtype != dtype || weight.dim() != 2 || x.dim() < 1) return false;
        if (x.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return false;
        long inFeatures = weight.size(1), outFeatures = weight.size(0);
        if (inFeatures == 0 || outFeatures == 0 || x.size(-1) != inFeatures) return false;
        long rows = x.numel() / inFeatures;
        if (rows < 1 || rows > RowLimit(dtype)) return false;
        if (!x.is_contiguous() || !weight.is_contiguous()) return false;
        if (bias is not null && (bias.dtype != dtype || bias.device_type != DeviceType.CPU || bias.dim() != 1
            || bias.size(0) != outFeatures || !bias.is_contiguous())) return false;
        return true;
    }

    /// <summary>nn.functional.linear(x, weight, bias) where <see cref="Applies"/>, else the torch call.</summary>
    public static Tensor LinearOrTorch(Tensor x, Tensor weight, Tensor? bias) =>
        Applies(x, weight, bias) ? Linear(x, weight, bias) : nn.functional.linear(x, weight, bias);

    /// <summary>The kernel: x [..., in] -> [..., out]; the caller checks <see cref="Applies"/>.</summary>
    /// <param name="chunks">The number of parallel chunks of output rows (tests); by default from the size and the thread count.</param>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, int? chunks = null)
    {
        long k = weight.size(1), n = weight.size(0);
        int rows = (int)(x.numel() / k);
        var shape = x.shape;
        shape[^1] = n;
        var y = empty(shape, dtype: weight.dtype);
        bool bf16 = weight.dtype == ScalarType.BFloat16;
        var job = t_job ??= new Job();
        fixed (byte* xp = x.bytes, wp = weight.bytes, yp = y.bytes)
        fixed (byte* bp = bias is null ? default : bias.bytes)
        {
            job.Set(xp, wp, bias is null ? null : bp, yp, rows, k, n, bf16);
            long weightBytes = n * k * (bf16 ? 2 : 4);
            int threads = get_num_threads();
            int count = chunks ?? (int)Math.Clamp(weightBytes / MinChunkBytes, 1, Math.Max(1, threads) * 4L);
            if (threads <= 1 && chunks is null) count = 1;
            count = (int)Math.Clamp(count, 1, (n + 3) / 4);
            job.Chunks = count;
            if (count == 1) job.Run(0);
            else Parallel.For(0, count, job.Body);
            job.Clear();
        }
        return y;
    }

    [ThreadStatic] static Job? t_job;

    /// <summary>One call's arguments, reused by the calling thread (no allocation per call).</summary>
    sealed class Job
    {
        public readonly Action<int> Body;
        byte* x, w, bias, y;
        float* xf; // x as float32; for bfloat16 weights converted and deinterleaved (see Prepare)
        float[]? buffer;
        int rows;
        long k, n;
        bool bf16;
        public int Chunks;

        public Job() => Body = Run;

        public void Set(byte* x, byte* w, byte* bias, byte* y, int rows, long k, long n, bool bf16)
        {
            this.x = x; this.w = w; this.bias = bias; this.y = y;
            (this.rows, this.k, this.n, this.bf16) = (rows, k, n, bf16);
            if (!bf16) { xf = (float*)x; return; }
            long need = rows * k;
            if (buffer is null || buffer.Length < need)
            {
                buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(need, 4096), pinned: true);
            }
            xf = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) Prepare(16);
            else if (Vector256.IsHardwareAccelerated) Prepare(8);
            else Prepare(4);
        }

        public void Clear()
        {
            x = w = bias = y = null;
            xf = null;
        }

        // bfloat16 x to float32, each block of 2*width elements stored as its even elements then
        // its odd ones, the order in which the kernel unpacks a block of packed bfloat16 weights.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        void Prepare(int width)
        {
            var src = (ushort*)x;
            for (int r = 0; r < rows; r++)
            {
                ushort* s = src + r * k;
                float* d = xf + r * k;
                long full = k - k % (2 * width), i = 0;
                for (; i < full; i += 2 * width)
                    for (int j = 0; j < width; j++)
                    {
                        d[i + j] = Bf16ToFloat(s[i + 2 * j]);
                        d[i + width + j] = Bf16ToFloat(s[i + 2 * j + 1]);
                    }
                for (; i < k; i++) d[i] = Bf16ToFloat(s[i]);
            }
        }

        public void Run(int chunk)
        {
            long start = n * chunk / Chunks / 4 * 4, end = chunk == Chunks - 1 ? n : n * (chunk + 1) / Chunks / 4 * 4;
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) Dispatch<V512, Vector512<float>>(start, end);
            else if (Vector256.IsHardwareAccelerated) Dispatch<V256, Vector256<float>>(start, end);
            else Dispatch<V128, Vector128<float>>(start, end);
        }

        void Dispatch<S, V>(long start, long end) where S : struct, ISimd<V> where V : struct
        {
            if (bf16) Rows<S, V, Bf16>(start, end);
            else Rows<S, V, F32>(start, end);
        }

        void Rows<S, V, T>(long start, long end) where S : struct, ISimd<V> where V : struct where T : struct
        {
            long o = start;
            switch (rows)
            {
                case 1:
                    for (; o + 4 <= end; o += 4) Kernels<S, V, T>.Rows1x4(this, o);
                    break;
                case 2:
                    for (; o + 2 <= end; o += 2) Kernels<S, V, T>.Rows2x2(this, o);
                    break;
                default:
                    for (; o + 2 <= end; o += 2) Kernels<S, V, T>.Rows4x2(this, o);
                    break;
            }
            for (; o < end; o++)
                for (int r = 0; r < rows; r++) Kernels<S, V, T>.One(this, r, o);
        }

        // The kernels read these.
        public float* X(int r) => xf + r * k;
        public byte* W(long o) => w + o * k * (bf16 ? 2 : 4);
        public long K => k;
        public int RowCount => rows;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store<T>(int r, long o, float sum) where T : struct
        {
            if (typeof(T) == typeof(Bf16))
            {
                if (bias != null) sum += Bf16ToFloat(((ushort*)bias)[o]);
                ((ushort*)y)[r * n + o] = FloatToBf16(sum);
            }
            else
            {
                if (bias != null) sum += ((float*)bias)[o];
                ((float*)y)[r * n + o] = sum;
            }
        }

        // The scalar tail of a dot product: elements from `from` to K, after the vector part.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Tail<T>(float* xr, byte* wr, long from) where T : struct
        {
            float s = 0;
            for (long i = from; i < k; i++)
                s += xr[i] * (typeof(T) == typeof(Bf16) ? Bf16ToFloat(((ushort*)wr)[i]) : ((float*)wr)[i]);
            return s;
        }
    }

    static class Kernels<S, V, T> where S : struct, ISimd<V> where V : struct where T : struct
    {
        // Weight elements [i, i + 2*width) of a row as two vectors: for float32 the two halves,
        // for bfloat16 (packed pairs) the even and the odd elements.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void LoadW(byte* row, long i, out V a, out V b)
        {
            if (typeof(T) == typeof(Bf16))
            {
                var packed = S.Load((float*)((ushort*)row + i));
                a = S.Even(packed);
                b = S.Odd(packed);
            }
            else
            {
                a = S.Load((float*)row + i);
                b = S.Load((float*)row + i + S.Width);
            }
        }

        static long Full(long k) => k - k % (2 * S.Width);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static float Finish(Job job, V a, V b, float* xr, byte* wr, long full) =>
            S.Sum(S.Add(a, b)) + job.Tail<T>(xr, wr, full);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        public static void One(Job job, int r, long o)
        {
            long k = job.K, full = Full(k);
            float* x = job.X(r);
            byte* w0 = job.W(o);
            V a0 = S.Zero, b0 = S.Zero;
            for (long i = 0; i < full; i += 2 * S.Width)
            {
                V xa = S.Load(x + i), xb = S.Load(x + i + S.Width);
                LoadW(w0, i, out var wa, out var wb);
                a0 = S.Fma(wa, xa, a0); b0 = S.Fma(wb, xb, b0);
            }
            job.Store<T>(r, o, Finish(job, a0, b0, x, w0, full));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        public static void Rows1x4(Job job, long o)
        {
            long k = job.K, full = Full(k);
            float* x = job.X(0);
            byte* w0 = job.W(o), w1 = job.W(o + 1), w2 = job.W(o + 2), w3 = job.W(o + 3);
            V a0 = S.Zero, b0 = S.Zero, a1 = S.Zero, b1 = S.Zero, a2 = S.Zero, b2 = S.Zero, a3 = S.Zero, b3 = S.Zero;
            for (long i = 0; i < full; i += 2 * S.Width)
            {
                V xa = S.Load(x + i), xb = S.Load(x + i + S.Width);
                LoadW(w0, i, out var wa, out var wb);
                a0 = S.Fma(wa, xa, a0); b0 = S.Fma(wb, xb, b0);
                LoadW(w1, i, out wa, out wb);
                a1 = S.Fma(wa, xa, a1); b1 = S.Fma(wb, xb, b1);
                LoadW(w2, i, out wa, out wb);
                a2 = S.Fma(wa, xa, a2); b2 = S.Fma(wb, xb, b2);
                LoadW(w3, i, out wa, out wb);
                a3 = S.Fma(wa, xa, a3); b3 = S.Fma(wb, xb, b3);
            }
            job.Store<T>(0, o, Finish(job, a0, b0, x, w0, full));
            job.Store<T>(0, o + 1, Finish(job, a1, b1, x, w1, full));
            job.Store<T>(0, o + 2, Finish(job, a2, b2, x, w2, full));
            job.Store<T>(0, o + 3, Finish(job, a3, b3, x, w3, full));
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        public static void Rows2x2(Job job, long o)
        {
            long k = job.K, full = Full(k);
            float* x0 = job.X(0), x1 = job.X(1);
            byte* w0 = job.W(o), w1 = job.W(o + 1);
            V a00 = S.Zero, b00 = S.Zero, a01 = S.Zero, b01 = S.Zero, a10 = S.Zero, b10 = S.Zero, a11 = S.Zero, b11 = S.Zero;
            for (long i = 0; i < full; i += 2 * S.Width)
            {
                V xa0 = S.Load(x0 + i), xb0 = S.Load(x0 + i + S.Width);
                V xa1 = S.Load(x1 + i), xb1 = S.Load(x1 + i + S.Width);
                LoadW(w0, i, out var wa, out var wb);
                a00 = S.Fma(wa, xa0, a00); b00 = S.Fma(wb, xb0, b00);
                a10 = S.Fma(wa, xa1, a10); b10 = S.Fma(wb, xb1, b10);
                LoadW(w1, i, out wa, out wb);
                a01 = S.Fma(wa, xa0, a01); b01 = S.Fma(wb, xb0, b01);
                a11 = S.Fma(wa, xa1, a11); b11 = S.Fma(wb, xb1, b11);
            }
            job.Store<T>(0, o, Finish(job, a00, b00, x0, w0, full));
            job.Store<T>(0, o + 1, Finish(job, a01, b01, x0, w1, full));
            job.Store<T>(1, o, Finish(job, a10, b10, x1, w0, full));
            job.Store<T>(1, o + 1, Finish(job, a11, b11, x1, w1, full));
        }

        // Three or four rows; with three the fourth reads row 2 again and is not stored.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        public static void Rows4x2(Job job, long o)
        {
            long k = job.K, full = Full(k);
            int rows = job.RowCount;
            float* x0 = job.X(0), x1 = job.X(1), x2 = job.X(2), x3 = job.X(rows > 3 ? 3 : 2);
            byte* w0 = job.W(o), w1 = job.W(o + 1);
            V a00 = S.Zero, b00 = S.Zero, a01 = S.Zero, b01 = S.Zero, a10 = S.Zero, b10 = S.Zero, a11 = S.Zero, b11 = S.Zero;
            V a20 = S.Zero, b20 = S.Zero, a21 = S.Zero, b21 = S.Zero, a30 = S.Zero, b30 = S.Zero, a31 = S.Zero, b31 = S.Zero;
            for (long i = 0; i < full; i += 2 * S.Width)
            {
                LoadW(w0, i, out var wa0, out var wb0);
                LoadW(w1, i, out var wa1, out var wb1);
                V xa = S.Load(x0 + i), xb = S.Load(x0 + i + S.Width);
                a00 = S.Fma(wa0, xa, a00); b00 = S.Fma(wb0, xb, b00); a01 = S.Fma(wa1, xa, a01); b01 = S.Fma(wb1, xb, b01);
                xa = S.Load(x1 + i); xb = S.Load(x1 + i + S.Width);
                a10 = S.Fma(wa0, xa, a10); b10 = S.Fma(wb0, xb, b10); a11 = S.Fma(wa1, xa, a11); b11 = S.Fma(wb1, xb, b11);
                xa = S.Load(x2 + i); xb = S.Load(x2 + i + S.Width);
                a20 = S.Fma(wa0, xa, a20); b20 = S.Fma(wb0, xb, b20); a21 = S.Fma(wa1, xa, a21); b21 = S.Fma(wb1, xb, b21);
                xa = S.Load(x3 + i); xb = S.Load(x3 + i + S.Width);
                a30 = S.Fma(wa0, xa, a30); b30 = S.Fma(wb0, xb, b30); a31 = S.Fma(wa1, xa, a31); b31 = S.Fma(wb1, xb, b31);
            }
            job.Store<T>(0, o, Finish(job, a00, b00, x0, w0, full));
            job.Store<T>(0, o + 1, Finish(job, a01, b01, x0, w1, full));
            job.Store<T>(1, o, Finish(job, a10, b10, x1, w0, full));
            job.Store<T>(1, o + 1, Finish(job, a11, b11, x1, w1, full));
            job.Store<T>(2, o, Finish(job, a20, b20, x2, w0, full));
            job.Store<T>(2, o + 1, Finish(job, a21, b21, x2, w1, full));
            if (rows > 3)
            {
                job.Store<T>(3, o, Finish(job, a30, b30, x3, w0, full));
                job.Store<T>(3, o + 1, Finish(job, a31, b31, x3, w1, full));
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Bf16ToFloat(ushort b) => BitConverter.Int32BitsToSingle(b << 16);

    /// <summary>float32 to bfloat16, rounded to nearest even; NaN stays a (quiet) NaN, as c10::BFloat16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ushort FloatToBf16(float f)
    {
        if (float.IsNaN(f)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(f);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    struct F32;
    struct Bf16;

    interface ISimd<V> where V : struct
    {
        static abstract int Width { get; }
        static abstract V Zero { get; }
        static abstract V Load(float* p);
        /// <summary>Packed bfloat16 pairs (as 32-bit lanes): the even elements as float32.</summary>
        static abstract V Even(V packed);
        /// <summary>Packed bfloat16 pairs (as 32-bit lanes): the odd elements as float32.</summary>
        static abstract V Odd(V packed);
        static abstract V Fma(V a, V b, V acc);
        static abstract V Add(V a, V b);
        static abstract float Sum(V v);
    }

    struct V512 : ISimd<Vector512<float>>
    {
        public static int Width => 16;
        public static Vector512<float> Zero => Vector512<float>.Zero;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load(float* p) => Vector512.Load(p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Even(Vector512<float> v) => Vector512.ShiftLeft(v.AsUInt32(), 16).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Odd(Vector512<float> v) => (v.AsUInt32() & Vector512.Create(0xFFFF0000u)).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> acc) => Avx512F.FusedMultiplyAdd(a, b, acc);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(Vector512<float> v) => V256.Sum(v.GetLower() + v.GetUpper());
    }

    struct V256 : ISimd<Vector256<float>>
    {
        public static int Width => 8;
        public static Vector256<float> Zero => Vector256<float>.Zero;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load(float* p) => Vector256.Load(p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Even(Vector256<float> v) => Vector256.ShiftLeft(v.AsUInt32(), 16).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Odd(Vector256<float> v) => (v.AsUInt32() & Vector256.Create(0xFFFF0000u)).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> acc) =>
            System.Runtime.Intrinsics.X86.Fma.IsSupported ? System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, acc) : a * b + acc;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(Vector256<float> v) => V128.Sum(v.GetLower() + v.GetUpper());
    }

    struct V128 : ISimd<Vector128<float>>
    {
        public static int Width => 4;
        public static Vector128<float> Zero => Vector128<float>.Zero;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Load(float* p) => Vector128.Load(p);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Even(Vector128<float> v) => Vector128.ShiftLeft(v.AsUInt32(), 16).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Odd(Vector128<float> v) => (v.AsUInt32() & Vector128.Create(0xFFFF0000u)).AsSingle();
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> acc) =>
            System.Runtime.Intrinsics.X86.Fma.IsSupported ? System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, acc)
            : System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported ? System.Runtime.Intrinsics.Arm.AdvSimd.FusedMultiplyAdd(acc, a, b) : a * b + acc;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Sum(Vector128<float> v)
        {
            var h = v + Vector128.Shuffle(v, Vector128.Create(2, 3, 0, 1));
            return h.GetElement(0) + h.GetElement(1);
        }
    }
}
