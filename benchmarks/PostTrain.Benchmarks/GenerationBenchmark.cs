using System.Diagnostics;
using System.Text.Json.Nodes;
using PostTrain.Generation;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// KV-cache decoding of a preset model (random weights): decode tokens/s at batch 1 and at a
/// larger batch, prefill tokens/s, beside this machine's memory-bandwidth bound for batch-1
/// decoding (every weight is read once per step: weight bytes / measured copy bandwidth) and
/// the arithmetic bound of batch decoding (two FLOPs per weight per token at the measured
/// float32 multiply-add peak).
/// Options: --arch qwen2 --preset qwen2.5-0.5b --prompt 64 --new 32 --batch 16 --prefill 512
/// --repeats 2 --dtype f32|bf16 --threads N; diagnostics: --profile ROWS (where a decode step's
/// time goes) and --micro 1 (linear layers of growing row counts).
/// The bound is STREAM's convention: copy bandwidth counts bytes read plus bytes written; the
/// read-only bandwidth (a sum) is printed beside it.
/// </summary>
public sealed class GenerationBenchmark : IBenchmark
{
    public string Name => "generate";
    public string Description => "KV-cache decode tokens/s (batch 1 and 16) and prefill tokens/s vs the memory-bandwidth bound";

    public JsonObject Run(string[] args)
    {
        var options = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(options.Get("arch", "qwen2"));
        var preset = Preset.Get(options.Get("preset", "qwen2.5-0.5b"), arch);
        int promptLen = options.GetInt("prompt", 64), newTokens = options.GetInt("new", 32);
        int batch = options.GetInt("batch", 16), prefillLen = options.GetInt("prefill", 512), repeats = options.GetInt("repeats", 2);
        var dtype = options.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;

        if (options.Get("threads", "") is { Length: > 0 } t) set_num_threads(int.Parse(t));
        if (options.Get("micro", "0") == "1") return Micro();
        var config = preset.ToConfig();
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        var engine = new GenerationEngine(model);
        var random = new Random(1);
        int[][] Prompts(int rows, int length) => Enumerable.Range(0, rows)
            .Select(_ => Enumerable.Range(0, length).Select(_ => random.Next(config.VocabSize)).ToArray()).ToArray();

        // Greedy, no eos: every sequence decodes exactly newTokens tokens.
        var decodeOptions = new SamplingOptions { Temperature = double.Parse(options.Get("temperature", "0"), System.Globalization.CultureInfo.InvariantCulture), MaxNewTokens = newTokens, EosTokenIds = [], BatchSize = Math.Max(batch, 1) };
        (double TokensPerSecond, double PrefillTokensPerSecond) Decode(int rows, int length, int maxNew, int runs)
        {
            double best = 0, bestPrefill = 0;
            for (int r = 0; r < runs; r++)
            {
                engine.Generate(Prompts(rows, length), decodeOptions with { MaxNewTokens = maxNew });
                var s = engine.LastStats;
                best = Math.Max(best, s.DecodeRowTokens / s.DecodeSeconds);
                bestPrefill = Math.Max(bestPrefill, s.PrefillTokens / s.PrefillSeconds);
            }
            return (best, bestPrefill);
        }

        engine.Generate(Prompts(1, 8), decodeOptions with { MaxNewTokens = 4 }); // warm-up
        if (options.Get("profile", "0") != "0") return Profile(model, Prompts(int.Parse(options.Get("profile", "1")), promptLen), newTokens);

        long weightBytes = config.ParameterCount() * (dtype == ScalarType.Float32 ? 4 : 2);
        // A decode step reads every weight once; the embedding lookup reads one row of an untied
        // embedding matrix (a tied one is read whole as the output projection).
        if (!config.TieWordEmbeddings) weightBytes -= (long)config.VocabSize * config.HiddenSize * (dtype == ScalarType.Float32 ? 4 : 2);
        // This machine's memory bandwidth moves by a factor of two within minutes (other tenants
        // of the host), so each batch-1 run is set against a bandwidth measured just before it,
        // and the medians are reported.
        var batch1 = new List<(double TokensPerSecond, double Bandwidth, double Read)>();
        for (int r = 0; r < Math.Max(repeats, 3); r++)
        {
            double copy = CopyBandwidth(repeats: 3), sum = ReadBandwidth(repeats: 3);
            batch1.Add((Decode(1, promptLen, newTokens, 1).TokensPerSecond, copy, sum));
        }
        var (decodeB, _) = Decode(batch, promptLen, newTokens, repeats);
        // Batch decoding is bound by arithmetic: two FLOPs per weight per token, at this
        // machine's float32 multiply-add peak (bf16 products with AVX-512 BF16 can exceed it).
        double fma = Machine.FmaGflops(get_num_threads()) * 1e9;
        double flopsPerToken = 2.0 * weightBytes / (dtype == ScalarType.Float32 ? 4 : 2);
        var (_, prefill) = Decode(1, prefillLen, 1, repeats);
        double decode1 = Stats.Median(batch1.Select(b => b.TokensPerSecond));
        double bandwidth = Stats.Median(batch1.Select(b => b.Bandwidth)), read = Stats.Median(batch1.Select(b => b.Read));
        double bound = bandwidth / weightBytes;
        double fraction = Stats.Median(batch1.Select(b => b.TokensPerSecond / (b.Bandwidth / weightBytes)));
        double readFraction = Stats.Median(batch1.Select(b => b.TokensPerSecond / (b.Read / weightBytes)));
        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["arch"] = config.ModelType,
            ["dtype"] = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            ["parameters"] = config.ParameterCount(),
            ["threads"] = get_num_threads(),
            ["prompt_tokens"] = promptLen,
            ["new_tokens"] = newTokens,
            ["decode_batch1_tokens_per_second"] = Math.Round(decode1, 2),
            [$"decode_batch{batch}_tokens_per_second"] = Math.Round(decodeB, 2),
            [$"batch{batch}_speedup_over_batch1"] = Math.Round(decodeB / decode1, 2),
            ["machine_fma_gflops"] = Math.Round(fma / 1e9, 1),
            ["arithmetic_bound_tokens_per_second"] = Math.Round(fma / flopsPerToken, 1),
            [$"decode_batch{batch}_fraction_of_arithmetic_bound"] = Math.Round(decodeB / (fma / flopsPerToken), 3),
            ["prefill_tokens"] = prefillLen,
            ["prefill_tokens_per_second"] = Math.Round(prefill, 1),
            ["weight_bytes_per_decode_step"] = weightBytes,
            ["machine_copy_bandwidth_gb_per_second"] = Math.Round(bandwidth / 1e9, 2),
            ["bandwidth_bound_batch1_tokens_per_second"] = Math.Round(bound, 2),
            ["decode_batch1_fraction_of_bound"] = Math.Round(fraction, 3),
            ["decode_batch1_runs"] = new JsonArray(batch1.Select(b => (JsonNode)$"{b.TokensPerSecond:F2} tok/s at {b.Bandwidth / 1e9:F1} GB/s copy, {b.Read / 1e9:F1} GB/s read").ToArray()),
            ["machine_read_bandwidth_gb_per_second"] = Math.Round(read / 1e9, 2),
            ["read_bound_batch1_tokens_per_second"] = Math.Round(read / weightBytes, 2),
            ["decode_batch1_fraction_of_read_bound"] = Math.Round(readFraction, 3),
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }

    // Where a batch-1 decode step's time goes: the whole step, the output projection alone, and
    // the decoder layers' matmuls alone (the same weights, as bare GEMVs).
    static JsonObject Profile(CausalLM model, int[][] prompts, int steps)
    {
        int rows = prompts.Length;
        var prompt = prompts[0];
        double bw = CopyBandwidth(); // with every thread, before decoding's single-threaded libtorch
        using var small = model.DecodesWithGemv(rows) ? Gemv.SmallBatchDecoding() : null; // as the engine decodes
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var c = model.Config;
        using var cache = new KvCache(c, rows, prompt.Length + steps + 1, model.DType);
        model.ForwardHidden(tensor(prompts.SelectMany(p => p.Select(x => (long)x)).ToArray(), [rows, prompt.Length]), null, null, cache);
        var token = full([rows, 1], 5L);
        double Time(Action a)
        {
            double best = double.MaxValue;
            for (int i = 0; i < steps; i++)
            {
                using var inner = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                a();
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            return best;
        }
        long pos = prompt.Length;
        double step = Time(() =>
        {
            var h = model.ForwardHidden(token, null, full([rows, 1], pos++), cache);
            model.Logits(h.select(1, 0)).argmax(-1).data<long>().ToArray();
        });
        double noCache = Time(() => model.ForwardHidden(token));
        var layer0 = model.Model.Layers[0];
        var hx = randn(rows, 1, c.HiddenSize).to(model.DType);
        var (cos1, sin1) = (ones(rows, 1, 1, c.HeadDim).to(model.DType), zeros(rows, 1, 1, c.HeadDim).to(model.DType));
        double oneLayer = Time(() => layer0.Forward(hx, cos1, sin1, null));
        var x = randn(rows, c.HiddenSize).to(model.DType);
        double head = Time(() => model.Logits(x));
        // The decoder layers' projections as the model runs them (the Gemv kernel for few rows).
        var projections = model.modules().OfType<Projection>().ToArray();
        var weights = projections.Select(p => (Tensor)p.Weight).ToArray();
        var inputs = projections.Select(p => randn(rows, p.InFeatures).to(model.DType)).ToArray();
        double layers = Time(() =>
        {
            for (int i = 0; i < projections.Length; i++) projections[i].forward(inputs[i]);
        });
        long headBytes = model.OutputWeight.numel() * model.OutputWeight.ElementSize;
        long layerBytes = weights.Sum(w => w.numel() * w.ElementSize);
        return new JsonObject
        {
            ["decode_step_seconds"] = Math.Round(step, 4),
            ["output_projection_seconds"] = Math.Round(head, 4),
            ["output_projection_bound_seconds"] = Math.Round(headBytes / bw, 4),
            ["layer_matmuls_seconds"] = Math.Round(layers, 4),
            ["layer_matmuls_bound_seconds"] = Math.Round(layerBytes / bw, 4),
            ["other_seconds"] = Math.Round(step - head - layers, 4),
            ["forward_one_token_no_cache_seconds"] = Math.Round(noCache, 4),
            ["one_layer_no_cache_seconds"] = Math.Round(oneLayer, 4),
        };
    }

    static JsonObject Micro()
    {
        using var scope = NewDisposeScope();
        var o = new JsonObject();
        var w = randn(4864, 896);
        var wt = w.t().contiguous();
        foreach (int m in new[] { 1, 2, 4, 8, 12, 16, 24, 32, 48, 64 })
        {
            var x = randn(m, 896);
            double T(Func<Tensor> f)
            {
                f();
                double best = double.MaxValue;
                for (int i = 0; i < 30; i++)
                {
                    using var inner = NewDisposeScope();
                    var sw = Stopwatch.StartNew();
                    f();
                    best = Math.Min(best, sw.Elapsed.TotalSeconds);
                }
                return Math.Round(best * 1e3, 3);
            }
            o[$"m{m}"] = $"linear {T(() => nn.functional.linear(x, w))} | w@xT {T(() => w.matmul(x.t()))} | x@wt {T(() => x.matmul(wt))} | down {T(() => nn.functional.linear(randn(m, 4864), wt))}";
        }
        // The decoder's projections as decoding runs them (the Gemv kernel inside a small-batch
        // decoding scope for rows up to its limit, libtorch beyond), f32 and bf16, beside
        // libtorch's linear; the MLP's up (896 -> 4864) and down (4864 -> 896) shapes.
        using (no_grad())
        {
            foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
                foreach (var (inF, outF, shape) in new[] { (896, 4864, "up"), (4864, 896, "down") })
                {
                    // Eight layers' worth of weights, used in turn, so that none is in cache.
                    var projs = Enumerable.Range(0, 8).Select(_ => new Projection(inF, outF, false, dtype)).ToArray();
                    foreach (var p in projs) p.Weight.normal_();
                    foreach (int m in new[] { 1, 2, 3, 4, 8, 16, 32 })
                    {
                        var x = randn(m, inF).to(dtype);
                        double Time(Action<int> call)
                        {
                            for (int i = 0; i < 16; i++) { using var inner = NewDisposeScope(); call(i); }
                            double best = double.MaxValue;
                            for (int i = 0; i < 40; i++)
                            {
                                using var inner = NewDisposeScope();
                                var sw = Stopwatch.StartNew();
                                call(i);
                                best = Math.Min(best, sw.Elapsed.TotalSeconds);
                            }
                            return best;
                        }
                        double kernel;
                        // As the engine runs them: in a small-batch decoding scope where the kernel takes the rows.
                        using (m <= Gemv.RowLimit(dtype) ? Gemv.SmallBatchDecoding() : null) kernel = Time(i => projs[i % 8].forward(x));
                        double baseline = Time(i => nn.functional.linear(x, projs[i % 8].Weight));
                        double bytes = (double)inF * outF * (dtype == ScalarType.Float32 ? 4 : 2), flops = 2.0 * inF * outF * m;
                        string Figures(double t) => $"{Math.Round(t * 1e3, 3)} ms ({Math.Round(bytes / t / 1e9, 1)} GB/s, {Math.Round(flops / t / 1e9, 1)} GFLOPS)";
                        o[$"projection_{shape}_{(dtype == ScalarType.Float32 ? "f32" : "bf16")}_m{m}"] = $"{Figures(kernel)} | linear {Figures(baseline)}";
                    }
                    foreach (var p in projs) p.Dispose();
                }
        }
        using (no_grad())
        {
            // The fixed cost of one call: a projection too small to take measurable time otherwise.
            foreach (var (inF, outF) in new[] { (64, 64), (896, 128), (896, 896) })
            {
                var small = new Projection(inF, outF, false, ScalarType.BFloat16);
                var x = randn(1, inF).to(ScalarType.BFloat16);
                for (int i = 0; i < 200; i++) small.forward(x);
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < 1000; i++) { using var inner = NewDisposeScope(); small.forward(x); }
                o[$"call_{inF}x{outF}_bf16_us"] = Math.Round(sw.Elapsed.TotalSeconds * 1e3, 2);
                sw.Restart();
                for (int i = 0; i < 1000; i++) { using var inner = NewDisposeScope(); empty(1, outF, dtype: ScalarType.BFloat16); }
                o[$"empty_{outF}_us"] = Math.Round(sw.Elapsed.TotalSeconds * 1e3, 2);
            }
        }
        o["weight_read_bound_ms"] = Math.Round(4864.0 * 896 * 4 / CopyBandwidth() * 1e3, 3);
        return o;
    }

    /// <summary>Read-only bandwidth (what a GEMV needs): a sum over 512 MB, the best of several.</summary>
    public static double ReadBandwidth(long bytes = 512L << 20, int repeats = 5)
    {
        using var scope = NewDisposeScope();
        var src = ones(bytes / 4);
        src.sum();
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            using var inner = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            src.sum();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return bytes / best;
    }

    /// <summary>
    /// Memory bandwidth as a large tensor copy achieves it: bytes read plus bytes written per
    /// second, the best of several copies of 512 MB.
    /// </summary>
    public static double CopyBandwidth(long bytes = 512L << 20, int repeats = 5)
    {
        using var scope = NewDisposeScope();
        var src = ones(bytes / 4);
        var dst = empty(bytes / 4);
        dst.copy_(src);
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            dst.copy_(src);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * bytes / best;
    }
}
