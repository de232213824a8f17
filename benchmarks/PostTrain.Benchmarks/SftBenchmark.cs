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
/// --lora-r 0 (a positive rank trains LoRA adapters on every linear layer instead of every weight)
/// --lora-dropout 0.05 --base-dtype f32|bf16 (the frozen base's dtype with LoRA)
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
        if (options.GetInt("vocab", 0) is > 0 and var vocab)
            config = ModelConfig.Create(config.Architecture, vocab, config.HiddenSize, config.IntermediateSize, config.NumHiddenLayers,
                config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim, config.MaxPositionEmbeddings, config.RopeTheta,
                config.RopeScaling, config.RmsNormEps, config.TieWordEmbeddings);
        int loraR = options.GetInt("lora-r", 0);
        double loraDropout = double.Parse(options.Get("lora-dropout", "0.05"), System.Globalization.CultureInfo.InvariantCulture);
        var baseDtype = options.Get("base-dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        using var model = new CausalLM(config, baseDtype);
        model.InitializeWeights(0);
        if (loraR > 0) LoraAdapters.Attach(model, new LoraConfig { R = loraR, Alpha = 2 * loraR, Dropout = loraDropout }, seed: 0);
        model.GradientCheckpointing = checkpointing;
        var random = new Random(1);
        var rows = Enumerable.Range(0, batch).Select(_ => new TokenizedSequence(
            Enumerable.Range(0, tokens).Select(_ => random.Next(config.VocabSize)).ToArray(),
            Enumerable.Range(0, tokens).Select(t => t > 0).ToArray())).ToArray();
        var method = new SftMethod();
        var parameters = model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)).ToList();
        using var optimizer = new AdamW(parameters, weightDecay: 0.0);
        long rssBefore = Machine.PeakRssMb();

        double lossSeconds = 0, backwardSeconds = 0, optimizerSeconds = 0;
        double Step()
        {
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var output = method.Loss(model, rows);
                var loss = output.LossSum / method.CountItems(rows);
                loss.item<float>();
                lossSeconds += sw.Elapsed.TotalSeconds;
                var t = sw.Elapsed.TotalSeconds;
                loss.backward();
                backwardSeconds += sw.Elapsed.TotalSeconds - t;
            }
            var o = sw.Elapsed.TotalSeconds;
            using (var scope = NewDisposeScope())
            {
                nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
                optimizer.Update(1e-5);
                optimizer.ZeroGrad();
            }
            optimizerSeconds += sw.Elapsed.TotalSeconds - o;
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
        // With LoRA the frozen weights need no weight gradient: 4 x instead of 6 x (the adapters' own FLOPs are small).
        double flops = n * ((loraR > 0 ? 4 : 6) * matmulParams + 3 * attention);
        double matmul = Machine.MatmulGflops();
        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["arch"] = config.ModelType,
            ["parameters"] = config.ParameterCount(),
            ["batch"] = batch,
            ["tokens_per_row"] = tokens,
            ["gradient_checkpointing"] = checkpointing,
            ["lora_r"] = loraR,
            ["lora_dropout"] = loraR > 0 ? loraDropout : 0,
            ["base_dtype"] = baseDtype.ToString(),
            ["trainable_parameters"] = parameters.Sum(p => p.parameter.numel()),
            ["threads"] = get_num_threads(),
            ["malloc"] = NativeAllocator.Configure(), // glibc settings in effect (NativeAllocator)
            ["first_step_seconds"] = Math.Round(warmup, 2),
            ["step_seconds_median"] = Math.Round(median, 3),
            ["forward_and_loss_seconds_mean"] = Math.Round(lossSeconds / (steps + 1), 3),
            ["backward_seconds_mean"] = Math.Round(backwardSeconds / (steps + 1), 3),
            ["clip_and_adamw_seconds_mean"] = Math.Round(optimizerSeconds / (steps + 1), 3),
            ["tokens_per_second"] = Math.Round(n / median, 1),
            ["model_gflops_per_second"] = Math.Round(flops / median / 1e9, 1),
            ["machine_matmul_gflops"] = Math.Round(matmul, 1),
            ["mfu_of_measured_matmul"] = Math.Round(flops / median / 1e9 / matmul, 3),
            ["peak_rss_mb_after_model"] = rssBefore,
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }
}
