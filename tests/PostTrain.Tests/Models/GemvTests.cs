using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

public class GemvTests
{
    // in sizes around the vector widths (4, 8, 16 floats; 32 bfloat16 per packed step), out
    // sizes not multiples of the block (4) or of a chunk.
    public static TheoryData<long, long> Sizes => new()
    {
        { 1, 1 }, { 3, 5 }, { 31, 7 }, { 32, 9 }, { 33, 13 }, { 64, 4 }, { 95, 130 }, { 896, 1001 }, { 1000, 4099 }, { 4867, 333 },
    };

    // Every kernel: one to four rows (one weight row at a time), and more (tiles, four input
    // rows against six weight rows at a time, with the remainders of both).
    static readonly int[] RowCounts = [1, 2, 3, 4, 5, 7, 8, 9, 11, 16, 31, Gemv.MaxRows];

    static Tensor Run(Tensor x, Tensor w, Tensor? b)
    {
        Assert.Equal(x.numel() / w.shape[1] <= Gemv.RowLimit(w.dtype), Gemv.Applies(x, w, b));
        return Gemv.Linear(x, w, b);
    }

    [Trait("Category", "Slow")]
    [Theory]
    [MemberData(nameof(Sizes))]
    public void Float32EqualsLinear(long inFeatures, long outFeatures)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new Generator(7);
        var w = randn(outFeatures, inFeatures, generator: g);
        var bias = randn(outFeatures, generator: g);
        foreach (int rows in RowCounts)
        {
            var x = randn(rows, inFeatures, generator: g);
            foreach (var b in new[] { null, bias })
            {
                var expected = x.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64).t());
                if (b is not null) expected += b.to(ScalarType.Float64);
                var actual = Run(x, w, b);
                Assert.Equal(ScalarType.Float32, actual.dtype);
                Assert.Equal(new[] { (long)rows, outFeatures }, actual.shape);
                // Relative to the size of the terms summed, bias included (the result itself may cancel to ~0).
                var scale = x.abs().to(ScalarType.Float64).matmul(w.abs().to(ScalarType.Float64).t()) + (b is null ? 0 : b.abs().to(ScalarType.Float64)) + 1e-30;
                double error = ((actual.to(ScalarType.Float64) - expected).abs() / scale).max().item<double>();
                Assert.True(error < 1e-5, $"rows {rows}: relative error {error}");
                var torchResult = nn.functional.linear(x, w, b);
                double torchError = ((torchResult.to(ScalarType.Float64) - expected).abs() / scale).max().item<double>();
                Assert.True(error <= Math.Max(torchError * 4, 1e-6), $"rows {rows}: {error} vs torch {torchError}");
            }
        }
    }

    [Trait("Category", "Slow")]
    [Theory]
    [MemberData(nameof(Sizes))]
    public void BFloat16EqualsLinearToRounding(long inFeatures, long outFeatures)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new Generator(11);
        var w = randn(outFeatures, inFeatures, generator: g).to(ScalarType.BFloat16);
        var bias = randn(outFeatures, generator: g).to(ScalarType.BFloat16);
        foreach (int rows in RowCounts)
        {
            var x = randn(rows, inFeatures, generator: g).to(ScalarType.BFloat16);
            foreach (var b in new[] { null, bias })
            {
                // The exact sum of the bfloat16 inputs, then one rounding to bfloat16.
                var exact = x.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64).t());
                if (b is not null) exact += b.to(ScalarType.Float64);
                var actual = Run(x, w, b);
                Assert.Equal(ScalarType.BFloat16, actual.dtype);
                Assert.Equal(new[] { (long)rows, outFeatures }, actual.shape);
                var scale = x.abs().to(ScalarType.Float64).matmul(w.abs().to(ScalarType.Float64).t()) + (b is null ? 0 : b.abs().to(ScalarType.Float64)) + 1e-30;
                // Within one bfloat16 rounding (2^-8 relative) plus float32 summation error.
                var allowed = exact.abs() * Math.Pow(2, -8) + scale * 1e-5;
                var diff = (actual.to(ScalarType.Float64) - exact).abs();
                Assert.True((diff <= allowed).all().item<bool>(), $"rows {rows}: max diff {diff.max().item<double>()}");
                var torchResult = nn.functional.linear(x, w, b);
                // Against torch: at most one bfloat16 step apart (they may round sums on either side).
                var step = torchResult.to(ScalarType.Float64).abs() * Math.Pow(2, -7) + scale * 1e-5;
                Assert.True(((actual.to(ScalarType.Float64) - torchResult.to(ScalarType.Float64)).abs() <= step).all().item<bool>());
            }
        }
    }

    [Fact]
    public void RowsDoNotDependOnTheirNeighboursOrTheChunks()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var g = new Generator(3);
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            var w = randn(2051, 333, generator: g).to(dtype);
            var x = randn(Gemv.MaxRows, 333, generator: g).to(dtype);
            var all = Run(x, w, null);
            for (int r = 0; r < Gemv.MaxRows; r++)
                Assert.True(Run(x[r].unsqueeze(0), w, null).eq(all[r].unsqueeze(0)).all().item<bool>());
            for (int rows = 2; rows <= Gemv.MaxRows; rows++)
                Assert.True(Run(x[..rows], w, null).eq(all[..rows]).all().item<bool>());
            foreach (int chunks in new[] { 1, 2, 3, 7, 64 }) // as with that many threads
                Assert.True(Gemv.Linear(x, w, null, chunks).eq(all).all().item<bool>());
        }
    }

    [Fact]
    public void SmallBatchDecodingRunsLibtorchOnOneThreadAndRestoresIt()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int threads = get_num_threads();
        var w = randn(1003, 257);
        var x = randn(5, 257);
        var outside = Gemv.Linear(x, w, null);
        using (Gemv.SmallBatchDecoding())
        {
            using (Gemv.SmallBatchDecoding()) Assert.Equal(1, get_num_threads()); // nested
            Assert.Equal(1, get_num_threads());
            // The kernel keeps every thread (its own workers) and gives the same results.
            Assert.True(Gemv.Linear(x, w, null, chunks: 8).eq(outside).all().item<bool>());
        }
        Assert.Equal(threads, get_num_threads());
    }

    [Fact]
    public void WorkersRunEveryChunkOnceUnderConcurrentCallers()
    {
        var workers = SpinWorkers.Shared(3);
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        var callers = Enumerable.Range(0, 4).Select(c => new Thread(() =>
        {
            for (int call = 0; call < 300; call++)
            {
                int chunks = 1 + (call * 7 + c) % 23;
                var hits = new int[chunks];
                workers.For(chunks, i => Interlocked.Increment(ref hits[i]));
                if (hits.Any(h => h != 1)) failures.Add($"caller {c} call {call}: {string.Join(",", hits)}");
                if (call % 50 == 0) Thread.Sleep(5); // let the workers fall asleep now and then
            }
        })).ToArray();
        foreach (var t in callers) t.Start();
        foreach (var t in callers) t.Join();
        Assert.Empty(failures);
    }

    [Fact]
    public void KeepsLeadingDimensions()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var w = randn(10, 40);
        var x = randn(2, 1, 40);
        var y = Run(x, w, null);
        Assert.Equal(new long[] { 2, 1, 10 }, y.shape);
        Assert.True(y.allclose(nn.functional.linear(x, w), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void AppliesOnlyWithoutAutogradToFewContiguousRowsOfOneDtype()
    {
        using var scope = NewDisposeScope();
        var w = randn(8, 16);
        var x = randn(1, 16);
        Assert.False(Gemv.Applies(x, w, null)); // grad enabled
        using var noGrad = no_grad();
        Assert.True(Gemv.Applies(x, w, null));
        Assert.True(Gemv.Applies(randn(2, 2, 16), w, null));
        Assert.True(Gemv.Applies(randn(4, 16), w, null));
        Assert.True(Gemv.Applies(randn(Gemv.MaxRows, 16), w, null));
        Assert.False(Gemv.Applies(randn(13, 16).to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), null));
        Assert.True(Gemv.Applies(randn(12, 16).to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), null));
        Assert.False(Gemv.Applies(randn(Gemv.MaxRows + 1, 16), w, null));
        Assert.False(Gemv.Applies(randn(16, 2).t(), w, null)); // x not contiguous
        Assert.False(Gemv.Applies(x, randn(16, 8).t(), null)); // weight not contiguous
        Assert.False(Gemv.Applies(x.to(ScalarType.BFloat16), w, null));
        Assert.False(Gemv.Applies(x.to(ScalarType.Float64), w.to(ScalarType.Float64), null));
        Assert.False(Gemv.Applies(x, w, randn(8).to(ScalarType.BFloat16)));
        Assert.False(Gemv.Applies(randn(1, 15), w, null));
        Assert.True(Gemv.Applies(x, w, randn(8)));
        using var inference = inference_mode();
        Assert.True(Gemv.Applies(x, w, null));
    }

    [Fact]
    public void Bf16RoundingMatchesTorch()
    {
        using var scope = NewDisposeScope();
        // Ties (1 + 2^-8 and its neighbours), infinities, NaN, subnormals and random values.
        float[] special = [1f + 1f / 256, 1f + 3f / 256, -(1f + 1f / 256), 1f + 1f / 256 + 1f / 65536, float.PositiveInfinity,
            float.NegativeInfinity, float.NaN, 1e-40f, -1e-40f, float.MaxValue, 0f, -0f, 3.3895314e38f];
        var f = special.Concat((randn(10000) * 100).data<float>().ToArray()).ToArray();
        var expected = tensor(f).to(ScalarType.BFloat16);
        var e = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(expected.bytes).ToArray();
        for (int i = 0; i < f.Length; i++)
            if (float.IsNaN(f[i])) Assert.True(float.IsNaN(Gemv.Bf16ToFloat(Gemv.FloatToBf16(f[i]))));
            else Assert.True(e[i] == Gemv.FloatToBf16(f[i]), $"{f[i]:R}: torch {e[i]:x4}, ours {Gemv.FloatToBf16(f[i]):x4}");
    }

    [Fact]
    public void LiveTensorsDoNotGrow()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var w = randn(300, 100).to(ScalarType.BFloat16);
        var x = randn(1, 100).to(ScalarType.BFloat16);
        using (var warm = NewDisposeScope()) Gemv.Linear(x, w, null);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 20; i++)
        {
            using var inner = NewDisposeScope();
            Gemv.Linear(x, w, null);
        }
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }
}
