using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// y[r, o] = sum_i x[r, i] W[o, i] (+ bias[o]) for a few input rows (batch-1 or small-batch
/// decoding), where libtorch's GEMV stays far below the memory bandwidth and its float32 small
/// matrix products far below the arithmetic throughput. W is contiguous [out, in] in float32 or
/// bfloat16, x has W's dtype, sums are float32, and the output has W's dtype (bfloat16 rounded
/// to nearest even, as torch does). Output rows are split across torch.get_num_threads()
/// threads; with more than four input rows the weights are tiled so that each is read from
/// memory once.
/// Every output element is computed by the same sequence of operations whatever the number of
/// rows, the thread count or its place in a block, so a row's result does not depend on the
/// rows beside it.
/// </summary>
internal static unsafe class Gemv
{
    /// <summary>The most input rows (flattened over batch and sequence) the kernel takes.</summary>
    public const int MaxRows = 32;

    /// <summary>
    /// The most rows for which the kernel replaces libtorch, measured as whole decode steps of
    /// qwen2.5-0.5b (each step's other operations single-threaded, as decoding runs them): 32
    /// for float32 weights, where libtorch's small matrix products stay at a third of the
    /// kernel's speed or less; 12 for bfloat16 (8 rows: 76 ms against libtorch's 99; 12: 99
    /// against 108; 16: 148 against 117, where oneDNN's AVX-512 BF16 dot products win).
    /// </summary>
    public static int RowLimit(ScalarType dtype) => dtype == ScalarType.BFloat16 ? 12 : 32;

    // At least this much work per parallel chunk: weight bytes times the groups of four rows.
    const long MinChunkBytes = 256 << 10;
    // How far ahead of a streamed bfloat16 weight row to prefetch: 256-640 bytes measured best
    // (2 KB and more: no gain), into L2 (prefetcht2; t0 and t1 a little slower).
    const int Bf16StreamAhead = 512;
    // Weight bytes per tile when more than four input rows share each weight read.
    const long TileBytes = 64 << 10;

    /// <summary>
    /// Whether <see cref="Linear"/> may replace nn.functional.linear(x, weight, bias): autograd
    /// off, CPU, contiguous, float32 or bfloat16 throughout, 1..<see cref="RowLimit"/> rows.
    /// </summary>
    public static bool Applies(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Vector128.IsHardwareAccelerated || is_grad_enabled() || t_suspended > 0) return false;
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

    [ThreadStatic] static int t_suspended;

    /// <summary>
    /// While the returned scope lives, this thread's linear layers use libtorch even without
    /// autograd: for a forward that must equal one recorded with autograd (gradient
    /// checkpointing's first pass, recomputed in backward).
    /// </summary>
    public static IDisposable Suspend()
    {
        t_suspended++;
        return new Scope(() => t_suspended--);
    }

    /// <summary>Runs its exit action once, on the first Dispose.</summary>
    sealed class Scope(Action exit) : IDisposable
    {
        Action? pending = exit;

        public void Dispose() => Interlocked.Exchange(ref pending, null)?.Invoke();
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
            var (threads, decoding) = Threads;
            // Work grows with the rows once they share each weight read (more than four).
            long work = weightBytes * ((rows + 3) / 4);
            int count = chunks ?? (int)Math.Clamp(work / MinChunkBytes, 1, Math.Max(1, threads) * 4L);
            if (threads <= 1 && chunks is null) count = 1;
            count = (int)Math.Clamp(count, 1, n);
            job.Chunks = count;
            For(count, job.Body, threads, decoding);
            job.Clear();
        }
        return y;
    }

    /// <summary>
    /// body(0..count-1) across the kernel's threads: its spinning workers inside a
    /// <see cref="SmallBatchDecoding"/> scope, the thread pool outside one.
    /// </summary>
    internal static void For(int count, Action<int> body)
    {
        var (threads, decoding) = Threads;
        For(count, body, threads, decoding);
    }

    static void For(int count, Action<int> body, int threads, bool decoding)
    {
        if (count == 1 || threads <= 1) for (int i = 0; i < count; i++) body(i);
        else if (decoding) SpinWorkers.Shared(threads).For(count, body);
        else Parallel.For(0, count, body);
    }

    static readonly object s_decode = new();
    static int s_decodeDepth, s_torchThreads;

    /// <summary>
    /// For small-batch decoding: while the returned scope lives, libtorch runs single-threaded
    /// and this kernel keeps the thread count libtorch had. The kernel does the work that needs
    /// the memory bandwidth of every core; the rest of a decode step is many small operations,
    /// for which waking OpenMP's workers costs more than it saves, and whose spinning workers
    /// would otherwise take the cores the kernel needs. Scopes may nest and overlap across
    /// threads: the first sets, the last restores.
    /// </summary>
    public static IDisposable SmallBatchDecoding()
    {
        lock (s_decode)
        {
            if (s_decodeDepth++ == 0)
            {
                s_torchThreads = get_num_threads();
                if (s_torchThreads > 1) set_num_threads(1);
            }
        }
        return new Scope(() =>
        {
            lock (s_decode)
            {
                if (--s_decodeDepth == 0 && s_torchThreads > 1) set_num_threads(s_torchThreads);
            }
        });
    }

    /// <summary>
    /// The kernel's threads: libtorch's thread count, or what it was before
    /// <see cref="SmallBatchDecoding"/>; and whether such a scope is open, where the kernel's
    /// own spinning workers run the chunks (outside one they would spin beside OpenMP's).
    /// </summary>
    static (int Count, bool Decoding) Threads
    {
        get
        {
            lock (s_decode) return s_decodeDepth > 0 ? (s_torchThreads, true) : (get_num_threads(), false);
        }
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
            long start = n * chunk / Chunks, end = n * (chunk + 1) / Chunks;
            if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) Dispatch<V512, Vector512<float>>(start, end);
            else if (Vector256.IsHardwareAccelerated) Dispatch<V256, Vector256<float>>(start, end);
            else Dispatch<V128, Vector128<float>>(start, end);
        }

        void Dispatch<S, V>(long start, long end) where S : struct, ISimd<V> where V : struct
        {
            if (bf16) Rows<S, V, Bf16>(start, end);
            else Rows<S, V, F32>(start, end);
        }

        // Output rows [start, end). Up to four input rows go through the kernel together; more
        // are taken four at a time over a tile of weight rows small enough to stay in the core's
        // cache, so the weights come from memory once whatever the number of input rows.
        void Rows<S, V, T>(long start, long end) where S : struct, ISimd<V> where V : struct where T : struct
        {
            if (rows <= 4)
            {
                Group<S, V, T>(0, rows, start, end);
                return;
            }
            long rowBytes = k * (bf16 ? 2 : 4);
            long tile = Math.Max(1, TileBytes / rowBytes);
            tile = Math.Max(3, tile - tile % 3);
            // Cache lines of the next tile to prefetch per kernel iteration, so that they have all
            // been asked for by the end of this one: a tile has tile * rowBytes / 64 lines, and
            // the Tile4 calls over it make (rows / 4) * (tile / 3) * k / (2 * width) iterations.
            long iterations = rows / 4 * (tile / 3) * (k / (2 * S.Width));
            int lines = (int)Math.Clamp((tile * rowBytes / 64 + iterations - 1) / Math.Max(1, iterations), 1, 8);
            for (long t = start; t < end; t += tile)
            {
                long tileEnd = Math.Min(end, t + tile);
                var prefetch = new Prefetcher(W(tileEnd), W(Math.Min(end, tileEnd + tile)), lines);
                int r = 0;
                for (; r + 4 <= rows; r += 4) Kernels<S, V, T>.Tile4(this, r, t, tileEnd, ref prefetch);
                if (r < rows) Group<S, V, T>(r, rows - r, t, tileEnd);
            }
        }

        void Group<S, V, T>(int first, int count, long start, long end) where S : struct, ISimd<V> where V : struct where T : struct
        {
            switch (count)
            {
                case 1: Kernels<S, V, T>.Rows<R1>(this, first, start, end); break;
                case 2: Kernels<S, V, T>.Rows<R2>(this, first, start, end); break;
                case 3: Kernels<S, V, T>.Rows<R3>(this, first, start, end); break;
                default: Kernels<S, V, T>.Rows<R4>(this, first, start, end); break;
            }
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

    // The number of input rows, as a type, so that each count gets its own compiled kernel.
    interface IRowCount { static abstract int N { get; } }
    struct R1 : IRowCount { public static int N => 1; }
    struct R2 : IRowCount { public static int N => 2; }
    struct R3 : IRowCount { public static int N => 3; }
    struct R4 : IRowCount { public static int N => 4; }

    /// <summary>
    /// The kernels. Every dot product is computed the same way, whatever the number of input
    /// rows or the kernel: elements are taken in blocks of 2 x width (for bfloat16 weights the
    /// even and the odd elements of a block), the two halves accumulate in two vectors a and b,
    /// and the result is (a + b) reduced across lanes, then the scalar tail. So a row's output
    /// does not depend on the rows beside it.
    /// </summary>
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

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Block(float* x, long i, V wa, V wb, ref V a, ref V b)
        {
            a = S.Fma(wa, S.Load(x + i), a);
            b = S.Fma(wb, S.Load(x + i + S.Width), b);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        static void Finish(Job job, int r, long o, float* x, byte* w, long full, V a, V b) =>
            job.Store<T>(r, o, S.Sum(S.Add(a, b)) + job.Tail<T>(x, w, full));

        /// <summary>
        /// Weight rows start..end-1, one at a time, front to back, against input rows
        /// first..first+R-1: the weights stream through memory in order, which the hardware
        /// prefetchers follow (reading several rows side by side measured at half the bandwidth).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)] // no slow first calls under tiered compilation
        public static void Rows<R>(Job job, int first, long start, long end) where R : struct, IRowCount
        {
            long k = job.K, block = 2 * S.Width, full = k - k % block;
            int r0 = first, r1 = first + (R.N > 1 ? 1 : 0), r2 = first + (R.N > 2 ? 2 : 0), r3 = first + (R.N > 3 ? 3 : 0);
            float* x0 = job.X(r0), x1 = job.X(r1), x2 = job.X(r2), x3 = job.X(r3);
            for (long o = start; o < end; o++)
            {
                byte* w = job.W(o);
                V a0 = S.Zero, b0 = S.Zero, a1 = S.Zero, b1 = S.Zero, a2 = S.Zero, b2 = S.Zero, a3 = S.Zero, b3 = S.Zero;
                for (long i = 0; i < full; i += block)
                {
                    // bfloat16 weights: a software prefetch a few lines ahead of the stream (measured on
                    // qwen2.5-0.5b, alternating in one process: the engine's median batch-1 decode
                    // step 42-50 -> 39-45 ms; float32, whose rows stream at the bound without it,
                    // gains nothing).
                    if (typeof(T) == typeof(Bf16) && Sse.IsSupported) Sse.Prefetch2(w + 2 * i + Bf16StreamAhead);
                    LoadW(w, i, out var wa, out var wb);
                    Block(x0, i, wa, wb, ref a0, ref b0);
                    if (R.N > 1) Block(x1, i, wa, wb, ref a1, ref b1);
                    if (R.N > 2) Block(x2, i, wa, wb, ref a2, ref b2);
                    if (R.N > 3) Block(x3, i, wa, wb, ref a3, ref b3);
                }
                Finish(job, r0, o, x0, w, full, a0, b0);
                if (R.N > 1) Finish(job, r1, o, x1, w, full, a1, b1);
                if (R.N > 2) Finish(job, r2, o, x2, w, full, a2, b2);
                if (R.N > 3) Finish(job, r3, o, x3, w, full, a3, b3);
            }
        }

        /// <summary>
        /// Four input rows against weight rows start..end-1, three at a time, for weights already
        /// in cache (many input rows, tiled): 24 accumulators (the a and b of each dot product),
        /// so that each multiply-add needs about half a load; the remainder goes to
        /// <see cref="Rows{R}"/>. Every iteration asks for a few lines of the next tile.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Tile4(Job job, int first, long start, long end, ref Prefetcher prefetch)
        {
            long full = job.K - job.K % (2 * S.Width), o = start;
            for (; o + 3 <= end; o += 3) Triple(job, first, o, full, ref prefetch);
            if (o < end) Rows<R4>(job, first, o, end);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        static void Triple(Job job, int first, long o, long full, ref Prefetcher prefetch)
        {
            long block = 2 * S.Width;
            float* x0 = job.X(first), x1 = job.X(first + 1), x2 = job.X(first + 2), x3 = job.X(first + 3);
            byte* w0 = job.W(o), w1 = job.W(o + 1), w2 = job.W(o + 2);
            V a00 = S.Zero, b00 = S.Zero, a01 = S.Zero, b01 = S.Zero, a02 = S.Zero, b02 = S.Zero, a03 = S.Zero, b03 = S.Zero;
            V a10 = S.Zero, b10 = S.Zero, a11 = S.Zero, b11 = S.Zero, a12 = S.Zero, b12 = S.Zero, a13 = S.Zero, b13 = S.Zero;
            V a20 = S.Zero, b20 = S.Zero, a21 = S.Zero, b21 = S.Zero, a22 = S.Zero, b22 = S.Zero, a23 = S.Zero, b23 = S.Zero;
            for (long i = 0; i < full; i += block)
            {
                prefetch.Next();
                LoadW(w0, i, out var wa0, out var wb0);
                LoadW(w1, i, out var wa1, out var wb1);
                LoadW(w2, i, out var wa2, out var wb2);
                V xa = S.Load(x0 + i), xb = S.Load(x0 + i + S.Width);
                a00 = S.Fma(wa0, xa, a00); b00 = S.Fma(wb0, xb, b00); a10 = S.Fma(wa1, xa, a10); b10 = S.Fma(wb1, xb, b10); a20 = S.Fma(wa2, xa, a20); b20 = S.Fma(wb2, xb, b20);
                xa = S.Load(x1 + i); xb = S.Load(x1 + i + S.Width);
                a01 = S.Fma(wa0, xa, a01); b01 = S.Fma(wb0, xb, b01); a11 = S.Fma(wa1, xa, a11); b11 = S.Fma(wb1, xb, b11); a21 = S.Fma(wa2, xa, a21); b21 = S.Fma(wb2, xb, b21);
                xa = S.Load(x2 + i); xb = S.Load(x2 + i + S.Width);
                a02 = S.Fma(wa0, xa, a02); b02 = S.Fma(wb0, xb, b02); a12 = S.Fma(wa1, xa, a12); b12 = S.Fma(wb1, xb, b12); a22 = S.Fma(wa2, xa, a22); b22 = S.Fma(wb2, xb, b22);
                xa = S.Load(x3 + i); xb = S.Load(x3 + i + S.Width);
                a03 = S.Fma(wa0, xa, a03); b03 = S.Fma(wb0, xb, b03); a13 = S.Fma(wa1, xa, a13); b13 = S.Fma(wb1, xb, b13); a23 = S.Fma(wa2, xa, a23); b23 = S.Fma(wb2, xb, b23);
            }
            Finish(job, first, o, x0, w0, full, a00, b00); Finish(job, first + 1, o, x1, w0, full, a01, b01);
            Finish(job, first + 2, o, x2, w0, full, a02, b02); Finish(job, first + 3, o, x3, w0, full, a03, b03);
            Finish(job, first, o + 1, x0, w1, full, a10, b10); Finish(job, first + 1, o + 1, x1, w1, full, a11, b11);
            Finish(job, first + 2, o + 1, x2, w1, full, a12, b12); Finish(job, first + 3, o + 1, x3, w1, full, a13, b13);
            Finish(job, first, o + 2, x0, w2, full, a20, b20); Finish(job, first + 1, o + 2, x1, w2, full, a21, b21);
            Finish(job, first + 2, o + 2, x2, w2, full, a22, b22); Finish(job, first + 3, o + 2, x3, w2, full, a23, b23);
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

    /// <summary>
    /// Asks for the cache lines of [next, end) a few at a time, into the core's L2 cache: the
    /// weight tile after the one being computed, so that memory and arithmetic overlap.
    /// </summary>
    struct Prefetcher(byte* next, byte* end, int lines)
    {
        byte* next = next;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Next()
        {
            if (!Sse.IsSupported) return;
            for (int l = 0; l < lines && next < end; l++, next += 64) Sse.Prefetch1(next);
        }
    }

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
