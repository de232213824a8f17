namespace PostTrain.Training;

/// <summary>A training run's output directory: a new run's checks, its config.yaml, and the checkpoint a resume continues from.</summary>
public static class RunDirectory
{
    /// <summary>
    /// A new run needs an output directory without an earlier run in it (resume continues one);
    /// the effective settings are written to OUTPUT/config.yaml (temporary file, then renamed).
    /// </summary>
    public static void Prepare(string output, bool resuming, string settingsYaml)
    {
        if (!resuming && Directory.Exists(output) &&
            (File.Exists(Path.Combine(output, RunLog.MetricsFile)) || Trainer<object>.Checkpoints(output).Count > 0))
            throw new InputError($"--output: {output} already holds a run; continue it with --resume or choose another directory");
        Directory.CreateDirectory(output);
        var path = Path.Combine(output, "config.yaml");
        File.WriteAllText(path + ".tmp", settingsYaml);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>The latest checkpoint-STEP directory of a run (what --resume without a value continues).</summary>
    public static string LatestCheckpoint(string output) =>
        Trainer<object>.Checkpoints(output).LastOrDefault().Path
        ?? throw new InputError($"--resume: no checkpoint-STEP directory in {output}");
}
