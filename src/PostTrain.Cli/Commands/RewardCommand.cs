using System.CommandLine;
using PostTrain.Trainers;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain reward`: reads <see cref="RewardOptions"/> and runs <see cref="RewardRun"/>.</summary>
public static class RewardCommand
{
    public static Command Create() => TrainingRuns.Command("reward",
        "Reward-model training: a sequence classifier that scores the chosen sequence above the rejected one (Bradley-Terry)",
        RewardOptions.Settings, new RewardOptions(), RewardRun.Train);
}
