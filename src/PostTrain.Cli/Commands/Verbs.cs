using System.CommandLine;

namespace PostTrain.Cli.Commands;

/// <summary>Every `posttrain` verb; each lives in its own file with a static Create().</summary>
public static class Verbs
{
    public static IEnumerable<Command> All() =>
    [
        InitCommand.Create(),
        LogprobsCommand.Create(),
        GenerateCommand.Create(),
        ChatCommand.Create(),
        TokenizeCommand.Create(),
        SftCommand.Create(),
        DpoCommand.Create(),
        RewardCommand.Create(),
        TemplateCommand.Create(),
        MergeCommand.Create(),
        EvalCommand.Create(),
        EvalCompareCommand.Create(),
        DemoCommand.Create(),
        GrpoCommand.Create(PostTrain.Trainers.OnlineAlgorithm.Grpo),
        GrpoCommand.Create(PostTrain.Trainers.OnlineAlgorithm.Rloo),
        PpoCommand.Create(),
        ServeCommand.Create(),
    ];

    /// <summary>
    /// Runs a verb's body: --output is checked before any work (<see cref="OutputPaths"/>), and
    /// any fault becomes one line on stderr with exit code 2 or 3 (<see cref="Faults"/>).
    /// </summary>
    public static int Guard(ParseResult result, Func<TextWriter, int> body)
    {
        var stdout = result.InvocationConfiguration.Output;
        var stderr = result.InvocationConfiguration.Error;
        try
        {
            OutputPaths.CheckBefore(result);
            return body(stdout);
        }
        catch (Exception e)
        {
            return Faults.Report(e, stderr, result.GetValue(Faults.Debug));
        }
    }
}
