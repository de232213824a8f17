using System.CommandLine;
using PostTrain.Cli.Commands;

namespace PostTrain.Cli;

public static class Program
{
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Every verb with its options (what --help shows and docs/options.md lists).</summary>
    public static RootCommand Commands()
    {
        var root = new RootCommand("PostTrain: post-training for Hugging Face Qwen and Llama checkpoints (SFT, DPO, GRPO).");
        foreach (var command in Verbs.All()) root.Subcommands.Add(command);
        root.Options.Add(Faults.Debug);
        ConfigOption.AddToVerbs(root);
        return root;
    }

    /// <summary>Runs one `posttrain` invocation; tests call this in-process.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        bool debug = Faults.DebugIn(args);
        try
        {
            var root = Commands();
            // Faults are reported by Faults.Report (one line, exit 2 or 3), not System.CommandLine's handler.
            var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
            var parsed = root.Parse(args);
            if (ConfigOption.Expand(parsed, args) is { } expanded) parsed = root.Parse(expanded);
            if (parsed.Errors.Count > 0)
            {
                foreach (var error in parsed.Errors) stderr.WriteLine($"error: {error.Message}");
                return 2;
            }
            return parsed.Invoke(config);
        }
        catch (Exception e)
        {
            return Faults.Report(e, stderr, debug);
        }
    }
}
