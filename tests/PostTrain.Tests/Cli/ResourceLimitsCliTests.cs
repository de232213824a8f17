namespace PostTrain.Tests.Cli;

/// <summary>
/// The CLI's view of the size limits: a model too large for the machine, or a chat template that
/// would hang or overflow the stack, is one error line with exit code 2.
/// </summary>
public class ResourceLimitsCliTests
{
    [Theory]
    [InlineData("--layers", "1000000")]
    [InlineData("--hidden-size", "1000000000")]
    public void InitRefusesAModelLargerThanTheMachinesMemory(string option, string value)
    {
        var output = Path.Combine(TestModels.TempDir(), "huge");
        string[] shape = option == "--hidden-size" ? ["--heads", "4", "--kv-heads", "2", "--head-dim", "8"] : [];
        var (code, _, err) = CliRunner.Run(["init", "--arch", "qwen2", "--preset", "tiny", option, value, .. shape, "--output", output]);
        Assert.Equal(2, code);
        Assert.Contains("is larger than this machine's", err);
        Assert.Single(err.TrimEnd().Split('\n'));
        Assert.False(Directory.Exists(output));
    }

    [Theory]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "calls nest more than 500 deep")]
    [InlineData("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "more than 1,000,000 loop iterations")]
    [InlineData("{{ 'x' * 10**10 }}", "would hold 10,000,000,000 characters")]
    public void TemplateStopsARunawayTemplateWithOneLine(string template, string expected)
    {
        var root = TestModels.TempDir();
        var model = Path.Combine(root, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "chat_template.jinja"), template);
        var input = Path.Combine(root, "in.jsonl");
        File.WriteAllText(input, """{"messages": [{"role": "user", "content": "hi"}]}""" + "\n");
        var (code, _, err) = CliRunner.Run("template", "--model", model, "--input", input);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.Contains("chat_template.jinja:1:", err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }
}
