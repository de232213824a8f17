using System.CommandLine;
using PostTrain.Trainers;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain grpo` and `posttrain rloo`: read <see cref="GrpoOptions"/> and run <see cref="GrpoRun"/>.</summary>
public static class GrpoCommand
{
    public static Command Create(OnlineAlgorithm algorithm) => algorithm == OnlineAlgorithm.Grpo
        ? TrainingRuns.Command("grpo",
            "GRPO: sample G completions per prompt, score them with rewards, move toward the better ones of each group",
            GrpoOptions.Settings, new GrpoOptions { Algorithm = algorithm }, GrpoRun.Train)
        : TrainingRuns.Command("rloo",
            "RLOO: online RL with a leave-one-out baseline (each reward against the mean of its prompt's other samples)",
            GrpoOptions.Settings, new GrpoOptions { Algorithm = algorithm }, GrpoRun.Train);
}
