using System.CommandLine;
using PostTrain.Trainers;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain sft`: reads <see cref="SftOptions"/> and runs <see cref="SftRun"/>.</summary>
public static class SftCommand
{
    public static Command Create() => TrainingRuns.Command("sft",
        "Supervised fine-tuning: imitate completions / assistant turns (loss on those tokens only)",
        SftOptions.Settings, new SftOptions(), SftRun.Train);
}
