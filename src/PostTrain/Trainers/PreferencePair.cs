using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// A tokenized preference pair: the prompt's ids and each completion's ids (the trained rows are
/// prompt + chosen and prompt + rejected). <see cref="RefChosenLogp"/> and
/// <see cref="RefRejectedLogp"/> hold the reference's sequence log-probabilities once
/// precomputed (--precompute-ref-logps).
/// </summary>
public sealed record PreferencePair(int[] PromptIds, int[] ChosenIds, int[] RejectedIds)
{
    public double? RefChosenLogp { get; init; }
    public double? RefRejectedLogp { get; init; }

    public int ChosenLength => PromptIds.Length + ChosenIds.Length;
    public int RejectedLength => PromptIds.Length + RejectedIds.Length;

    /// <summary>
    /// TRL's truncation (truncation_mode "keep_start"): each of prompt + chosen and prompt +
    /// rejected keeps its first <paramref name="maxLength"/> tokens. Null when the prompt alone
    /// fills <paramref name="maxLength"/> (TRL drops those pairs: no completion token would remain).
    /// </summary>
    public PreferencePair? Truncate(int maxLength)
    {
        if (PromptIds.Length >= maxLength) return null;
        int room = maxLength - PromptIds.Length;
        if (ChosenIds.Length <= room && RejectedIds.Length <= room) return this;
        return this with { ChosenIds = ChosenIds[..Math.Min(room, ChosenIds.Length)], RejectedIds = RejectedIds[..Math.Min(room, RejectedIds.Length)] };
    }
}
