using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using PostTrain.Cli.Commands;
using PostTrain.Training;
using Xunit.Abstractions;

namespace PostTrain.Tests.Cli;

/// <summary>Faults that are not about the content of an input end in one named line and exit 2 or 3, never a stack trace.</summary>
public class FaultTests(ITestOutputHelper output)
{
    static string Data(string root, int count = 16)
    {
        var path = Path.Combine(root, "train.jsonl");
        File.WriteAllLines(path, Enumerable.Range(0, count).Select(i => new JsonObject
        {
            ["prompt"] = $"Who wrote program {i}? ",
            ["completion"] = "Ada did.",
        }.ToJsonString()));
        return path;
    }

    static string[] Sft(string model, string data, string outputDir, params string[] extra) =>
        ["sft", "--model", model, "--data", data, "--output", outputDir, "--batch-size", "4", .. extra];

    static void OneLine(string stderr) => Assert.DoesNotContain("   at ", stderr);

    [Fact]
    public void ExceptionsBecomeOneLineWithThePathAndAnExitCode()
    {
        Assert.Equal((3, "/x/y: no space left on device"), Faults.Describe(new IOException("No space left on device : '/x/y'", 28)));
        Assert.Equal((2, "/x: permission denied"), Faults.Describe(new UnauthorizedAccessException("Access to the path '/x' is denied.")));
        Assert.Equal((2, "/a/b: a directory on this path does not exist"), Faults.Describe(new DirectoryNotFoundException("Could not find a part of the path '/a/b'.")));
        Assert.Equal((2, "/a/b: the file already exists"), Faults.Describe(new IOException("The file '/a/b' already exists.")));
        var (code, message) = Faults.Describe(new ExternalException(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 4398046511104 bytes. Error code 12 (Cannot allocate memory)"));
        Assert.Equal(3, code);
        Assert.StartsWith("out of memory: libtorch could not allocate 4,398,046,511,104 bytes", message);
        Assert.Equal(3, Faults.Describe(new OutOfMemoryException()).Code);
        Assert.Equal(1, Faults.Describe(new NullReferenceException("bug")).Code);
    }

    [Fact]
    public void ALibtorchAllocationFailureIsResourceExhaustion()
    {
        try
        {
            using var huge = TorchSharp.torch.empty([1L << 42], TorchSharp.torch.ScalarType.Float32); // 16 TiB
            output.WriteLine("libtorch allocated 16 TiB (overcommit): nothing to check");
        }
        catch (Exception e)
        {
            output.WriteLine($"{e.GetType().FullName}: {e.Message}");
            Assert.Equal(3, Faults.Describe(e).Code);
        }
    }

    [Fact]
    public void DebugPrintsTheStackTraceAndOtherwiseThereIsNone()
    {
        var (root, model) = CliRunner.TinyModel();
        var missing = Path.Combine(root, "nope.jsonl");
        var (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--input", missing);
        Assert.Equal(2, code);
        OneLine(stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--input", missing, "--debug");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Contains("   at ", stderr);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void OutputPathsAreCheckedBeforeAnyWork()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        var file = Path.Combine(root, "a-file");
        File.WriteAllText(file, "x");
        var input = Path.Combine(root, "prompts.jsonl");
        File.WriteAllText(input, "{\"prompt\": \"hi\"}\n");

        foreach (var verb in new[] { "sft", "dpo", "reward", "grpo", "ppo" })
        {
            string[] args = verb is "grpo" or "ppo" ? [verb, "--model", model, "--data", input, "--output", file, "--reward", "length"]
                : [verb, "--model", model, "--data", data, "--output", file];
            var (code, _, stderr) = CliRunner.Run(args);
            Assert.True(code == 2, verb + ": " + stderr);
            Assert.Equal($"error: --output: {file}: is a file; give a directory", stderr.Trim());
        }
        foreach (var args in new[]
                 {
                     new[] { "generate", "--model", model, "--input", input },
                     ["logprobs", "--model", model, "--input", input],
                     ["tokenize", "--model", model, "--input", input],
                     ["template", "--model", model, "--input", input],
                 })
        {
            var (code, _, stderr) = CliRunner.Run([.. args, "--output", root]);
            Assert.True(code == 2, args[0] + ": " + stderr);
            Assert.Equal($"error: --output: {root}: is a directory; give a file name", stderr.Trim());
            var underMissing = Path.Combine(root, "missing", "out.jsonl");
            (code, _, stderr) = CliRunner.Run([.. args, "--output", underMissing]);
            Assert.Equal(2, code);
            Assert.Equal($"error: --output: {underMissing}: the directory {Path.Combine(root, "missing")} does not exist", stderr.Trim());
        }

        if (Environment.IsPrivilegedProcess)
        {
            output.WriteLine("running as root: permissions are not enforced, the read-only directory case is skipped");
            return;
        }
        var readOnly = Path.Combine(root, "ro");
        Directory.CreateDirectory(readOnly);
        File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            var (code, _, stderr) = CliRunner.Run(Sft(model, data, Path.Combine(readOnly, "run"), "--max-steps", "1"));
            Assert.Equal(2, code);
            Assert.Contains("no permission to write in", stderr);
            (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--input", input, "--output", Path.Combine(readOnly, "o.jsonl"));
            Assert.Equal(2, code);
            Assert.Contains("no permission to write in", stderr);
        }
        finally
        {
            File.SetUnixFileMode(readOnly, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    [Fact]
    public void AFailedLoadLeavesNoOutput()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        var noWeights = Path.Combine(root, "no-weights");
        Directory.CreateDirectory(noWeights);
        foreach (var f in Directory.GetFiles(model).Where(f => !f.EndsWith(".safetensors"))) File.Copy(f, Path.Combine(noWeights, Path.GetFileName(f)));
        var outputDir = Path.Combine(root, "run");
        var (code, _, stderr) = CliRunner.Run(Sft(noWeights, data, outputDir, "--max-steps", "1"));
        Assert.Equal(2, code);
        OneLine(stderr);
        Assert.False(Directory.Exists(outputDir), "a failed model load left " + outputDir);
        // --resume of a directory that is not a checkpoint: nothing written either.
        (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "1", "--resume", root));
        Assert.Equal(2, code);
        Assert.Contains("not a checkpoint", stderr);
        Assert.False(Directory.Exists(outputDir));
    }

    [Fact]
    public void ARunThatWroteNoCheckpointIsStartedOverAndLeftoversAreRemoved()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        var outputDir = Path.Combine(root, "run");
        Directory.CreateDirectory(outputDir);
        // What kill -9 leaves after the first metrics line, in the middle of writing checkpoint-1.
        File.WriteAllText(Path.Combine(outputDir, "metrics.jsonl"), "{\"step\":1,\"loss\":3.5}\n");
        File.WriteAllText(Path.Combine(outputDir, "config.yaml"), "seed: 42\n");
        Directory.CreateDirectory(Path.Combine(outputDir, ".checkpoint-1.tmp-0123456789abcdef"));
        Directory.CreateDirectory(Path.Combine(outputDir, ".final-0123456789abcdef"));
        var (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "2", "--resume"));
        Assert.Equal(2, code);
        Assert.Contains("its run wrote none: start it again without --resume", stderr);
        (code, var stdout, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "2"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"{outputDir} holds an earlier run that wrote no checkpoint; starting over", stdout);
        Assert.Empty(Directory.GetDirectories(outputDir, ".*"));
        Assert.False(File.Exists(Path.Combine(outputDir, RunDirectory.LockFile)), "the lock is released on exit");
        // A finished run (a final model, no checkpoint) is not started over.
        (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "2"));
        Assert.Equal(2, code);
        Assert.Contains("already holds a run", stderr);
    }

    [Fact]
    public void ASecondRunIntoTheSameOutputIsRefusedAndAStaleLockTakenOver()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        var outputDir = Path.Combine(root, "run");
        Directory.CreateDirectory(outputDir);
        var lockPath = Path.Combine(outputDir, RunDirectory.LockFile);
        // A live holder: this very process (as another run in it would be).
        var me = Process.GetCurrentProcess();
        File.WriteAllText(lockPath, $"{Environment.ProcessId}\n{me.StartTime.ToUniversalTime().Ticks}\n");
        var (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "1"));
        Assert.Equal(2, code);
        Assert.Equal($"error: --output: {outputDir} is in use by another run (process {Environment.ProcessId}, lock file {lockPath}); wait for it to end or choose another directory", stderr.Trim());
        Assert.False(File.Exists(Path.Combine(outputDir, "config.yaml")));
        // A stale lock: its process has ended.
        using (var gone = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!)
        {
            gone.WaitForExit();
            File.WriteAllText(lockPath, $"{gone.Id}\n0\n");
        }
        // Two runs taking over the same stale lock at once: the kernel lock (flock) on the
        // output's .posttrain.flock lets one through. Held here as another run would hold it.
        using (var held = new FileStream(Path.Combine(outputDir, RunDirectory.FlockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "1"));
            Assert.Equal(2, code);
            Assert.Contains("is in use by another run", stderr);
            Assert.False(File.Exists(Path.Combine(outputDir, "config.yaml")));
        }
        (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "1"));
        Assert.True(code == 0, stderr);
        Assert.False(File.Exists(lockPath));
    }

    /// <summary>A 3 MB tmpfs as --output (needs mount, i.e. root; skipped with a message where it is not permitted).</summary>
    [Fact]
    [Trait("Category", "Slow")]
    public void DiskFullWhileCheckpointingLeavesThePreviousCheckpointAndNoTemporaryDirectory()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        var mount = Path.Combine(root, "small");
        Directory.CreateDirectory(mount);
        if (!Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mount))
        {
            output.WriteLine("mount -t tmpfs is not permitted here: the disk-full case is skipped");
            return;
        }
        try
        {
            var outputDir = Path.Combine(mount, "run");
            var (code, stdout, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "400", "--save-steps", "1", "--logging-steps", "50"));
            output.WriteLine(stderr);
            Assert.Equal(3, code);
            OneLine(stderr);
            Assert.Single(stderr.Trim().Split('\n'));
            Assert.Matches(@"^error: .*/run/(checkpoint-\d+/)?[^/]+: no space left on device$", stderr.Trim());
            Assert.DoesNotContain(".tmp-", stderr);
            Assert.Empty(Directory.GetDirectories(outputDir, ".*"));
            Assert.False(File.Exists(Path.Combine(outputDir, RunDirectory.LockFile)));
            var latest = Trainer<object>.Checkpoints(outputDir)[^1].Path;
            output.WriteLine($"latest checkpoint: {latest}");
            // The previous checkpoint is whole: it loads and scores text.
            var input = Path.Combine(root, "score.jsonl");
            File.WriteAllText(input, "{\"text\": \"Who wrote program 3? Ada did.\"}\n");
            (code, stdout, stderr) = CliRunner.Run("logprobs", "--model", latest, "--input", input);
            Assert.True(code == 0, stderr);
            // Resuming into the full disk is the same clean error.
            (code, _, stderr) = CliRunner.Run(Sft(model, data, outputDir, "--max-steps", "400", "--save-steps", "1", "--logging-steps", "50", "--resume"));
            Assert.Equal(3, code);
            OneLine(stderr);
            Assert.Empty(Directory.GetDirectories(outputDir, ".*"));
        }
        finally
        {
            Command("umount", mount);
        }
    }

    /// <summary>
    /// Paths a non-root user may not use: the CLI run out of process as nobody (setpriv, when the
    /// tests run as root; skipped with a message otherwise). Each is one line naming the path, exit 2.
    /// </summary>
    [Fact]
    [Trait("Category", "Slow")]
    public void PathsANonRootUserMayNotUseAreOneLineErrors()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root" || !File.Exists("/usr/bin/setpriv"))
        {
            output.WriteLine("not root or no setpriv: the non-root cases are skipped");
            return;
        }
        var (root, model) = CliRunner.TinyModel();
        var data = Data(root);
        foreach (var dir in new[] { root, Path.GetDirectoryName(root)! })
            File.SetUnixFileMode(dir, File.GetUnixFileMode(dir) | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var locked = Path.Combine(root, "locked");
        Directory.CreateDirectory(locked);
        File.SetUnixFileMode(locked, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var secret = Path.Combine(root, "secret-model");
        Directory.CreateDirectory(secret);
        foreach (var f in Directory.GetFiles(model)) File.Copy(f, Path.Combine(secret, Path.GetFileName(f)));
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // A run that root made: nobody may read it but not write in it.
        var run = Path.Combine(root, "run");
        var (code, _, stderr) = CliRunner.Run(Sft(model, data, run, "--max-steps", "2", "--save-steps", "1"));
        Assert.True(code == 0, stderr);
        var prompts = Path.Combine(root, "prompts.jsonl");
        File.WriteAllText(prompts, "{\"prompt_ids\": [1, 2, 3]}\n");

        (int, string) AsNobody(params string[] args)
        {
            var info = new ProcessStartInfo("/usr/bin/setpriv") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                         Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet",
                         Path.Combine(AppContext.BaseDirectory, "PostTrain.Cli.dll") }.Concat(args))
                info.ArgumentList.Add(a);
            info.Environment["HOME"] = "/tmp";
            info.Environment["DOTNET_CLI_HOME"] = "/tmp";
            foreach (var name in info.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList()) info.Environment.Remove(name);
            using var p = Process.Start(info)!;
            var err = p.StandardError.ReadToEndAsync();
            p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err.Result);
        }
        void Refused((int Code, string Stderr) result, string path)
        {
            output.WriteLine(result.Stderr);
            Assert.Equal(2, result.Code);
            OneLine(result.Stderr);
            Assert.Single(result.Stderr.Trim().Split('\n'));
            Assert.StartsWith("error: ", result.Stderr);
            Assert.Contains(path, result.Stderr);
        }
        Refused(AsNobody(Sft(model, data, Path.Combine(locked, "new-run"), "--max-steps", "1")), locked);
        Refused(AsNobody("generate", "--model", model, "--input", prompts, "--output", Path.Combine(locked, "out.jsonl"), "--max-new-tokens", "2"), locked);
        Refused(AsNobody(Sft(model, data, run, "--max-steps", "3", "--resume")), run);
        var unreadable = AsNobody("generate", "--model", secret, "--input", prompts, "--max-new-tokens", "2");
        Refused(unreadable, secret);
        Assert.Contains("permission denied", unreadable.Item2); // not "file not found": the file is there
        Assert.Empty(Directory.GetFileSystemEntries(locked));
    }

    static bool Command(string file, params string[] args)
    {
        try
        {
            var info = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) info.ArgumentList.Add(a);
            using var p = Process.Start(info)!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
