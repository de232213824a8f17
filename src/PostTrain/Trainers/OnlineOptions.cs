using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// What every online method (GRPO, RLOO, PPO) shares beyond the loop: the prompts, the rewards,
/// the reference, how completions are sampled, their log, and the --eval-data prompts.
/// </summary>
public abstract record OnlineOptions : TrainingOptions
{
    /// <summary>Comma-separated reward names (math, format, model).</summary>
    public string Reward { get; init; } = "math";
    /// <summary>Comma-separated weights, one per reward; null: 1 each.</summary>
    public string? RewardWeights { get; init; }
    public string? RewardModel { get; init; }
    public string? FormatPattern { get; init; }
    public string AnswerField { get; init; } = "answer";
    public string PromptField { get; init; } = "prompt";
    /// <summary>
    /// Frozen reference for the KL term; default: the initial model (with --lora the base,
    /// adapters off; with --adapter the base with a frozen copy of that adapter).
    /// </summary>
    public string? RefModel { get; init; }
    public int MaxCompletionLength { get; init; } = 256;
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    /// <summary>Append prompts, completions and rewards to OUTPUT/completions.jsonl every N steps (0: never).</summary>
    public int LogCompletionsSteps { get; init; } = 10;
    /// <summary>Sampling temperature for the --eval-data prompts (0: greedy).</summary>
    public double EvalTemperature { get; init; }
    /// <summary>Completions per --eval-data prompt.</summary>
    public int EvalNumGenerations { get; init; } = 1;
    public bool SkipInvalid { get; init; }
    /// <summary>An OpenAI-compatible server (vLLM, `posttrain serve`) that samples the rollouts; null: the policy samples them.</summary>
    public string? RolloutServer { get; init; }
    public string? RolloutApiKey { get; init; }
    /// <summary>The base model the server must serve (checked against GET /v1/models; null: the first listed); requests name the published adapter.</summary>
    public string? RolloutModel { get; init; }
    /// <summary>Where adapters are written for the server to load (null: OUTPUT/rollout_adapters).</summary>
    public string? RolloutAdapterDir { get; init; }
    public double RolloutTimeout { get; init; } = 600;
    /// <summary>TRL's vllm_importance_sampling_correction: weight the loss by exp(trainer − server log-probability) (remote rollouts only).</summary>
    public bool VllmImportanceSamplingCorrection { get; init; } = true;
    public ImportanceSamplingMode VllmImportanceSamplingMode { get; init; } = ImportanceSamplingMode.SequenceMask;
    public double VllmImportanceSamplingClipMax { get; init; } = 3.0;
    public double? VllmImportanceSamplingClipMin { get; init; }

    /// <summary>The correction remote rollouts apply, or null (local rollouts, or the correction off).</summary>
    public ImportanceSampling? ImportanceSampling => RolloutServer is not null && VllmImportanceSamplingCorrection
        ? new ImportanceSampling(VllmImportanceSamplingMode, VllmImportanceSamplingClipMin, VllmImportanceSamplingClipMax) : null;

    public override void Validate()
    {
        base.Validate();
        static void Require(bool ok, string option, string message)
        {
            if (!ok) throw new InputError($"--{option}: {message}");
        }
        Require(MaxCompletionLength > 0, "max-completion-length", "must be positive");
        Require(Temperature > 0 && double.IsFinite(Temperature), "temperature", "must be positive (online RL samples)");
        Require(TopP is > 0 and <= 1, "top-p", "must be in (0, 1]");
        Require(TopK >= 0, "top-k", "must be 0 (off) or positive");
        Require(LogCompletionsSteps >= 0, "log-completions-steps", "must not be negative");
        Require(EvalTemperature >= 0 && double.IsFinite(EvalTemperature), "eval-temperature", "must not be negative (0: greedy)");
        Require(EvalNumGenerations >= 1, "eval-num-generations", "must be at least 1");
        Require(RolloutServer is null || UsesLora, "rollout-server",
            "full fine-tuning needs a weight-sync channel to the server, which PostTrain does not have; use --lora (adapters are published with /v1/load_lora_adapter)");
        Require(RolloutTimeout > 0 && double.IsFinite(RolloutTimeout), "rollout-timeout", "must be a positive number of seconds");
        Require(VllmImportanceSamplingClipMax > 0, "vllm-importance-sampling-clip-max", "must be positive");
        Require(VllmImportanceSamplingClipMin is null || VllmImportanceSamplingClipMin < VllmImportanceSamplingClipMax, "vllm-importance-sampling-clip-min",
            $"must be below --vllm-importance-sampling-clip-max ({VllmImportanceSamplingClipMax})");
        Require(EvalNumGenerations == 1 || EvalTemperature > 0, "eval-num-generations", "greedy evaluation (--eval-temperature 0) gives one completion per prompt; sample to get more");
    }

    /// <summary>The loop's settings and the online ones, for a method's table.</summary>
    public static IEnumerable<Setting<T>> SettingsFor<T>() where T : OnlineOptions =>
        [.. LoopSettings.For<T>(), .. LoopSettings.Widen<OnlineOptions, T>(Online())];

    static IEnumerable<Setting<OnlineOptions>> Online() =>
    [
        S("reward", "Reward functions, comma-separated: math (final answer vs the answer field), format (regex), model (a reward model)", typeof(string), o => o.Reward, (o, v) => o with { Reward = (string?)v ?? "math" }),
        S("reward-weights", "Weights of the reward functions, comma-separated (default: 1 each)", typeof(string), o => o.RewardWeights, (o, v) => o with { RewardWeights = (string?)v }),
        S("reward-model", "Sequence-classification checkpoint for --reward model", typeof(string), o => o.RewardModel, (o, v) => o with { RewardModel = (string?)v }),
        S("format-pattern", "Regex a completion must match in full for --reward format (default: <think>...</think> then an answer)", typeof(string), o => o.FormatPattern, (o, v) => o with { FormatPattern = (string?)v }),
        S("answer-field", "Dataset field with the reference answer (--reward math)", typeof(string), o => o.AnswerField, (o, v) => o with { AnswerField = (string?)v ?? "answer" }),
        S("prompt-field", "Dataset field with the prompt (e.g. question for GSM8K)", typeof(string), o => o.PromptField, (o, v) => o with { PromptField = (string?)v ?? "prompt" }),
        S("ref-model", "Frozen reference for the KL term (default: the initial model; with --lora its base, with --adapter its base and that adapter as loaded)", typeof(string), o => o.RefModel, (o, v) => o with { RefModel = (string?)v }),
        S("max-completion-length", "Most tokens per completion", typeof(int), o => o.MaxCompletionLength, (o, v) => o with { MaxCompletionLength = (int)v! }),
        S("temperature", "Sampling temperature (log-probabilities use the same)", typeof(double), o => o.Temperature, (o, v) => o with { Temperature = (double)v! }),
        S("top-p", "Nucleus sampling", typeof(double), o => o.TopP, (o, v) => o with { TopP = (double)v! }),
        S("top-k", "Top-k sampling (0: off)", typeof(int), o => o.TopK, (o, v) => o with { TopK = (int)v! }),
        S("log-completions-steps", "Append sampled prompts, completions and rewards to OUTPUT/completions.jsonl every N steps (0: never)", typeof(int), o => o.LogCompletionsSteps, (o, v) => o with { LogCompletionsSteps = (int)v! }),
        S("eval-temperature", "Sampling temperature for the --eval-data prompts (0: greedy)", typeof(double), o => o.EvalTemperature, (o, v) => o with { EvalTemperature = (double)v! }),
        S("eval-num-generations", "Completions per --eval-data prompt", typeof(int), o => o.EvalNumGenerations, (o, v) => o with { EvalNumGenerations = (int)v! }),
        S("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
        S("rollout-server", "Sample rollouts on this OpenAI-compatible server (vLLM, posttrain serve), e.g. http://127.0.0.1:8000; needs --lora, whose adapter is published to it", typeof(string), o => o.RolloutServer, (o, v) => o with { RolloutServer = (string?)v }),
        S("rollout-api-key", "Bearer token for --rollout-server", typeof(string), o => o.RolloutApiKey, (o, v) => o with { RolloutApiKey = (string?)v }),
        S("rollout-model", "The base model --rollout-server must serve, checked before the first rollout (default: the first of /v1/models); requests name the published adapter", typeof(string), o => o.RolloutModel, (o, v) => o with { RolloutModel = (string?)v }),
        S("rollout-adapter-dir", "Where the adapter is written (step-N) for --rollout-server to load; a path the server can read (default: OUTPUT/rollout_adapters)", typeof(string), o => o.RolloutAdapterDir, (o, v) => o with { RolloutAdapterDir = (string?)v }),
        S("rollout-timeout", "Seconds one request to --rollout-server may take", typeof(double), o => o.RolloutTimeout, (o, v) => o with { RolloutTimeout = (double)v! }),
        S("vllm-importance-sampling-correction", "With --rollout-server, weight the loss by exp(trainer - server log-probability), as TRL with vLLM", typeof(bool), o => o.VllmImportanceSamplingCorrection, (o, v) => o with { VllmImportanceSamplingCorrection = (bool)v! }),
        S("vllm-importance-sampling-mode", "Per token or per completion; clamp (truncate) or zero (mask) ratios outside the bounds", typeof(ImportanceSamplingMode), o => o.VllmImportanceSamplingMode, (o, v) => o with { VllmImportanceSamplingMode = (ImportanceSamplingMode)v! },
            ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"]),
        S("vllm-importance-sampling-clip-max", "Upper bound of the importance-sampling ratio", typeof(double), o => o.VllmImportanceSamplingClipMax, (o, v) => o with { VllmImportanceSamplingClipMax = (double)v! }),
        S("vllm-importance-sampling-clip-min", "Lower bound of the importance-sampling ratio (default: none)", typeof(double?), o => o.VllmImportanceSamplingClipMin, (o, v) => o with { VllmImportanceSamplingClipMin = (double?)v }),
        S("vllm-importance-sampling-cap", "Deprecated alias of --vllm-importance-sampling-clip-max (TRL's old name)", typeof(double?), _ => null, (o, v) => v is double cap ? o with { VllmImportanceSamplingClipMax = cap } : o),
    ];

    static Setting<OnlineOptions> S(string name, string description, Type type, Func<OnlineOptions, object?> get, Func<OnlineOptions, object?, OnlineOptions> set,
        string[]? choices = null) =>
        LoopSettings.S(name, description, type, get, set, choices);
}
