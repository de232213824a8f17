using System.CommandLine;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>A training verb: its declared settings as options, --resume, Ctrl-C, and the library's run.</summary>
public static class TrainingRuns
{
    /// <summary>
    /// The verb <paramref name="name"/>: binds <paramref name="table"/> over
    /// <paramref name="defaults"/> (then --config, then the command line) and calls
    /// <paramref name="run"/>; exit code 0, or 130 when Ctrl-C stopped it after a checkpoint.
    /// </summary>
    public static Command Command<TOptions>(string name, string description, SettingTable<TOptions> table, TOptions defaults,
        Func<TOptions, TextWriter, string?, CancellationToken, TrainResult> run) where TOptions : TrainingOptions
    {
        var command = new Command(name, description);
        var settings = table.AddTo(command, defaults);
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue a run: from its latest checkpoint (no value) or from the checkpoint directory given",
            Arity = ArgumentArity.ZeroOrOne,
        };
        command.Options.Add(resume);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var options = settings.Bind(result, defaults);
            options.RequirePaths();
            string? resumeFrom = null;
            if (result.GetResult(resume) is not null)
                resumeFrom = result.GetValue(resume) is { Length: > 0 } given ? given : RunDirectory.LatestCheckpoint(options.Output!);
            using var stop = new CtrlC(stdout);
            return run(options, stdout, resumeFrom, stop.Token).Interrupted ? 130 : 0;
        }));
        return command;
    }

    /// <summary>The first Ctrl-C asks the trainer to write a checkpoint and stop; a second one ends the process.</summary>
    sealed class CtrlC : IDisposable
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
            log.WriteLine("Stopping at the next safe point: after the step in progress, with a checkpoint (before the first step if still loading; after the final save if saving). Ctrl-C again to quit now");
            cts.Cancel();
        }

        public void Dispose()
        {
            Console.CancelKeyPress -= OnCancel;
            cts.Dispose();
        }
    }
}
