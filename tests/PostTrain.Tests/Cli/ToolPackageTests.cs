using System.Diagnostics;
using System.Reflection;
using System.Text.Json.Nodes;

namespace PostTrain.Tests.Cli;

/// <summary>
/// `posttrain` as a .NET tool: packs the CLI, installs the package into a temporary tool path from a
/// temporary feed (a NuGet config that names only that feed, so neither the user's tools nor any
/// remote source is touched), and runs the installed command. On Debian 12 the tool running at
/// all shows that the packed libLibTorchSharp.so is the patched one (DEVELOPERS.md).
/// </summary>
public class ToolPackageTests
{
    static readonly TimeSpan Limit = TimeSpan.FromMinutes(20);

    [Fact]
    [Trait("Category", "Slow")]
    public void PackedToolInstallsAndRuns()
    {
        var temp = Directory.CreateTempSubdirectory("posttrain-tool-").FullName;
        try
        {
            string feed = Path.Combine(temp, "feed"), publish = Path.Combine(temp, "publish"), tools = Path.Combine(temp, "tools");
            string version = typeof(PostTrain.Cli.Program).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
            // Building this test project built the CLI in the same configuration: pack that build
            // (pack publishes a tool; hard links instead of copies of libtorch where the disk allows).
            string configuration = typeof(ToolPackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;
            string project = Path.Combine(RepoRoot(), "src", "PostTrain.Cli", "PostTrain.Cli.csproj");
            Run(Dotnet, ["pack", project, "-c", configuration, "--no-build", "--nologo", "-o", feed,
                $"-p:PublishDir={publish}/", "-p:CreateHardLinksForPublishFilesIfPossible=true"], temp);
            Assert.True(File.Exists(Path.Combine(feed, $"posttrain.{version}.nupkg")), string.Join(", ", Directory.GetFiles(feed)));
            Directory.Delete(publish, recursive: true);

            string config = Path.Combine(temp, "nuget.config");
            File.WriteAllText(config, $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <clear />
                    <add key="feed" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            Run(Dotnet, ["tool", "install", "posttrain", "--tool-path", tools, "--configfile", config, "--version", version], temp);
            string posttrain = Path.Combine(tools, OperatingSystem.IsWindows() ? "posttrain.exe" : "posttrain");

            Assert.Equal(version, Run(posttrain, ["--version"], temp).Trim());

            string model = Path.Combine(temp, "model");
            Assert.Contains("Created a qwen2 model", Run(posttrain, ["init", "--arch", "qwen2", "--output", model, "--seed", "3"], temp));
            string input = Path.Combine(temp, "in.jsonl"), output = Path.Combine(temp, "out.jsonl");
            File.WriteAllText(input, "{\"input_ids\": [1, 2, 3, 4, 5, 6]}\n{\"input_ids\": [9, 10]}\n");
            Run(posttrain, ["logprobs", "--model", model, "--input", input, "--output", output], temp);

            // The installed tool scores as the CLI in this process does.
            string expected = Path.Combine(temp, "expected.jsonl");
            var (code, _, stderr) = CliRunner.Run("logprobs", "--model", model, "--input", input, "--output", expected);
            Assert.True(code == 0, stderr);
            var got = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!).ToArray();
            var want = File.ReadAllLines(expected).Select(l => JsonNode.Parse(l)!).ToArray();
            Assert.Equal(2, got.Length);
            for (int i = 0; i < want.Length; i++)
            {
                Assert.Equal(want[i]["input_ids"]!.ToJsonString(), got[i]["input_ids"]!.ToJsonString());
                Assert.Equal(want[i]["nll"]!.GetValue<double>(), got[i]["nll"]!.GetValue<double>(), 1e-5);
            }
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";

    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PostTrain.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no PostTrain.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs a program to completion; fails the test with its output unless it exits 0. Returns its standard output.</summary>
    static string Run(string program, string[] args, string workingDirectory)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // The test host runs under `dotnet test`'s MSBuild, whose variables would steer a child build.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Limit))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{program} {string.Join(' ', args)}: still running after {Limit}");
        }
        string output = stdout.Result, errors = stderr.Result;
        Assert.True(process.ExitCode == 0, $"{program} {string.Join(' ', args)} exited {process.ExitCode}\n{output}\n{errors}");
        return output;
    }
}
