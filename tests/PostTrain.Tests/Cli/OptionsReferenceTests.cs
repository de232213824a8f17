using PostTrain.Cli.Commands;

namespace PostTrain.Tests.Cli;

public class OptionsReferenceTests
{
    static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "PostTrain.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("the repository root (PostTrain.slnx) is not above the test binaries");
    }

    [Fact]
    public void DocsOptionsIsTheRenderingOfTheDeclaredOptions()
    {
        var expected = OptionsReference.Markdown(PostTrain.Cli.Program.Commands());
        var path = Path.Combine(RepositoryRoot(), "docs", "options.md");
        if (Environment.GetEnvironmentVariable("POSTTRAIN_WRITE_OPTIONS_DOC") == "1") File.WriteAllText(path, expected);
        Assert.True(File.Exists(path), $"{path} is missing: run this test with POSTTRAIN_WRITE_OPTIONS_DOC=1");
        Assert.True(File.ReadAllText(path) == expected, $"{path} is not the rendering of the options: run this test with POSTTRAIN_WRITE_OPTIONS_DOC=1 and commit it");
    }

    [Fact]
    public void EveryTrainerSettingIsAnOptionWithItsDefault()
    {
        var root = PostTrain.Cli.Program.Commands();
        var sft = root.Subcommands.Single(c => c.Name == "sft");
        foreach (var setting in PostTrain.Trainers.SftOptions.Settings.Settings)
        {
            var option = sft.Options.Single(o => o.Name == "--" + setting.Name);
            Assert.Equal(setting.Help(new PostTrain.Trainers.SftOptions()), option.Description);
        }
        Assert.Contains(sft.Options, o => o.Name == "--config");
        Assert.All(root.Subcommands, c => Assert.Contains(c.Options, o => o.Name == "--config"));
    }
}
