using System.CommandLine;
using PostTrain.Trainers;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain ppo`: reads <see cref="PpoOptions"/> and runs <see cref="PpoRun"/>.</summary>
public static class PpoCommand
{
    public static Command Create() => TrainingRuns.Command("ppo",
        "PPO: sample a completion per prompt, score it (rewards or a reward model), train the policy and a value model with clipped losses on GAE advantages",
        PpoOptions.Settings, new PpoOptions(), PpoRun.Train);
}
