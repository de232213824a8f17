using PostTrain.Models;

namespace PostTrain.Training;

/// <summary>The dtype of a frozen base model.</summary>
public enum BaseDtype { Float32, BFloat16 }

/// <summary>Learning-rate schedules after warmup.</summary>
public enum LrScheduler { Constant, Linear, Cosine }

/// <summary>
/// Options every trainer shares: the optimiser, schedule, batching, logging and checkpoints.
/// Names follow transformers' TrainingArguments (CLI: kebab-case, e.g. --learning-rate).
/// </summary>
public record TrainingOptions
{
    /// <summary>The model directory to start from (Hugging Face layout).</summary>
    public string? Model { get; init; }
    /// <summary>Training data: a file or a directory of shards.</summary>
    public string? Data { get; init; }
    /// <summary>Evaluation data, scored every --eval-steps and at the end.</summary>
    public string? EvalData { get; init; }
    /// <summary>
    /// lm-eval tasks run on the current model every --eval-steps and at the end: comma-separated
    /// built-in names or task YAML files, each optionally TASK=DATA (the task's --data).
    /// </summary>
    public string? EvalTasks { get; init; }
    /// <summary>The first N documents of each --eval-tasks task (a value below 1: that share).</summary>
    public double? EvalTasksLimit { get; init; }
    /// <summary>Render the --eval-tasks prompts with the model's chat template (as eval's --apply-chat-template).</summary>
    public bool EvalApplyChatTemplate { get; init; }
    /// <summary>The run's directory: metrics, checkpoints, the final model.</summary>
    public string? Output { get; init; }
    public double LearningRate { get; init; } = 2e-5;
    /// <summary>Sequences (or packed rows) per micro-batch.</summary>
    public int BatchSize { get; init; } = 8;
    public int GradientAccumulationSteps { get; init; } = 1;
    /// <summary>The units (sequences, pairs, prompts) the loop puts in a micro-batch: --batch-size, unless a method counts it otherwise.</summary>
    public virtual int UnitsPerMicroBatch => BatchSize;
    public double Epochs { get; init; } = 3;
    /// <summary>When positive, overrides <see cref="Epochs"/>.</summary>
    public int MaxSteps { get; init; } = -1;
    public LrScheduler LrScheduler { get; init; } = LrScheduler.Linear;
    public double WarmupRatio { get; init; }
    /// <summary>When positive, overrides <see cref="WarmupRatio"/>.</summary>
    public int WarmupSteps { get; init; }
    public double WeightDecay { get; init; }
    public double AdamBeta1 { get; init; } = 0.9;
    public double AdamBeta2 { get; init; } = 0.999;
    public double AdamEpsilon { get; init; } = 1e-8;
    /// <summary>Clip the global gradient norm to this; 0 disables clipping.</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    public int LoggingSteps { get; init; } = 10;
    /// <summary>Evaluate every N steps (and at the end) when evaluation data is given; 0: only at the end.</summary>
    public int EvalSteps { get; init; }
    /// <summary>Write checkpoint-STEP every N steps; 0: never (the final model is always saved).</summary>
    public int SaveSteps { get; init; } = 500;
    /// <summary>Keep at most this many checkpoints (the oldest are deleted); 0: keep all.</summary>
    public int SaveTotalLimit { get; init; }
    public long Seed { get; init; } = 42;
    public int MaxLength { get; init; } = 1024;
    public bool GradientCheckpointing { get; init; }

    /// <summary>Train LoRA adapters on a frozen base instead of every weight.</summary>
    public bool Lora { get; init; }
    public int LoraR { get; init; } = 16;
    public double LoraAlpha { get; init; } = 32;
    public double LoraDropout { get; init; } = 0.05;
    /// <summary>"all-linear" or a comma-separated list of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj.</summary>
    public string LoraTargets { get; init; } = "all-linear";
    /// <summary>rsLoRA: scale adapters by alpha / sqrt(r) instead of alpha / r.</summary>
    public bool UseRslora { get; init; }
    /// <summary>Continue training this PEFT adapter directory (implies LoRA, with the adapter's own settings).</summary>
    public string? Adapter { get; init; }
    /// <summary>The frozen base's dtype with LoRA: float32, or bfloat16 to halve its memory.</summary>
    public BaseDtype BaseDtype { get; init; } = BaseDtype.Float32;
    /// <summary>Extra chat-template variables (a JSON object or KEY=JSON,...), as TRL's chat_template_kwargs.</summary>
    public string? ChatTemplateKwargs { get; init; }

    /// <summary>The --chat-template-kwargs variables (empty when not given).</summary>
    public IReadOnlyDictionary<string, object?> TemplateVariables() => Tokenization.ChatTemplateKwargs.Parse(ChatTemplateKwargs, "--chat-template-kwargs");

    /// <summary>
    /// Whether the trainer sets every dropout probability of the model to 0 before training (TRL's
    /// disable_dropout); false here, as TRL's SFT keeps dropout. Methods with that setting
    /// (<c>DpoOptions.DisableDropout</c>, <c>GrpoOptions.DisableDropout</c>) return it.
    /// </summary>
    public virtual bool DropoutDisabled => false;

    /// <summary>Whether this run trains adapters (given --lora or --adapter).</summary>
    public bool UsesLora => Lora || Adapter is not null;

    /// <summary>The adapters to add for a new LoRA run.</summary>
    public LoraConfig LoraConfig() => new()
    {
        R = LoraR,
        Alpha = LoraAlpha,
        Dropout = LoraDropout,
        UseRsLora = UseRslora,
        TargetModules = Models.LoraConfig.ParseTargets(LoraTargets),
        BaseModel = Model is null ? null : Path.GetFullPath(Model),
    };

    /// <summary>A command's run needs --model, --data and --output (from the command line or the YAML file).</summary>
    public void RequirePaths()
    {
        foreach (var (value, option) in new[] { (Model, "model"), (Data, "data"), (Output, "output") })
            if (string.IsNullOrEmpty(value)) throw new InputError($"--{option}: required (on the command line or in the --config file)");
    }

    /// <summary>Checks ranges; a bad value is an error naming the option.</summary>
    public virtual void Validate()
    {
        static void Require(bool ok, string option, string message)
        {
            if (!ok) throw new InputError($"--{option}: {message}");
        }
        Require(LearningRate >= 0, "learning-rate", "must not be negative");
        Require(BatchSize > 0, "batch-size", "must be positive");
        Require(GradientAccumulationSteps > 0, "gradient-accumulation-steps", "must be positive");
        Require(Epochs > 0 || MaxSteps > 0, "epochs", "must be positive (or give --max-steps)");
        Require(WarmupRatio is >= 0 and <= 1, "warmup-ratio", "must be in [0, 1]");
        Require(WarmupSteps >= 0, "warmup-steps", "must not be negative");
        Require(WeightDecay >= 0, "weight-decay", "must not be negative");
        Require(AdamBeta1 is >= 0 and < 1, "adam-beta1", "must be in [0, 1)");
        Require(AdamBeta2 is >= 0 and < 1, "adam-beta2", "must be in [0, 1)");
        Require(AdamEpsilon > 0, "adam-epsilon", "must be positive");
        Require(MaxGradNorm >= 0, "max-grad-norm", "must not be negative");
        Require(LoggingSteps > 0, "logging-steps", "must be positive");
        Require(EvalSteps >= 0, "eval-steps", "must not be negative");
        Require(EvalTasksLimit is null or > 0, "eval-tasks-limit", "must be positive");
        Require(SaveSteps >= 0, "save-steps", "must not be negative");
        Require(SaveTotalLimit >= 0, "save-total-limit", "must not be negative");
        Require(MaxLength > 1, "max-length", "must be at least 2");
        Require(BaseDtype == BaseDtype.Float32 || UsesLora, "base-dtype", "bfloat16 holds a frozen base: it needs --lora (full fine-tuning trains float32 weights)");
        TemplateVariables();
        if (Lora) LoraConfig().Validate();
    }
}
