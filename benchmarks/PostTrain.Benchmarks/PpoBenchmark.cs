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
/// One PPO rollout and its updates, as `posttrain ppo` runs them (<see cref="PpoMethod"/> on the
/// loop's step: PrepareStep, Loss per micro-batch, backward, clipping, AdamW over the policy and
/// the value model), of a preset model (random weights) with a value model of the same shape (the
/// policy's decoder and a fresh head, as PPO makes it without --value-model), split into sampling
/// (one completion per prompt), scoring (rewards; the policy's and the reference's
/// log-probabilities; the value model's values; GAE) and optimisation (each update: forward and
/// backward of policy and value model, clipping, AdamW of each). The value model's forward and
/// backward in the update are then measured alone on the same rows, and the policy's likewise.
/// Options: --arch qwen2 --preset qwen2.5-0.5b --prompts 16 --completion 128 --prompt 64
/// --micro-batch 8 (prompts, so completions, per micro-batch) --kl-coef 0.05 --num-ppo-epochs 1
/// --num-mini-batches 1 --dtype f32|bf16 (the policy's; the value model is float32, as PPO loads it)
/// --split true|false (the measurements alone) --rollout-only true|false (no updates, no optimiser state)
/// --layers N --vocab N (the preset's width with fewer layers or a smaller vocabulary). Each phase's
/// figures also go to stderr as it ends, so a run stopped later (for memory) still reports them.
/// </summary>
public sealed class PpoBenchmark : IBenchmark
{
    public string Name => "ppo";
    public string Description => "One PPO rollout and its updates split into sampling, scoring (values included) and optimisation";

    public JsonObject Run(string[] args)
    {
        var o = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(o.Get("arch", "qwen2"));
        var preset = Preset.Get(o.Get("preset", "qwen2.5-0.5b"), arch);
        int prompts = o.GetInt("prompts", 16), completion = o.GetInt("completion", 128), promptLength = o.GetInt("prompt", 64);
        int micro = Math.Min(o.GetInt("micro-batch", 8), prompts);
        int epochs = o.GetInt("num-ppo-epochs", 1), miniBatches = o.GetInt("num-mini-batches", 1);
        double klCoef = double.Parse(o.Get("kl-coef", "0.05"), System.Globalization.CultureInfo.InvariantCulture);
        bool split = o.Get("split", "true") == "true", rolloutOnly = o.Get("rollout-only", "false") == "true";
        var dtype = o.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        if (prompts % micro != 0) throw new ArgumentException($"--prompts {prompts} is not a multiple of --micro-batch {micro}");
        if (miniBatches < 1 || miniBatches > prompts) throw new ArgumentException($"--num-mini-batches must be in 1..{prompts}");
        var config = o.Shape(preset.ToConfig());
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        // PPO's default value model: the policy's decoder (same seed, same weights) in float32 and a new head.
        using var value = new SequenceClassifier(config, numLabels: 1, ScalarType.Float32, scoreDtype: ScalarType.Float32);
        value.Decoder.InitializeWeights(0);
        value.InitializeScore(0);
        var options = new PpoOptions
        {
            BatchSize = micro, GradientAccumulationSteps = prompts / micro, MaxCompletionLength = completion, KlCoef = klCoef,
            NumPpoEpochs = epochs, NumMiniBatches = miniBatches, LogCompletionsSteps = 0, MaxSteps = epochs * miniBatches,
        };
        var random = new Random(1);
        var units = Enumerable.Range(0, prompts).Select(i => new PromptUnit(i,
            Enumerable.Range(0, promptLength).Select(_ => random.Next(config.VocabSize)).ToArray(), $"p{i}",
            new PromptExample("bench", $"p{i}", null, null, new JsonObject()))).ToList();
        using var reference = klCoef > 0 ? new ReferenceModel(new CausalLM(config, dtype)) : null;
        // No end-of-sequence ids: every completion runs to --completion tokens.
        var rollouts = new Rollouts(new RewardSet([new GrpoBenchmark.Count("even")]), null, [], reference);
        var method = new PpoMethod(options, rollouts, value, padTokenId: null);
        var batches = Enumerable.Range(0, prompts / micro)
            .Select(b => (IReadOnlyList<PromptUnit>)units.Skip(b * micro).Take(micro).ToArray()).ToList();
        // The loop trains with the model and the extra modules in training mode (the rollout switches to evaluation and back).
        model.train();
        foreach (var (_, module) in method.ExtraModules) module.train();
        double cpu = Machine.CpuSeconds();
        var clock = Stopwatch.StartNew();
        method.PrepareStep(model, 0, batches);
        double rolloutSeconds = clock.Elapsed.TotalSeconds;
        double rolloutCpu = Machine.CpuSeconds() - cpu;
        var rollout = method.StepRollout!;
        var scoring = rollout.ScoringSeconds;
        double sampling = rollout.SamplingSeconds;
        double values = method.LastValueSeconds;
        long completionTokens = (long)prompts * completion;
        var result = new JsonObject
        {
            ["preset"] = preset.Name,
            ["layers"] = config.NumHiddenLayers,
            ["vocab"] = config.VocabSize,
            ["dtype"] = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            ["value_dtype"] = "f32",
            ["kl_coef"] = klCoef,
            ["threads"] = get_num_threads(),
            ["prompts"] = prompts,
            ["generations"] = 1,
            ["prompt_tokens"] = promptLength,
            ["completion_tokens"] = completion,
            ["completions_per_micro_batch"] = micro,
            ["num_ppo_epochs"] = epochs,
            ["num_mini_batches"] = miniBatches,
            ["sampling_seconds"] = Math.Round(sampling, 2),
            ["sampled_tokens_per_second"] = Math.Round(completionTokens / sampling, 1),
            ["scoring_seconds"] = Math.Round(rolloutSeconds - sampling, 2),
            ["scoring"] = new JsonObject
            {
                ["rewards_seconds"] = Math.Round(scoring.Rewards, 3),
                ["policy_logprobs_seconds"] = Math.Round(scoring.PolicyLogProbs, 2),
                ["reference_logprobs_seconds"] = Math.Round(scoring.ReferenceLogProbs, 2),
                ["values_seconds"] = Math.Round(values, 2),
                ["rest_seconds"] = Math.Round(rolloutSeconds - sampling - scoring.Rewards - scoring.PolicyLogProbs - scoring.ReferenceLogProbs - values, 2),
            },
            ["rollout_cpu_seconds"] = Math.Round(rolloutCpu, 1),
        };
        Progress("rollout", result);
        if (rolloutOnly)
        {
            result["peak_rss_mb"] = Machine.PeakRssMb();
            return result;
        }

        // The loop's one AdamW over model and extra modules, as two: AdamW is per parameter, so the
        // update is the same, and the value model's share can be timed. Clipping is over both together.
        using var policyOptimizer = new AdamW(model.named_parameters().Where(p => p.parameter.requires_grad).Select(p => (p.name, p.parameter)));
        using var valueOptimizer = new AdamW(method.ExtraModules.SelectMany(m => m.Module.named_parameters()
            .Where(p => p.parameter.requires_grad).Select(p => ($"{m.Name}.{p.name}", p.parameter))));
        var allParameters = policyOptimizer.Parameters.Concat(valueOptimizer.Parameters).ToList();
        var updates = new JsonArray();
        double updateTotal = 0, firstUpdate = 0, firstUpdateCpu = 0;
        for (int step = 0; step < method.StepsPerBatch; step++)
        {
            cpu = Machine.CpuSeconds();
            clock.Restart();
            if (step > 0) method.PrepareStep(model, step, batches); // the next mini-batch of the same rollout
            double prepare = clock.Elapsed.TotalSeconds;
            clock.Restart();
            long items = batches.Sum(method.CountItems);
            foreach (var b in batches)
            {
                using var scope = NewDisposeScope();
                var output = method.Loss(model, b);
                if (items > 0) (output.LossSum / items).backward();
            }
            double forwardBackward = clock.Elapsed.TotalSeconds;
            double clip, policyAdamW, valueAdamW;
            using (NewDisposeScope())
            {
                clock.Restart();
                nn.utils.clip_grad_norm_(allParameters.Where(p => p.grad is not null).ToList(), options.MaxGradNorm);
                clip = clock.Elapsed.TotalSeconds;
                clock.Restart();
                policyOptimizer.Update(options.LearningRate);
                policyAdamW = clock.Elapsed.TotalSeconds;
                clock.Restart();
                valueOptimizer.Update(options.LearningRate);
                valueAdamW = clock.Elapsed.TotalSeconds;
                policyOptimizer.ZeroGrad();
                valueOptimizer.ZeroGrad();
            }
            double update = forwardBackward + clip + policyAdamW + valueAdamW + prepare;
            double updateCpu = Machine.CpuSeconds() - cpu;
            updateTotal += update;
            if (step == 0) (firstUpdate, firstUpdateCpu) = (update, updateCpu);
            var figures = new JsonObject
            {
                ["forward_backward_seconds"] = Math.Round(forwardBackward, 2),
                ["clip_seconds"] = Math.Round(clip, 2),
                ["policy_adamw_seconds"] = Math.Round(policyAdamW, 2),
                ["value_adamw_seconds"] = Math.Round(valueAdamW, 2),
                ["seconds"] = Math.Round(update, 2),
                ["cpu_seconds"] = Math.Round(updateCpu, 1),
                ["peak_rss_mb"] = Machine.PeakRssMb(),
            };
            Progress($"update {step + 1}", figures);
            updates.Add(figures);
        }
        result["first_update_seconds"] = Math.Round(firstUpdate, 2);
        result["first_update_cpu_seconds"] = Math.Round(firstUpdateCpu, 1);
        result["optimisation_seconds"] = Math.Round(updateTotal, 2);
        result["updates"] = updates;
        result["step_seconds"] = Math.Round(rolloutSeconds + firstUpdate, 2);
        result["rollout_and_all_updates_seconds"] = Math.Round(rolloutSeconds + updateTotal, 2);
        result["peak_rss_mb"] = Machine.PeakRssMb();
        if (split)
        {
            result["alone"] = Alone(model, value, rollout, options.Temperature);
            Progress("alone", result["alone"]!.AsObject());
        }
        return result;
    }

    static void Progress(string phase, JsonObject figures) => Console.Error.WriteLine($"{phase}: {figures.ToJsonString()}");

    /// <summary>
    /// The policy's and the value model's forward and backward each by itself over the rollout's
    /// micro-batches (the rows an update scores; no optimiser step): where an update's time goes.
    /// </summary>
    static JsonObject Alone(CausalLM model, SequenceClassifier value, Rollout rollout, double temperature)
    {
        var clock = new Stopwatch();
        double policy = 0, valueSeconds = 0;
        foreach (var part in rollout.Parts)
        {
            using var scope = NewDisposeScope();
            var rows = rollout.Rows(part);
            clock.Restart();
            TokenLogProbs.Score(model, rows, new TokenScoring { Temperature = temperature, Statistics = true }).Logps.sum().backward();
            policy += clock.Elapsed.TotalSeconds;
            clock.Restart();
            // As PpoMethod's values: the hidden state each completion token is predicted from, through the head.
            var hidden = value.Decoder.ForwardHidden(rows.InputIds, positionIds: rows.PositionIds);
            value.Score.forward(hidden[rows.RowIndex, rows.ColIndex]).squeeze(-1).square().sum().backward();
            valueSeconds += clock.Elapsed.TotalSeconds;
        }
        using (NewDisposeScope())
        {
            foreach (var p in model.parameters().Concat(value.Decoder.parameters()).Append(value.Score.weight!)) p.grad?.zero_();
        }
        return new JsonObject
        {
            ["policy_forward_backward_seconds"] = Math.Round(policy, 2),
            ["value_forward_backward_seconds"] = Math.Round(valueSeconds, 2),
            ["peak_rss_mb"] = Machine.PeakRssMb(),
        };
    }
}
