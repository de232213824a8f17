using PostTrain.Models;

namespace PostTrain.Training;

/// <summary>The loop's settings, shared by every method (declared once here; each method adds its own).</summary>
public static class LoopSettings
{
    public static IEnumerable<Setting<T>> For<T>() where T : TrainingOptions => Widen<TrainingOptions, T>(Loop());

    /// <summary>Settings declared on a base options record, as settings of a derived one.</summary>
    public static IEnumerable<Setting<T>> Widen<TBase, T>(IEnumerable<Setting<TBase>> settings) where T : TBase =>
        settings.Select(s => new Setting<T>
        {
            Name = s.Name, Description = s.Description, Type = s.Type, Choices = s.Choices, Aliases = s.Aliases,
            Get = o => s.Get(o),
            Set = (o, v) => (T)s.Set(o, v)!, // records clone their runtime type: T stays T
        });

    static IEnumerable<Setting<TrainingOptions>> Loop() =>
    [
        S<TrainingOptions>("model", "Model directory to start from (Hugging Face layout)", typeof(string), o => o.Model, (o, v) => o with { Model = (string?)v }),
        S<TrainingOptions>("data", "Training data: .jsonl, .json or .parquet file, or a directory of them", typeof(string), o => o.Data, (o, v) => o with { Data = (string?)v }),
        S<TrainingOptions>("eval-data", "Evaluation data, scored every --eval-steps and at the end", typeof(string), o => o.EvalData, (o, v) => o with { EvalData = (string?)v }),
        S<TrainingOptions>("eval-tasks", "lm-eval tasks scored on the model every --eval-steps and at the end, logged as eval/TASK/METRIC,FILTER: built-in names or task YAML files, comma-separated, each optionally TASK=DATA", typeof(string), o => o.EvalTasks, (o, v) => o with { EvalTasks = (string?)v }),
        S<TrainingOptions>("eval-tasks-limit", "Score the first N documents of each --eval-tasks task", typeof(double?), o => o.EvalTasksLimit, (o, v) => o with { EvalTasksLimit = (double?)v }),
        S<TrainingOptions>("eval-apply-chat-template", "Render the --eval-tasks prompts with the model's chat template, as eval's --apply-chat-template", typeof(bool), o => o.EvalApplyChatTemplate, (o, v) => o with { EvalApplyChatTemplate = (bool)v! }),
        S<TrainingOptions>("output", "Run directory: metrics.jsonl, TensorBoard, checkpoints, the final model", typeof(string), o => o.Output, (o, v) => o with { Output = (string?)v }),
        S<TrainingOptions>("learning-rate", "Peak learning rate", typeof(double), o => o.LearningRate, (o, v) => o with { LearningRate = (double)v! }),
        S<TrainingOptions>("batch-size", "Sequences per micro-batch", typeof(int), o => o.BatchSize, (o, v) => o with { BatchSize = (int)v! }),
        S<TrainingOptions>("gradient-accumulation-steps", "Micro-batches per optimiser step", typeof(int), o => o.GradientAccumulationSteps, (o, v) => o with { GradientAccumulationSteps = (int)v! }),
        S<TrainingOptions>("epochs", "Passes over the training data", typeof(double), o => o.Epochs, (o, v) => o with { Epochs = (double)v! }),
        S<TrainingOptions>("max-steps", "Total optimiser steps (overrides --epochs when positive)", typeof(int), o => o.MaxSteps, (o, v) => o with { MaxSteps = (int)v! }),
        S<TrainingOptions>("lr-scheduler", "Learning-rate schedule after warmup", typeof(LrScheduler), o => o.LrScheduler, (o, v) => o with { LrScheduler = (LrScheduler)v! }, ["constant", "linear", "cosine"]),
        S<TrainingOptions>("warmup-ratio", "Fraction of steps of linear warmup", typeof(double), o => o.WarmupRatio, (o, v) => o with { WarmupRatio = (double)v! }),
        S<TrainingOptions>("warmup-steps", "Steps of linear warmup (overrides --warmup-ratio)", typeof(int), o => o.WarmupSteps, (o, v) => o with { WarmupSteps = (int)v! }),
        S<TrainingOptions>("weight-decay", "AdamW weight decay (not on biases and norms)", typeof(double), o => o.WeightDecay, (o, v) => o with { WeightDecay = (double)v! }),
        S<TrainingOptions>("adam-beta1", "AdamW beta1", typeof(double), o => o.AdamBeta1, (o, v) => o with { AdamBeta1 = (double)v! }),
        S<TrainingOptions>("adam-beta2", "AdamW beta2", typeof(double), o => o.AdamBeta2, (o, v) => o with { AdamBeta2 = (double)v! }),
        S<TrainingOptions>("adam-epsilon", "AdamW epsilon", typeof(double), o => o.AdamEpsilon, (o, v) => o with { AdamEpsilon = (double)v! }),
        S<TrainingOptions>("max-grad-norm", "Clip the gradient norm to this (0: no clipping)", typeof(double), o => o.MaxGradNorm, (o, v) => o with { MaxGradNorm = (double)v! }),
        S<TrainingOptions>("logging-steps", "Log every N steps", typeof(int), o => o.LoggingSteps, (o, v) => o with { LoggingSteps = (int)v! }),
        S<TrainingOptions>("eval-steps", "Evaluate every N steps (0: at the end only)", typeof(int), o => o.EvalSteps, (o, v) => o with { EvalSteps = (int)v! }),
        S<TrainingOptions>("save-steps", "Write a checkpoint every N steps (0: none)", typeof(int), o => o.SaveSteps, (o, v) => o with { SaveSteps = (int)v! }),
        S<TrainingOptions>("save-total-limit", "Keep the last K checkpoints (0: all)", typeof(int), o => o.SaveTotalLimit, (o, v) => o with { SaveTotalLimit = (int)v! }),
        S<TrainingOptions>("seed", "Random seed (data order)", typeof(long), o => o.Seed, (o, v) => o with { Seed = (long)v! }),
        S<TrainingOptions>("max-length", "Truncate sequences to this many tokens (and pack rows of it)", typeof(int), o => o.MaxLength, (o, v) => o with { MaxLength = (int)v! }),
        S<TrainingOptions>("gradient-checkpointing", "Recompute decoder layers in backward to save activation memory", typeof(bool), o => o.GradientCheckpointing, (o, v) => o with { GradientCheckpointing = (bool)v! }),
        S<TrainingOptions>("lora", "Train LoRA adapters on a frozen base; OUTPUT gets a PEFT adapter", typeof(bool), o => o.Lora, (o, v) => o with { Lora = (bool)v! }),
        S<TrainingOptions>("lora-r", "LoRA rank", typeof(int), o => o.LoraR, (o, v) => o with { LoraR = (int)v! }),
        S<TrainingOptions>("lora-alpha", "LoRA alpha: adapters are scaled by alpha / r", typeof(double), o => o.LoraAlpha, (o, v) => o with { LoraAlpha = (double)v! }),
        S<TrainingOptions>("lora-dropout", "Dropout on the adapters' input", typeof(double), o => o.LoraDropout, (o, v) => o with { LoraDropout = (double)v! }),
        S<TrainingOptions>("lora-targets", "Layers that get adapters: all-linear or a list such as q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", typeof(string), o => o.LoraTargets, (o, v) => o with { LoraTargets = (string?)v ?? "all-linear" }),
        S<TrainingOptions>("use-rslora", "rsLoRA: scale adapters by alpha / sqrt(r)", typeof(bool), o => o.UseRslora, (o, v) => o with { UseRslora = (bool)v! }),
        S<TrainingOptions>("adapter", "Continue training this PEFT LoRA adapter directory (its r, alpha and targets)", typeof(string), o => o.Adapter, (o, v) => o with { Adapter = (string?)v }),
        S<TrainingOptions>("base-dtype", "dtype of the frozen base with LoRA (bfloat16 halves its memory)", typeof(BaseDtype), o => o.BaseDtype, (o, v) => o with { BaseDtype = (BaseDtype)v! }, ["float32", "bfloat16"], Dtypes.Aliases),
        S<TrainingOptions>("chat-template-kwargs", "Extra chat-template variables for every conversation, as a JSON object or KEY=JSON,... (e.g. enable_thinking=false for Qwen3)", typeof(string), o => o.ChatTemplateKwargs, (o, v) => o with { ChatTemplateKwargs = (string?)v }),
    ];

    public static Setting<T> S<T>(string name, string description, Type type, Func<T, object?> get, Func<T, object?, T> set, string[]? choices = null, IReadOnlyDictionary<string, string>? aliases = null) =>
        new() { Name = name, Description = description, Type = type, Get = get, Set = set, Choices = choices, Aliases = aliases };
}
