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
        ConfigOption.AddToVerbs(root);
        return root;
    }

    /// <summary>Runs one `posttrain` invocation; tests call this in-process.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = Commands();
        var config = new InvocationConfiguration { Output = stdout, Error = stderr };
        var parsed = root.Parse(args);
        try
        {
            if (ConfigOption.Expand(parsed, args) is { } expanded) parsed = root.Parse(expanded);
        }
        catch (InputError e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 2;
        }
        if (parsed.Errors.Count > 0)
        {
            foreach (var error in parsed.Errors) stderr.WriteLine($"error: {error.Message}");
            return 2;
        }
        return parsed.Invoke(config);
    }
}
