namespace PostTrain.Trainers;

/// <summary>
/// A tokenized preference pair for reward modelling: the whole chosen sequence (prompt + chosen)
/// and the whole rejected one (prompt + rejected), each scored alone, the record's margin when it
/// has one, and where the record came from (FILE:LINE).
/// </summary>
public sealed record RewardPair(int[] ChosenIds, int[] RejectedIds, double? Margin, string Source)
{
    public int Tokens => ChosenIds.Length + RejectedIds.Length;
}
