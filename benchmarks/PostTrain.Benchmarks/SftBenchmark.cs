using System.Diagnostics;
using System.Text.Json.Nodes;
using PostTrain.Models;
using PostTrain.Trainers;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// SFT training steps (forward, backward, clipping, AdamW) of a preset model on rows of N tokens,
/// with tokens/s and model FLOPs utilisation beside this machine's measured fp32 matmul
/// throughput, and the process's peak memory. Run once with and once without
/// --gradient-checkpointing true to compare memory (peak memory is per process).
/// Options: --arch qwen2 --preset qwen2.5-0.5b --tokens 512 --batch 1 --steps 3 --gradient-checkpointing false
/// </summary>
public sealed class SftBenchmark : IBenchmark
{
    public string Name => "sft";
    public string Description => "SFT step time, tokens/s, MFU and peak memory of a preset model";

    public JsonObject Run(string[] args)
    {
        var options = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(options.Get("arch", "qwen2"));
        var preset = Preset.Get(options.Get("preset", "qwen2.5-0.5b"), arch);
        int tokens = options.GetInt("tokens", 512), batch = options.GetInt("batch", 1), steps = options.GetInt("steps", 3);
        bool checkpointing = options.Get("gradient-checkpointing", "false") == "true";

        var config = preset.ToConfig();
        using var model = new CausalLM(config);
        model.InitializeWeights(0);
        model.GradientCheckpointing = checkpointing;
        var random = new Random(1);
        var rows = Enumerable.Range(0, batch).Select(_ => new TokenizedSequence(
            Enumerable.Range(0, tokens).Select(_ => random.Next(config.VocabSize)).ToArray(),
            Enumerable.Range(0, tokens).Select(t => t > 0).ToArray())).ToArray();
        var method = new SftMethod();
        var parameters = model.named_parameters().Select(p => (p.name, p.parameter)).ToList();
        using var optimizer = new AdamW(parameters, weightDecay: 0.0);
        long rssBefore = Machine.PeakRssMb();

        double Step()
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var output = method.Loss(model, rows);
                (output.LossSum / method.CountItems(rows)).backward();
            }
            using (var scope = NewDisposeScope())
            {
                nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
                optimizer.Update(1e-5);
                optimizer.ZeroGrad();
            }
            return sw.Elapsed.TotalSeconds;
        }

        double warmup = Step(); // allocates gradients and optimizer moments
        var times = Enumerable.Range(0, steps).Select(_ => Step()).OrderBy(t => t).ToArray();
        double median = times[times.Length / 2];
        long n = (long)batch * tokens;
        // 6 x parameters x tokens (forward 2, backward 4) for the matmuls of every weight that
        // multiplies (the embedding lookup does not, a tied lm_head does), plus attention:
        // scores and weighted values, 2 x 2 x layers x seq x heads x head_dim per token forward.
        double matmulParams = config.ParameterCount() - (config.TieWordEmbeddings ? 0 : (double)config.VocabSize * config.HiddenSize);
        double attention = 4.0 * config.NumHiddenLayers * tokens * config.NumAttentionHeads * config.HeadDim;
        double flops = n * (6 * matmulParams + 3 * attention);
        double matmul = Machine.MatmulGflops();
        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["arch"] = config.ModelType,
            ["parameters"] = config.ParameterCount(),
            ["batch"] = batch,
            ["tokens_per_row"] = tokens,
            ["gradient_checkpointing"] = checkpointing,
            ["threads"] = get_num_threads(),
            ["first_step_seconds"] = Math.Round(warmup, 2),
            ["step_seconds_median"] = Math.Round(median, 3),
            ["tokens_per_second"] = Math.Round(n / median, 1),
            ["model_gflops_per_second"] = Math.Round(flops / median / 1e9, 1),
            ["machine_matmul_gflops"] = Math.Round(matmul, 1),
            ["mfu_of_measured_matmul"] = Math.Round(flops / median / 1e9 / matmul, 3),
            ["peak_rss_mb_after_model"] = rssBefore,
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }
}
