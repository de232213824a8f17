using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>Options of supervised fine-tuning, beyond the loop's (TRL's SFTConfig names).</summary>
public sealed record SftOptions : TrainingOptions
{
    /// <summary>Pack sequences into rows of --max-length (best-fit decreasing) instead of padding.</summary>
    public bool Packing { get; init; }
    /// <summary>Train on every token, not only completions / assistant turns.</summary>
    public bool AllTokens { get; init; }
    /// <summary>Drop invalid records (and say how many) instead of failing.</summary>
    public bool SkipInvalid { get; init; }

    /// <summary>Every setting of `sft`: the loop's and SFT's own, declared once.</summary>
    public static readonly SettingTable<SftOptions> Settings = new(
    [
        .. LoopSettings.For<SftOptions>(),
        LoopSettings.S<SftOptions>("packing", "Pack sequences into rows of --max-length (best-fit decreasing) instead of padding", typeof(bool), o => o.Packing, (o, v) => o with { Packing = (bool)v! }),
        LoopSettings.S<SftOptions>("all-tokens", "Train on every token, not only completions / assistant turns", typeof(bool), o => o.AllTokens, (o, v) => o with { AllTokens = (bool)v! }),
        LoopSettings.S<SftOptions>("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
    ]);
}
