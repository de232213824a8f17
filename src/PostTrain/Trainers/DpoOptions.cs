using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>DPO's loss: TRL's loss_type values that PostTrain implements.</summary>
public enum DpoLossType { Sigmoid, Robust, Ipo, Hinge }

/// <summary>
/// Options of direct preference optimisation, beyond the loop's (TRL's DPOConfig names and
/// defaults: beta 0.1, loss_type sigmoid, label_smoothing 0, learning rate 1e-6, max_length 1024,
/// disable_dropout true).
/// </summary>
public sealed record DpoOptions : TrainingOptions
{
    public DpoOptions() => LearningRate = 1e-6;

    /// <summary>
    /// The frozen reference model's directory; null: the initial policy (a copy of --model; with
    /// --lora its base, adapters off; with --adapter its base with a frozen copy of that adapter).
    /// </summary>
    public string? RefModel { get; init; }
    /// <summary>Deviation from the reference: larger beta, less deviation (IPO's tau).</summary>
    public double Beta { get; init; } = 0.1;
    public DpoLossType LossType { get; init; } = DpoLossType.Sigmoid;
    /// <summary>
    /// Probability that a preference label is flipped, in [0, 0.5): robust DPO only. Current TRL's
    /// sigmoid loss ignores label_smoothing (conservative DPO was removed), so here it is an error
    /// with sigmoid, ipo and hinge rather than a setting with no effect.
    /// </summary>
    public double LabelSmoothing { get; init; }
    /// <summary>When set, adds rpo_alpha times the NLL of the chosen completions (RPO).</summary>
    public double? RpoAlpha { get; init; }
    /// <summary>Score the train and eval sets with the reference once, before training, then free it.</summary>
    public bool PrecomputeRefLogps { get; init; }
    /// <summary>Drop invalid records (and say how many) instead of failing.</summary>
    public bool SkipInvalid { get; init; }
    /// <summary>
    /// Set every dropout probability of the policy to 0 (LoRA's; the reference runs without
    /// dropout anyway), so that the policy's log-probabilities, and the margin against the
    /// reference, carry no dropout noise: TRL's DPOConfig.disable_dropout, true by default.
    /// </summary>
    public bool DisableDropout { get; init; } = true;

    public override bool DropoutDisabled => DisableDropout;

    public override void Validate()
    {
        base.Validate();
        if (!(Beta > 0) || double.IsInfinity(Beta)) throw new InputError($"--beta: must be positive, got {Beta}");
        if (!(LabelSmoothing is >= 0 and < 0.5)) throw new InputError($"--label-smoothing: must be in [0, 0.5), got {LabelSmoothing}");
        if (LabelSmoothing > 0 && LossType != DpoLossType.Robust)
            throw new InputError($"--label-smoothing: only --loss-type robust uses it; TRL's {LossType.ToString().ToLowerInvariant()} loss ignores label_smoothing " +
                                 "(conservative DPO, the label-smoothed sigmoid, is no longer in TRL); use --loss-type robust for noisy labels, or drop --label-smoothing");
        if (RpoAlpha is { } a && !(a >= 0)) throw new InputError($"--rpo-alpha: must not be negative, got {a}");
    }

    /// <summary>Every setting of this method: the loop's and its own, declared once.</summary>
    public static readonly SettingTable<DpoOptions> Settings = new(
    [
        .. LoopSettings.For<DpoOptions>(),
        LoopSettings.S<DpoOptions>("ref-model", "Frozen reference model directory (default: a copy of --model; with --lora its base, with --adapter its base and that adapter as loaded)", typeof(string), o => o.RefModel, (o, v) => o with { RefModel = (string?)v }),
        LoopSettings.S<DpoOptions>("beta", "Deviation from the reference: higher beta, less deviation (IPO's tau)", typeof(double), o => o.Beta, (o, v) => o with { Beta = (double)v! }),
        LoopSettings.S<DpoOptions>("loss-type", "DPO loss", typeof(DpoLossType), o => o.LossType, (o, v) => o with { LossType = (DpoLossType)v! }, ["sigmoid", "robust", "ipo", "hinge"]),
        LoopSettings.S<DpoOptions>("label-smoothing", "Probability that a preference label is flipped, in [0, 0.5), for --loss-type robust only (TRL's sigmoid loss ignores label_smoothing: no conservative DPO)", typeof(double), o => o.LabelSmoothing, (o, v) => o with { LabelSmoothing = (double)v! }),
        LoopSettings.S<DpoOptions>("rpo-alpha", "Add this times the NLL of the chosen completions (RPO; the paper uses 1.0)", typeof(double?), o => o.RpoAlpha, (o, v) => o with { RpoAlpha = (double?)v }),
        LoopSettings.S<DpoOptions>("precompute-ref-logps", "Score the train and eval sets with the reference once before training, then free it", typeof(bool), o => o.PrecomputeRefLogps, (o, v) => o with { PrecomputeRefLogps = (bool)v! }),
        LoopSettings.S<DpoOptions>("disable-dropout", "Set every dropout probability (LoRA's) to 0, as TRL's disable_dropout (--disable-dropout false keeps dropout)", typeof(bool), o => o.DisableDropout, (o, v) => o with { DisableDropout = (bool)v! }),
        LoopSettings.S<DpoOptions>("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
    ]);
}
