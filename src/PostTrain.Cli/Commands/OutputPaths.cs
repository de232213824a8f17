using System.CommandLine;

namespace PostTrain.Cli.Commands;

/// <summary>The CLI's check of --output before a verb does any work (the trainers check theirs in the library, where --config can set it).</summary>
public static class OutputPaths
{
    /// <summary>Verbs whose --output is a file (the others' is a directory).</summary>
    static readonly HashSet<string> FileVerbs = ["generate", "logprobs", "tokenize", "template"];

    public static void CheckBefore(ParseResult result)
    {
        var command = result.CommandResult.Command;
        if (command.Options.FirstOrDefault(o => o.Name == "--output") is not Option<string?> and not Option<string> || IsTrainer(command)) return;
        var option = command.Options.First(o => o.Name == "--output");
        var path = option is Option<string?> nullable ? result.GetValue(nullable) : result.GetValue((Option<string>)option);
        if (string.IsNullOrEmpty(path)) return;
        if (FileVerbs.Contains(command.Name)) PostTrain.OutputPaths.CheckFile(path);
        else PostTrain.OutputPaths.CheckDirectory(path);
    }

    // A trainer's --output can come from its --config file: RunDirectory.Lock checks it at the start of the run.
    static bool IsTrainer(Command command) => command.Options.Any(o => o.Name == "--resume");
}
