using System.CommandLine;
using PostTrain.Trainers;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain dpo`: reads <see cref="DpoOptions"/> and runs <see cref="DpoRun"/>.</summary>
public static class DpoCommand
{
    public static Command Create() => TrainingRuns.Command("dpo",
        "Direct preference optimisation: prefer the chosen completion to the rejected one, relative to a frozen reference",
        DpoOptions.Settings, new DpoOptions(), DpoRun.Train);
}
