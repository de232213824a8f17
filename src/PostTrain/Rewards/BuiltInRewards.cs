namespace PostTrain.Rewards;

/// <summary>Settings of the built-in rewards (the CLI's --answer-field, --format-pattern, --reward-model).</summary>
public sealed record RewardSettings
{
    /// <summary>The dataset field holding the reference answer (math).</summary>
    public string AnswerField { get; init; } = "answer";
    /// <summary>The regular expression a completion must match in full (format); null for <see cref="FormatReward.DefaultPattern"/>.</summary>
    public string? FormatPattern { get; init; }
    /// <summary>The reward model's directory (model): a ...ForSequenceClassification checkpoint with its tokenizer.</summary>
    public string? RewardModel { get; init; }
}

/// <summary>The reward functions `--reward NAME[,NAME...]` names.</summary>
public static class BuiltInRewards
{
    /// <summary>math: final-answer correctness; format: the completion matches a regex; model: a reward model's score.</summary>
    public static IReadOnlyList<string> Names { get; } = ["math", "format", "model"];

    /// <summary>Creates the named reward. Unknown names and missing settings are <see cref="InputError"/>s.</summary>
    public static IRewardFunction Create(string name, RewardSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return name switch
        {
            "math" => new MathAnswer(settings.AnswerField),
            "format" => new FormatReward(settings.FormatPattern),
            "model" => settings.RewardModel is { Length: > 0 } dir
                ? RewardModel.Load(dir)
                : throw new InputError("--reward model needs --reward-model DIR (a sequence-classification checkpoint with its tokenizer)"),
            _ => throw new InputError($"--reward: unknown reward '{name}' (known: {string.Join(", ", Names)})"),
        };
    }
}
