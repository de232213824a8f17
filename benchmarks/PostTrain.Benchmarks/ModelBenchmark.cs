using System.Runtime.Intrinsics;
using System.Diagnostics;
using System.Text.Json.Nodes;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// Forward and forward+backward of a preset model on one row of N tokens, beside this
/// machine's measured fp32 matmul throughput.
/// Options: --arch qwen2 --preset qwen2.5-0.5b --tokens 512 --batch 1 --steps 3 --dtype f32|bf16
/// </summary>
public sealed class ModelBenchmark : IBenchmark
{
    public string Name => "model";
    public string Description => "forward and forward+backward time and tokens/s of a preset model";

    public JsonObject Run(string[] args)
    {
        var options = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(options.Get("arch", "qwen2"));
        var preset = Preset.Get(options.Get("preset", "qwen2.5-0.5b"), arch);
        int tokens = options.GetInt("tokens", 512), batch = options.GetInt("batch", 1), steps = options.GetInt("steps", 3);
        var dtype = options.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;

        var config = preset.ToConfig();
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        var gen = new Generator(1);
        using var ids = randint(0, config.VocabSize, [batch, tokens + 1], generator: gen);
        using var input = ids.narrow(1, 0, tokens);
        using var labels = ids.narrow(1, 1, tokens);

        double Forward()
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var sw = Stopwatch.StartNew();
            model.Forward(input);
            return sw.Elapsed.TotalSeconds;
        }
        double ForwardBackward()
        {
            using var scope = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var logits = model.Forward(input);
            var loss = nn.functional.cross_entropy(logits.reshape(-1, config.VocabSize).to(ScalarType.Float32), labels.reshape(-1));
            loss.backward();
            double t = sw.Elapsed.TotalSeconds;
            model.zero_grad();
            return t;
        }

        Forward(); // warm-up
        var fwd = Enumerable.Range(0, steps).Select(_ => Forward()).ToArray();
        ForwardBackward();
        var fb = Enumerable.Range(0, steps).Select(_ => ForwardBackward()).ToArray();

        long n = (long)batch * tokens;
        double parameters = config.ParameterCount();
        // Matmul FLOPs per token: 2 x (parameters less the embedding lookup), plus attention
        // scores and weighted sum: 2 x 2 x layers x seq x heads x head_dim (causal halves it).
        double nonEmbedding = parameters - (config.TieWordEmbeddings ? 0 : (double)config.VocabSize * config.HiddenSize);
        double attention = 2.0 * config.NumHiddenLayers * tokens * config.NumAttentionHeads * config.HeadDim;
        double forwardFlops = n * (2 * nonEmbedding + attention);
        double trainFlops = 3 * forwardFlops;
        double matmul = Machine.MatmulGflops(dtype);
        double fbMedian = Stats.Median(fb), fwdMedian = Stats.Median(fwd);
        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["arch"] = config.ModelType,
            ["dtype"] = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            ["parameters"] = (long)parameters,
            ["batch"] = batch,
            ["tokens_per_row"] = tokens,
            ["threads"] = get_num_threads(),
            ["forward_seconds"] = Math.Round(fwdMedian, 3),
            ["forward_tokens_per_second"] = Math.Round(n / fwdMedian, 1),
            ["forward_backward_seconds"] = Math.Round(fbMedian, 3),
            ["forward_backward_tokens_per_second"] = Math.Round(n / fbMedian, 1),
            ["forward_backward_gflops"] = Math.Round(trainFlops / fbMedian / 1e9, 1),
            ["machine_matmul_gflops"] = Math.Round(matmul, 1),
            ["forward_backward_fraction_of_matmul"] = Math.Round(trainFlops / fbMedian / 1e9 / matmul, 3),
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }

}

public static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var s = values.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}

/// <summary>Facts about this machine that benchmarks print beside their figures.</summary>
public static class Machine
{
    /// <summary>Measured matmul throughput: square 2048 products, the best of several runs.</summary>
    public static double MatmulGflops(ScalarType dtype = ScalarType.Float32, int size = 2048, int repeats = 12)
    {
        using var scope = NewDisposeScope();
        var a = randn(size, size).to(dtype);
        var b = randn(size, size).to(dtype);
        a.matmul(b);
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            using var inner = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            a.matmul(b);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * size * size * size / best / 1e9;
    }

    /// <summary>
    /// This machine's float32 multiply-add peak on <paramref name="threads"/> threads, in GFLOPS:
    /// each thread runs twelve independent chains of vector FMAs (the widest the JIT offers),
    /// about 0.2 s; the best of <paramref name="repeats"/> runs. What a compute-bound kernel can
    /// reach at most.
    /// </summary>
    public static double FmaGflops(int threads, int repeats = 3) =>
        Vector512.IsHardwareAccelerated ? FmaGflops<Vector512<float>, Wide>(threads, repeats) : FmaGflops<Vector256<float>, Narrow>(threads, repeats);

    static double FmaGflops<V, O>(int threads, int repeats) where V : struct where O : struct, IFma<V>
    {
        const long iterations = 4_000_000;
        double best = 0;
        for (int r = 0; r < repeats; r++)
        {
            var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => FmaChains<V, O>(iterations / 4))).ToArray();
            foreach (var t in workers) t.Start();
            foreach (var t in workers) t.Join(); // warm-up (JIT, clocks)
            var sw = Stopwatch.StartNew();
            workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => FmaChains<V, O>(iterations))).ToArray();
            foreach (var t in workers) t.Start();
            foreach (var t in workers) t.Join();
            best = Math.Max(best, threads * iterations * 12.0 * O.Width * 2 / sw.Elapsed.TotalSeconds / 1e9);
        }
        return best;
    }

    // Twelve independent chains, so that the multiply-add units, not their latency, set the pace.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    static float FmaChains<V, O>(long iterations) where V : struct where O : struct, IFma<V>
    {
        V m = O.Splat(0.999f), c = O.Splat(1e-4f);
        V a0 = c, a1 = c, a2 = c, a3 = c, a4 = c, a5 = c, a6 = c, a7 = c, a8 = c, a9 = c, a10 = c, a11 = c;
        for (long i = 0; i < iterations; i++)
        {
            a0 = O.Fma(a0, m, c); a1 = O.Fma(a1, m, c); a2 = O.Fma(a2, m, c); a3 = O.Fma(a3, m, c);
            a4 = O.Fma(a4, m, c); a5 = O.Fma(a5, m, c); a6 = O.Fma(a6, m, c); a7 = O.Fma(a7, m, c);
            a8 = O.Fma(a8, m, c); a9 = O.Fma(a9, m, c); a10 = O.Fma(a10, m, c); a11 = O.Fma(a11, m, c);
        }
        return O.Sum(O.Add(O.Add(O.Add(a0, a1), O.Add(a2, a3)), O.Add(O.Add(O.Add(a4, a5), O.Add(a6, a7)), O.Add(O.Add(a8, a9), O.Add(a10, a11)))));
    }

    // The vector width the chains run at: 512 bits where the hardware has it, else 256.
    interface IFma<V> where V : struct
    {
        static abstract int Width { get; }
        static abstract V Splat(float x);
        static abstract V Fma(V a, V b, V c);
        static abstract V Add(V a, V b);
        static abstract float Sum(V v);
    }

    struct Wide : IFma<Vector512<float>>
    {
        public static int Width => 16;
        public static Vector512<float> Splat(float x) => Vector512.Create(x);
        public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
        public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
        public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    }

    struct Narrow : IFma<Vector256<float>>
    {
        public static int Width => 8;
        public static Vector256<float> Splat(float x) => Vector256.Create(x);
        public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
        public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
        public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    }

    /// <summary>CPU seconds this process has used (all threads, user and system): less moved than wall time by other tenants' load.</summary>
    public static double CpuSeconds()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Peak resident memory of this process (VmHWM), in MB; 0 where /proc is absent.</summary>
    public static long PeakRssMb()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return 0;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) / 1024;
    }
}

/// <summary>--key value options for benchmarks.</summary>
public sealed class Options
{
    readonly Dictionary<string, string> values = new();

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"expected --name value, got '{args[i]}'");
            o.values[args[i][2..]] = args[++i];
        }
        return o;
    }

    public string Get(string name, string fallback) => values.GetValueOrDefault(name, fallback);
    public int GetInt(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v) : fallback;

    /// <summary>
    /// A preset's config with --layers (decoder layers) and --vocab (vocabulary size) in place of
    /// its own when given: a smaller model of the preset's width.
    /// </summary>
    public ModelConfig Shape(ModelConfig config)
    {
        int layers = GetInt("layers", config.NumHiddenLayers), vocab = GetInt("vocab", config.VocabSize);
        if (layers == config.NumHiddenLayers && vocab == config.VocabSize) return config;
        return ModelConfig.Create(config.Architecture, vocab, config.HiddenSize, config.IntermediateSize, layers,
            config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.MaxPositionEmbeddings, config.RopeTheta,
            config.RopeScaling, config.RmsNormEps, config.TieWordEmbeddings);
    }
}
