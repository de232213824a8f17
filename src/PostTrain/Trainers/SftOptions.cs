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
}
