namespace PostTrain.Tests.Cli;

/// <summary>Runs `posttrain` in-process and captures what it prints.</summary>
public static class CliRunner
{
    public static (int ExitCode, string Stdout, string Stderr) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = PostTrain.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A run directory with a tiny model (the tiny test tokenizer, ChatML template) made by `posttrain init`.</summary>
    public static (string Root, string Model) TinyModel(string arch = "qwen2", params string[] extra)
    {
        var root = TestModels.TempDir();
        var tok = Path.Combine(root, "tokenizer");
        TestTokenizers.WriteTiny(tok);
        var model = Path.Combine(root, "model");
        var (code, _, stderr) = Run(["init", "--arch", arch, "--output", model, "--tokenizer", tok, "--hidden-size", "32", "--heads", "4", "--kv-heads", "2", "--intermediate-size", "64", .. extra]);
        Assert.True(code == 0, stderr);
        return (root, model);
    }
}
