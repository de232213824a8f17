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
    ];

    static Setting<OnlineOptions> S(string name, string description, Type type, Func<OnlineOptions, object?> get, Func<OnlineOptions, object?, OnlineOptions> set) =>
        LoopSettings.S(name, description, type, get, set);
}
