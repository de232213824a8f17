using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// Options of reward-model training, beyond the loop's (TRL's RewardConfig names and defaults:
/// learning rate 1e-4, max_length 1024, center_rewards_coefficient None, disable_dropout true).
/// </summary>
public sealed record RewardOptions : TrainingOptions
{
    public RewardOptions() => LearningRate = 1e-4;

    /// <summary>
    /// When set, adds this times mean((r_chosen + r_rejected)²) to the loss, pulling the rewards
    /// towards mean zero (TRL's center_rewards_coefficient; https://huggingface.co/papers/2312.09244 Eq. 2, 0.01 recommended).
    /// </summary>
    public double? CenterRewardsCoefficient { get; init; }
    /// <summary>Set every dropout probability (LoRA's) to 0: TRL's RewardConfig.disable_dropout, true by default.</summary>
    public bool DisableDropout { get; init; } = true;
    /// <summary>Drop invalid records (and say how many) instead of failing.</summary>
    public bool SkipInvalid { get; init; }

    public override bool DropoutDisabled => DisableDropout;

    public override void Validate()
    {
        base.Validate();
        if (CenterRewardsCoefficient is { } c && !(c >= 0 && double.IsFinite(c)))
            throw new InputError($"--center-rewards-coefficient: must be a non-negative number, got {c}");
        if (EvalTasks is not null)
            throw new InputError("--eval-tasks: a reward model has no language-model head to run lm-eval tasks with; give preference pairs as --eval-data");
        if (Adapter is not null)
            throw new InputError("--adapter: reward does not continue an adapter; merge it into its base (posttrain merge) and give that as --model, with --lora for new adapters");
    }

    static Setting<RewardOptions> Described(Setting<RewardOptions> s, string description) => new()
    {
        Name = s.Name, Description = description, Type = s.Type, Choices = s.Choices, Aliases = s.Aliases, Get = s.Get, Set = s.Set,
    };

    /// <summary>Every setting of this method: the loop's (less lm-eval tasks and --adapter) and its own, declared once.</summary>
    public static readonly SettingTable<RewardOptions> Settings = new(
    [
        .. LoopSettings.For<RewardOptions>().Where(s => s.Name is not ("eval-tasks" or "eval-tasks-limit" or "eval-apply-chat-template" or "adapter"))
            .Select(s => s.Name switch
            {
                "batch-size" => Described(s, "Preference pairs per micro-batch (each is two sequences)"),
                "max-length" => Described(s, "Drop pairs whose chosen or rejected sequence has more tokens than this (TRL's RewardTrainer filters them; nothing is truncated)"),
                _ => s,
            }),
        LoopSettings.S<RewardOptions>("center-rewards-coefficient", "Add this times mean((r_chosen + r_rejected)^2) to the loss, centring rewards on 0 (TRL recommends 0.01)", typeof(double?), o => o.CenterRewardsCoefficient, (o, v) => o with { CenterRewardsCoefficient = (double?)v }),
        LoopSettings.S<RewardOptions>("disable-dropout", "Set every dropout probability (LoRA's) to 0, as TRL's disable_dropout (--disable-dropout false keeps dropout)", typeof(bool), o => o.DisableDropout, (o, v) => o with { DisableDropout = (bool)v! }),
        LoopSettings.S<RewardOptions>("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
    ]);
}
