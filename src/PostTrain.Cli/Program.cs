using System.CommandLine;
using PostTrain.Cli.Commands;

namespace PostTrain.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Runs one `posttrain` invocation; tests call this in-process.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("PostTrain: post-training for Hugging Face Qwen and Llama checkpoints (SFT, DPO, GRPO).");
        foreach (var command in Verbs.All()) root.Subcommands.Add(command);
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors) stderr.WriteLine($"error: {error.Message}");
            return 2;
        }
        return parsed.Invoke(config);
    }
}
