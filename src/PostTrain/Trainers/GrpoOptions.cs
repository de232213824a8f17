using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>The advantage estimator: GRPO's group-normalised rewards, or RLOO's leave-one-out baseline.</summary>
public enum OnlineAlgorithm { Grpo, Rloo }

/// <summary>How GRPO scales advantages (TRL's scale_rewards).</summary>
public enum ScaleRewards { Group, Batch, None }

/// <summary>How the token losses of a step are averaged (TRL's loss_type).</summary>
public enum GrpoLossType { Grpo, Bnpo, DrGrpo, Dapo }

/// <summary>
/// Online RL options beyond the loop's, named and defaulted as TRL's GRPOConfig / RLOOConfig.
/// --batch-size counts completions per micro-batch and is a multiple of --num-generations.
/// </summary>
public sealed record GrpoOptions : OnlineOptions
{
    public GrpoOptions()
    {
        LearningRate = 1e-6;
        SaveSteps = 100;
    }

    public OnlineAlgorithm Algorithm { get; init; } = OnlineAlgorithm.Grpo;
    /// <summary>Completions sampled per prompt (G); null: TRL's default (GRPO 8, RLOO 2), <see cref="EffectiveNumGenerations"/>.</summary>
    public int? NumGenerations { get; init; }
    /// <summary>Optimisation passes over each batch of completions (μ).</summary>
    public int NumIterations { get; init; } = 1;
    public double Epsilon { get; init; } = 0.2;
    /// <summary>Upper clipping bound 1 + epsilon_high; null: epsilon (symmetric).</summary>
    public double? EpsilonHigh { get; init; }
    /// <summary>KL coefficient (GRPO: k3 per token in the loss; RLOO: sequence KL subtracted from the reward). null: TRL's default (GRPO 0, RLOO 0.05).</summary>
    public double? Beta { get; init; }
    /// <summary>GRPO's token-loss normalisation; null: dapo (TRL's default). RLOO has no loss type (an error with it).</summary>
    public GrpoLossType? LossType { get; init; }
    /// <summary>GRPO's advantage scaling; null: group (TRL's default). RLOO's advantages are leave-one-out (an error with it).</summary>
    public ScaleRewards? ScaleRewards { get; init; }
    /// <summary>RLOO: normalise the step's advantages to mean 0 and std 1 (TRL's RLOOConfig.normalize_advantages, default false).</summary>
    public bool NormalizeAdvantages { get; init; }
    /// <summary>Leave completions cut at --max-completion-length out of the loss.</summary>
    public bool MaskTruncatedCompletions { get; init; }
    /// <summary>
    /// Set every dropout probability of the policy to 0 (LoRA's) so that repeated forwards of the
    /// same completions agree: TRL's GRPOConfig/RLOOConfig.disable_dropout, false by default there
    /// and here (the reference and the sampling-time log-probabilities run without dropout anyway).
    /// </summary>
    public bool DisableDropout { get; init; }

    public override bool DropoutDisabled => DisableDropout;

    public double EffectiveBeta => Beta ?? (Algorithm == OnlineAlgorithm.Rloo ? 0.05 : 0.0);
    /// <summary>G: TRL's GRPOConfig samples 8 per prompt, RLOOConfig 2.</summary>
    public int EffectiveNumGenerations => NumGenerations ?? (Algorithm == OnlineAlgorithm.Rloo ? 2 : 8);
    public GrpoLossType EffectiveLossType => LossType ?? GrpoLossType.Dapo;
    public ScaleRewards EffectiveScaleRewards => ScaleRewards ?? Trainers.ScaleRewards.Group;
    public double EffectiveEpsilonHigh => EpsilonHigh ?? Epsilon;
    /// <summary>Prompts per micro-batch: --batch-size counts completions, G per prompt.</summary>
    public override int UnitsPerMicroBatch => BatchSize / EffectiveNumGenerations;

    public override void Validate()
    {
        base.Validate();
        static void Require(bool ok, string option, string message)
        {
            if (!ok) throw new InputError($"--{option}: {message}");
        }
        int g = EffectiveNumGenerations;
        Require(g >= 2, "num-generations", $"must be at least 2 (advantages compare the samples of a prompt), got {g}");
        Require(BatchSize % g == 0, "batch-size", $"counts completions and must be a multiple of --num-generations ({g}), got {BatchSize}");
        bool rloo = Algorithm == OnlineAlgorithm.Rloo;
        Require(!rloo || LossType is null, "loss-type", "applies to grpo only: RLOO's loss is TRL's RLOOTrainer's, one clipped importance ratio per completion, averaged over the completions");
        Require(!rloo || ScaleRewards is null, "scale-rewards", "applies to grpo only: RLOO's advantages are leave-one-out (--normalize-advantages scales them over the step)");
        Require(rloo || !NormalizeAdvantages, "normalize-advantages", "applies to rloo only (TRL's RLOOConfig); grpo scales advantages with --scale-rewards");
        Require(!rloo || ImportanceSampling is not { SequenceLevel: false }, "vllm-importance-sampling-mode",
            "rloo's loss has one importance ratio per completion: use sequence_mask or sequence_truncate");
        Require(NumIterations >= 1, "num-iterations", "must be at least 1");
        Require(Epsilon is > 0 and < 1, "epsilon", "must be in (0, 1)");
        Require(EffectiveEpsilonHigh > 0, "epsilon-high", "must be positive");
        Require(EffectiveBeta >= 0 && double.IsFinite(EffectiveBeta), "beta", "must not be negative");
        Require(SaveSteps % NumIterations == 0, "save-steps", $"must be a multiple of --num-iterations ({NumIterations}): a checkpoint between the iterations on one batch could not resume it exactly");
    }

    /// <summary>Every setting of this method: the loop's and its own, declared once.</summary>
    public static readonly SettingTable<GrpoOptions> Settings = new(
    [
        .. OnlineOptions.SettingsFor<GrpoOptions>(),
        S("num-generations", "Completions sampled per prompt (G; default: grpo 8, rloo 2, as TRL)", typeof(int?), o => o.NumGenerations, (o, v) => o with { NumGenerations = (int?)v }),
        S("num-iterations", "Optimisation steps on each batch of completions (importance ratios against sampling time)", typeof(int), o => o.NumIterations, (o, v) => o with { NumIterations = (int)v! }),
        S("epsilon", "Lower clipping bound: ratios below 1 - epsilon are clipped", typeof(double), o => o.Epsilon, (o, v) => o with { Epsilon = (double)v! }),
        S("epsilon-high", "Upper clipping bound 1 + epsilon-high (default: epsilon)", typeof(double?), o => o.EpsilonHigh, (o, v) => o with { EpsilonHigh = (double?)v }),
        S("beta", "KL coefficient to the reference (default: grpo 0, no reference loaded; rloo 0.05)", typeof(double?), o => o.Beta, (o, v) => o with { Beta = (double?)v }),
        S("loss-type", "Token-loss normalisation (grpo only; default dapo)", typeof(GrpoLossType?), o => o.LossType, (o, v) => o with { LossType = (GrpoLossType?)v }, ["grpo", "bnpo", "dr_grpo", "dapo"]),
        S("scale-rewards", "Divide advantages by the std of the group, of the batch, or not at all (grpo only; default group)", typeof(ScaleRewards?), o => o.ScaleRewards, (o, v) => o with { ScaleRewards = (ScaleRewards?)v }, ["group", "batch", "none"]),
        S("normalize-advantages", "Normalise the step's advantages to mean 0 and std 1 (rloo only, as TRL's normalize_advantages)", typeof(bool), o => o.NormalizeAdvantages, (o, v) => o with { NormalizeAdvantages = (bool)v! }),
        S("mask-truncated-completions", "Leave completions cut at --max-completion-length out of the loss", typeof(bool), o => o.MaskTruncatedCompletions, (o, v) => o with { MaskTruncatedCompletions = (bool)v! }),
        S("disable-dropout", "Set every dropout probability (LoRA's) to 0, as TRL's disable_dropout (off by default, as in TRL's GRPOConfig and RLOOConfig)", typeof(bool), o => o.DisableDropout, (o, v) => o with { DisableDropout = (bool)v! }),
    ]);

    static Setting<GrpoOptions> S(string name, string description, Type type, Func<GrpoOptions, object?> get, Func<GrpoOptions, object?, GrpoOptions> set, string[]? choices = null) =>
        LoopSettings.S(name, description, type, get, set, choices);
}
