using System.CommandLine;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>What every training command does around its trainer: output directory, resume, Ctrl-C.</summary>
public static class TrainingRuns
{
    /// <summary>--eval-tasks read and checked before any training (null when not given).</summary>
    public static PostTrain.Evaluation.TrainingTaskEvaluation? TaskEvaluation(TrainingOptions options) =>
        options.EvalTasks is null ? null : new(options.EvalTasks, options.EvalTasksLimit, options.Model!, applyChatTemplate: options.EvalApplyChatTemplate);

    public static Option<string?> ResumeOption() => new("--resume")
    {
        Description = "Continue a run: from its latest checkpoint (no value) or from the checkpoint directory given",
        Arity = ArgumentArity.ZeroOrOne,
    };

    /// <summary>The checkpoint to resume from, or null when --resume was not given.</summary>
    public static string? ResumeDirectory(ParseResult result, Option<string?> resume, string output)
    {
        var given = result.GetResult(resume);
        if (given is null) return null;
        var value = result.GetValue(resume);
        if (!string.IsNullOrEmpty(value)) return value;
        var latest = Trainer<object>.Checkpoints(output).LastOrDefault();
        if (latest.Path is null) throw new InputError($"--resume: no checkpoint-STEP directory in {output}");
        return latest.Path;
    }

    /// <summary>
    /// A new run needs an output directory without an earlier run in it (resume continues one);
    /// the effective settings are written to OUTPUT/config.yaml.
    /// </summary>
    public static void PrepareOutput(string output, bool resuming, string settingsYaml)
    {
        if (!resuming && Directory.Exists(output) &&
            (File.Exists(Path.Combine(output, RunLog.MetricsFile)) || Trainer<object>.Checkpoints(output).Count > 0))
            throw new InputError($"--output: {output} already holds a run; continue it with --resume or choose another directory");
        Directory.CreateDirectory(output);
        var path = Path.Combine(output, "config.yaml");
        File.WriteAllText(path + ".tmp", settingsYaml);
        File.Move(path + ".tmp", path, overwrite: true);
    }

    /// <summary>The first Ctrl-C asks the trainer to write a checkpoint and stop; a second one ends the process.</summary>
    public static CtrlC CancelOnCtrlC(TextWriter log) => new(log);

    public sealed class CtrlC : IDisposable
    {
        readonly CancellationTokenSource cts = new();
        readonly TextWriter log;

        public CtrlC(TextWriter log)
        {
            this.log = log;
            Console.CancelKeyPress += OnCancel;
        }

        public CancellationToken Token => cts.Token;

        void OnCancel(object? sender, ConsoleCancelEventArgs e)
        {
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            log.WriteLine("Stopping after this step: writing a checkpoint (Ctrl-C again to quit now)");
            cts.Cancel();
        }

        public void Dispose()
        {
            Console.CancelKeyPress -= OnCancel;
            cts.Dispose();
        }
    }
}
