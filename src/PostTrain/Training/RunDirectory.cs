using System.Diagnostics;
using PostTrain.Checkpoints;

namespace PostTrain.Training;

/// <summary>A training run's output directory: its lock, a new run's checks, its config.yaml, and the checkpoint a resume continues from.</summary>
public static class RunDirectory
{
    /// <summary>The lock file in OUTPUT while a run writes there: the process id and start time of its holder.</summary>
    public const string LockFile = "posttrain.lock";
    /// <summary>Held open with an exclusive advisory lock (flock) for the run's life: the kernel releases it when the process ends, however it ends.</summary>
    public const string FlockFile = ".posttrain.flock";

    /// <summary>
    /// A new run needs an output directory without an earlier run in it (resume continues one);
    /// the effective settings are written to OUTPUT/config.yaml (temporary file, then renamed).
    /// An earlier run that wrote neither a checkpoint nor a final model (killed before its first
    /// checkpoint) is started over, with a line on <paramref name="log"/>. A resume is checked to
    /// name a checkpoint before anything is written.
    /// </summary>
    public static void Prepare(string output, string? resumeFrom, string settingsYaml, TextWriter? log = null)
    {
        if (resumeFrom is not null && !File.Exists(Path.Combine(resumeFrom, Trainer<object>.StateFile)))
            throw new InputError($"--resume: {resumeFrom}: not a checkpoint (no {Trainer<object>.StateFile})");
        if (resumeFrom is null && Directory.Exists(output))
        {
            if (Trainer<object>.Checkpoints(output).Count > 0 || HoldsModel(output))
                throw new InputError($"--output: {output} already holds a run; continue it with --resume or choose another directory");
            if (File.Exists(Path.Combine(output, RunLog.MetricsFile)))
                log?.WriteLine($"{output} holds an earlier run that wrote no checkpoint; starting over");
        }
        Directory.CreateDirectory(output);
        var path = Path.Combine(output, "config.yaml");
        var temp = path + ".tmp";
        try
        {
            File.WriteAllText(temp, settingsYaml);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>A final model or adapter saved in OUTPUT (a finished run).</summary>
    static bool HoldsModel(string output) =>
        new[] { HfCheckpoint.SingleFile, HfCheckpoint.IndexFile, PeftAdapter.ConfigFile, PeftAdapter.WeightsFile }
            .Any(f => File.Exists(Path.Combine(output, f)));

    /// <summary>The latest checkpoint-STEP directory of a run (what --resume without a value continues).</summary>
    public static string LatestCheckpoint(string output) =>
        Trainer<object>.Checkpoints(output).LastOrDefault().Path
        ?? throw new InputError($"--resume: no checkpoint-STEP directory in {output}" +
                                (File.Exists(Path.Combine(output, RunLog.MetricsFile)) ? "; its run wrote none: start it again without --resume" : ""));

    /// <summary>
    /// Takes OUTPUT for this process before any work: checks that it can be written
    /// (<see cref="OutputPaths.CheckDirectory"/>), creates it, writes <see cref="LockFile"/> with
    /// this process's id, and removes what a killed run left half-written (temporary checkpoint,
    /// final-model and file copies). Two runs starting at once cannot both take it: each first
    /// takes an exclusive flock on <see cref="FlockFile"/> (.NET's FileShare.None on Linux), held
    /// until the run ends and released by the kernel if it is killed. A lock file whose process is
    /// alive is an error naming it; one whose process is gone (kill -9) is taken over. Disposing
    /// releases the lock, and removes OUTPUT again when this run created it and left nothing in it.
    /// </summary>
    public static IDisposable Lock(string output)
    {
        OutputPaths.CheckDirectory(output);
        var full = Path.GetFullPath(output);
        bool created = !Directory.Exists(full);
        Directory.CreateDirectory(full);
        var lockPath = Path.Combine(full, LockFile);
        FileStream flock;
        try
        {
            flock = new FileStream(Path.Combine(full, FlockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException) when (File.Exists(Path.Combine(full, FlockFile)))
        {
            throw new InputError($"--output: {output} is in use by another run (process {Holder(lockPath)?.ToString() ?? "starting"}, lock file {lockPath}); " +
                                 "wait for it to end or choose another directory");
        }
        try
        {
            WriteLock(output, full, lockPath);
        }
        catch
        {
            flock.Dispose();
            throw;
        }
        return new Held(full, lockPath, created, flock);
    }

    static void WriteLock(string output, string full, string lockPath)
    {
        var me = Process.GetCurrentProcess();
        var content = $"{Environment.ProcessId}\n{me.StartTime.ToUniversalTime().Ticks}\n";
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                using (var stream = new FileStream(lockPath, FileMode.CreateNew, FileAccess.Write))
                using (var writer = new StreamWriter(stream)) writer.Write(content);
                break;
            }
            catch (IOException) when (File.Exists(lockPath) && attempt < 3)
            {
                var holder = Holder(lockPath);
                if (holder is not null)
                    throw new InputError($"--output: {output} is in use by another run (process {holder}, lock file {lockPath}); " +
                                         "wait for it to end or choose another directory");
                File.Delete(lockPath); // its process is gone: a stale lock
            }
        }
        try
        {
            RemoveLeftovers(full);
        }
        catch
        {
            File.Delete(lockPath);
            throw;
        }
    }

    /// <summary>The process id in a lock file when that process is still running, else null.</summary>
    static int? Holder(string lockPath)
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines(lockPath);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        if (lines.Length < 1 || !int.TryParse(lines[0], out int pid)) return null; // torn by a kill while written
        if (pid == Environment.ProcessId) return pid;
        try
        {
            using var process = Process.GetProcessById(pid);
            if (process.HasExited) return null;
            // The id may have been reused by another process since: compare start times when recorded.
            if (lines.Length >= 2 && long.TryParse(lines[1], out long ticks) &&
                Math.Abs(process.StartTime.ToUniversalTime().Ticks - ticks) > TimeSpan.TicksPerSecond)
                return null;
            return pid;
        }
        catch (ArgumentException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>What a run killed mid-write leaves: AtomicDirectory's .NAME.tmp-X / .NAME.old-X, the final save's .final-X, *.tmp files.</summary>
    static void RemoveLeftovers(string output)
    {
        foreach (var dir in Directory.EnumerateDirectories(output, ".*"))
        {
            var name = Path.GetFileName(dir);
            if (name.StartsWith(".final-", StringComparison.Ordinal) || name.Contains(".tmp-", StringComparison.Ordinal) || name.Contains(".old-", StringComparison.Ordinal))
                Directory.Delete(dir, recursive: true);
        }
        foreach (var file in new[] { "config.yaml.tmp", RunLog.MetricsFile + ".tmp" })
            if (File.Exists(Path.Combine(output, file))) File.Delete(Path.Combine(output, file));
    }

    // The flock file stays (empty, hidden) while the directory holds anything else: deleting it
    // could let a run that opened it just before take a lock on a file no longer there.
    sealed class Held(string output, string lockPath, bool created, FileStream flock) : IDisposable
    {
        bool released;

        public void Dispose()
        {
            if (released) return;
            released = true;
            try
            {
                File.Delete(lockPath);
                var flockPath = Path.Combine(output, FlockFile);
                bool empty = created && Directory.EnumerateFileSystemEntries(output).All(e => Path.GetFileName(e) == FlockFile);
                if (empty) File.Delete(flockPath);
                flock.Dispose();
                if (empty) Directory.Delete(output);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            finally
            {
                flock.Dispose();
            }
        }
    }
}
