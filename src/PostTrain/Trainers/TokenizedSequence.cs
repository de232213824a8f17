using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// A token sequence ready for training: which tokens are targets (<see cref="Trained"/>[t]:
/// token t is predicted from those before it and counts in the loss) and, for packed rows,
/// the position ids that restart at 0 for each packed sequence.
/// </summary>
public sealed record TokenizedSequence(int[] InputIds, bool[] Trained, int[]? PositionIds = null)
{
    public int Length => InputIds.Length;

    /// <summary>Targets: trained tokens that have a token before them in the same sequence.</summary>
    public int TrainedCount
    {
        get
        {
            int n = 0;
            for (int t = 1; t < Trained.Length; t++)
                if (Trained[t] && (PositionIds is null || PositionIds[t] != 0)) n++;
            return n;
        }
    }

    public bool IsTrainedTarget(int t) => t > 0 && Trained[t] && (PositionIds is null || PositionIds[t] != 0);
}
