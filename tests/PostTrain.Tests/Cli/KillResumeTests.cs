using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using PostTrain.Training;
using Xunit.Abstractions;

namespace PostTrain.Tests.Cli;

/// <summary>
/// Crash safety: `posttrain sft --save-steps 1` run out of process (the built PostTrain.Cli.dll
/// beside the tests) and killed with SIGKILL at random moments, then continued (--resume when a
/// checkpoint exists, else a new run, which starts the directory over), ends with the same loss
/// curve and the same final model as an uninterrupted run.
/// </summary>
public class KillResumeTests(ITestOutputHelper output)
{
    static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } path ? path : "dotnet";

    /// <summary>Starts the CLI; <paramref name="steps"/> counts the progress lines ("] step N/T") it has printed.</summary>
    static Process Start(string[] args, StrongBox<int> steps)
    {
        var start = new ProcessStartInfo(Dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "PostTrain.Cli.dll"));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        var process = Process.Start(start)!;
        process.StandardInput.Close();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("] step ") == true) Interlocked.Increment(ref steps.Value);
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    static List<double> Losses(string dir) =>
        File.ReadAllLines(Path.Combine(dir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"]!.GetValue<double>()).ToList();

    static List<double> Numbers(string text) =>
        System.Text.RegularExpressions.Regex.Matches(text, @"-?\d+(\.\d+)?([eE][-+]?\d+)?")
            .Select(m => double.Parse(m.Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();

    [Fact]
    [Trait("Category", "Slow")]
    public void KilledAtRandomMomentsAndResumedTheRunEndsAsAnUninterruptedOne()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Path.Combine(root, "train.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 16).Select(i => new JsonObject { ["prompt"] = $"Who wrote program {i}? ", ["completion"] = "Ada did." }.ToJsonString()));
        string[] Args(string dir) => ["sft", "--model", model, "--data", data, "--output", dir, "--max-steps", "12", "--batch-size", "4",
            "--logging-steps", "1", "--save-steps", "1", "--learning-rate", "0.002", "--warmup-steps", "3"];
        var full = Path.Combine(root, "full");
        var reference = CliRunner.Run(Args(full));
        Assert.True(reference.ExitCode == 0, reference.Stderr);
        var expected = Losses(full);
        var score = Path.Combine(root, "score.jsonl");
        File.WriteAllText(score, "{\"text\": \"Who wrote program 3? Ada did.\"}\n");
        var expectedScore = CliRunner.Run("logprobs", "--model", full, "--input", score).Stdout;

        var random = new Random(20);
        for (int trial = 0; trial < 3; trial++)
        {
            var dir = Path.Combine(root, $"trial-{trial}");
            var log = new List<string>();
            for (int kill = 0; kill < 3; kill++)
            {
                bool resume = Trainer<object>.Checkpoints(dir).Count > 0;
                var steps = new StrongBox<int>(0);
                using var process = Start(resume ? [.. Args(dir), "--resume"] : Args(dir), steps);
                // Kill after a random number of this process's steps (0: during start-up or the
                // first step) and a random delay: inside a step, a checkpoint write or a metrics write.
                int after = random.Next(0, 5), delay = random.Next(0, 400);
                var clock = Stopwatch.StartNew();
                while (Volatile.Read(ref steps.Value) < after && !process.HasExited && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(5);
                if (process.WaitForExit(delay))
                {
                    log.Add($"{(resume ? "resume" : "start")} finished before the kill (exit {process.ExitCode})");
                    Assert.Equal(0, process.ExitCode);
                    break;
                }
                process.Kill(); // SIGKILL
                process.WaitForExit();
                log.Add($"{(resume ? "resume" : "start")} killed {delay} ms after {after} steps: checkpoints {string.Join(",", Trainer<object>.Checkpoints(dir).Select(c => c.Step))}");
            }
            // A kill that lands after the final model was written leaves the run's leftovers (a
            // temporary directory, the lock) to the next start in that output, which removes them.
            bool finishedHere = !File.Exists(Path.Combine(dir, "model.safetensors"));
            if (finishedHere)
            {
                bool resume = Trainer<object>.Checkpoints(dir).Count > 0;
                var (code, _, stderr) = CliRunner.Run(resume ? [.. Args(dir), "--resume"] : Args(dir));
                Assert.True(code == 0, stderr);
                log.Add(resume ? "resumed to the end" : "started over to the end");
            }
            output.WriteLine($"trial {trial}: " + string.Join("; ", log));
            var losses = Losses(dir);
            Assert.Equal(expected.Count, losses.Count);
            for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i], losses[i], 1e-6);
            var scored = Numbers(CliRunner.Run("logprobs", "--model", dir, "--input", score).Stdout);
            var expectedNumbers = Numbers(expectedScore);
            Assert.Equal(expectedNumbers.Count, scored.Count);
            for (int i = 0; i < scored.Count; i++) Assert.Equal(expectedNumbers[i], scored[i], 1e-5);
            if (finishedHere)
            {
                Assert.Empty(Directory.GetDirectories(dir, ".*"));
                Assert.False(File.Exists(Path.Combine(dir, RunDirectory.LockFile)));
            }
        }
    }
}
