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
    ];

    /// <summary>
    /// Runs a verb's body: an <see cref="InputError"/> becomes one line on stderr and exit code 2.
    /// </summary>
    public static int Guard(ParseResult result, Func<TextWriter, int> body)
    {
        var stdout = result.InvocationConfiguration.Output;
        var stderr = result.InvocationConfiguration.Error;
        try
        {
            return body(stdout);
        }
        catch (InputError e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 2;
        }
    }
}
