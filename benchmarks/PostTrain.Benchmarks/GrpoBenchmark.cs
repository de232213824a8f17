using System.Diagnostics;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Trainers;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// One GRPO step of a preset model (random weights): sampling G completions for each prompt,
/// scoring them (rewards, and the log-probabilities the loss needs), and the optimisation
/// (forward, backward, AdamW over micro-batches).
/// Options: --arch qwen2 --preset qwen2.5-0.5b --prompts 4 --generations 8 --completion 128
/// --prompt 64 --micro-batch 8 (completions per micro-batch) --beta 0 --lora-r 0 --dtype f32|bf16
/// --layers N --vocab N (the preset's width with fewer layers or a smaller vocabulary)
/// </summary>
public sealed class GrpoBenchmark : IBenchmark
{
    public string Name => "grpo";
    public string Description => "One GRPO step split into sampling, scoring and optimisation";

    internal sealed class Count(string name) : IRewardFunction
    {
        public string Name => name;
        public double?[] Score(IReadOnlyList<RewardSample> samples) =>
            samples.Select(s => (double?)s.CompletionIds.Count(t => t % 2 == 0) / Math.Max(1, s.CompletionIds.Length)).ToArray();
    }

    public JsonObject Run(string[] args)
    {
        var o = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(o.Get("arch", "qwen2"));
        var preset = Preset.Get(o.Get("preset", "qwen2.5-0.5b"), arch);
        int prompts = o.GetInt("prompts", 4), g = o.GetInt("generations", 8), completion = o.GetInt("completion", 128);
        int promptLength = o.GetInt("prompt", 64), micro = o.GetInt("micro-batch", 8), loraR = o.GetInt("lora-r", 0);
        double beta = double.Parse(o.Get("beta", "0"), System.Globalization.CultureInfo.InvariantCulture);
        var dtype = o.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var config = o.Shape(preset.ToConfig());
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        if (loraR > 0) LoraAdapters.Attach(model, new LoraConfig { R = loraR, Alpha = 2 * loraR }, seed: 0);
        var options = new GrpoOptions
        {
            NumGenerations = g, BatchSize = micro, GradientAccumulationSteps = Math.Max(1, prompts * g / micro),
            MaxCompletionLength = completion, Beta = beta, LogCompletionsSteps = 0, MaxSteps = 1,
        };
        var random = new Random(1);
        var units = Enumerable.Range(0, prompts).Select(i => new PromptUnit(i,
            Enumerable.Range(0, promptLength).Select(_ => random.Next(config.VocabSize)).ToArray(), $"p{i}",
            new PromptExample("bench", $"p{i}", null, null, new JsonObject()))).ToList();
        using var reference = beta > 0 ? (loraR > 0 ? ReferenceModel.AdaptersOff() : new ReferenceModel(new CausalLM(config, dtype))) : null;
        // No end-of-sequence ids: every completion runs to --completion tokens.
        var method = new GrpoMethod(options, new RewardSet([new Count("even")]), reference, null, [], null);
        var batches = Enumerable.Range(0, (units.Count + options.UnitsPerMicroBatch - 1) / options.UnitsPerMicroBatch)
            .Select(b => (IReadOnlyList<PromptUnit>)units.Skip(b * options.UnitsPerMicroBatch).Take(options.UnitsPerMicroBatch).ToArray()).ToList();
        using var optimizer = new AdamW(model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)));

        double cpu0 = Machine.CpuSeconds();
        var clock = Stopwatch.StartNew();
        method.PrepareStep(model, 0, batches);
        double prepare = clock.Elapsed.TotalSeconds;
        double cpu1 = Machine.CpuSeconds();
        double sampling = method.LastSamplingSeconds;
        clock.Restart();
        model.train();
        long items = batches.Sum(method.CountItems);
        foreach (var b in batches)
        {
            using var scope = NewDisposeScope();
            (method.Loss(model, b).LossSum / items).backward();
        }
        using (NewDisposeScope())
        {
            nn.utils.clip_grad_norm_(optimizer.Parameters, 1.0);
            optimizer.Update(1e-6);
            optimizer.ZeroGrad();
        }
        double optimisation = clock.Elapsed.TotalSeconds;
        double cpu2 = Machine.CpuSeconds();
        long completionTokens = (long)prompts * g * completion;
        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["layers"] = config.NumHiddenLayers,
            ["vocab"] = config.VocabSize,
            ["dtype"] = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            ["lora_r"] = loraR,
            ["beta"] = beta,
            ["threads"] = get_num_threads(),
            ["prompts"] = prompts,
            ["generations"] = g,
            ["prompt_tokens"] = promptLength,
            ["completion_tokens"] = completion,
            ["completions_per_micro_batch"] = micro,
            ["sampling_seconds"] = Math.Round(sampling, 2),
            ["sampled_tokens_per_second"] = Math.Round(completionTokens / sampling, 1),
            ["scoring_seconds"] = Math.Round(prepare - sampling, 2),
            ["scoring"] = new JsonObject
            {
                ["rewards_seconds"] = Math.Round(method.StepRollout!.ScoringSeconds.Rewards, 3),
                ["policy_logprobs_seconds"] = Math.Round(method.StepRollout.ScoringSeconds.PolicyLogProbs, 2),
                ["reference_logprobs_seconds"] = Math.Round(method.StepRollout.ScoringSeconds.ReferenceLogProbs, 2),
            },
            ["optimisation_seconds"] = Math.Round(optimisation, 2),
            ["step_seconds"] = Math.Round(prepare + optimisation, 2),
            ["rollout_cpu_seconds"] = Math.Round(cpu1 - cpu0, 1),
            ["optimisation_cpu_seconds"] = Math.Round(cpu2 - cpu1, 1),
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }
}
