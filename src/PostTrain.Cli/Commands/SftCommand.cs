using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Tokenization;
using PostTrain.Trainers;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain sft`: supervised fine-tuning on the shared training loop.</summary>
public static class SftCommand
{
    public static readonly SettingTable<SftOptions> Table = new(
    [
        .. LoopSettings.For<SftOptions>(),
        LoopSettings.S<SftOptions>("packing", "Pack sequences into rows of --max-length (best-fit decreasing) instead of padding", typeof(bool), o => o.Packing, (o, v) => o with { Packing = (bool)v! }),
        LoopSettings.S<SftOptions>("all-tokens", "Train on every token, not only completions / assistant turns", typeof(bool), o => o.AllTokens, (o, v) => o with { AllTokens = (bool)v! }),
        LoopSettings.S<SftOptions>("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
    ]);

    public static Command Create()
    {
        var command = new Command("sft", "Supervised fine-tuning: imitate completions / assistant turns (loss on those tokens only)");
        var settings = Table.AddTo(command, new SftOptions());
        var resume = TrainingRuns.ResumeOption();
        command.Options.Add(resume);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var options = settings.Bind(result, new SftOptions());
            options.RequirePaths();
            options.Validate();
            var resumeFrom = TrainingRuns.ResumeDirectory(result, resume, options.Output!);

            var train = SftDataset.Load(options.Data!, options.SkipInvalid);
            if (train.Skipped > 0) stdout.WriteLine($"Skipped {train.Skipped} invalid records of {options.Data}");
            var eval = options.EvalData is null ? null : SftDataset.Load(options.EvalData, options.SkipInvalid);
            stdout.WriteLine($"Data: {train.Examples.Count} records, {train.Format}" + (eval is null ? "" : $"; eval: {eval.Examples.Count} records"));

            var template = train.Format.Conversational || eval?.Format.Conversational == true
                ? ChatTemplate.FromModelDirectory(options.Model!) : null;
            var tokenization = new SftTokenization(HfTokenizer.FromDirectory(options.Model!), template, options.AllTokens);
            var trainUnits = Prepare(tokenization, train, options, stdout, "train");
            var evalUnits = eval is null ? null : Prepare(tokenization, eval, options, stdout, "eval");

            var taskEvaluation = TrainingRuns.TaskEvaluation(options);
            TrainingRuns.PrepareOutput(options.Output!, resumeFrom is not null, Table.ToYaml(options));
            using var model = PolicyModel.Load(options);
            using var stop = TrainingRuns.CancelOnCtrlC(stdout);
            var trainer = new Trainer<TokenizedSequence>(model, new SftMethod(), trainUnits, evalUnits, options, options.Output!, options.Model);
            if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
            var outcome = trainer.Train(stdout, resumeFrom, stop.Token);
            return outcome.Interrupted ? 130 : 0;
        }));
        return command;
    }

    /// <summary>Tokenize, truncate (counting what was cut) and pack when asked.</summary>
    static IReadOnlyList<TokenizedSequence> Prepare(SftTokenization tokenization, SftDataset data, SftOptions options, TextWriter log, string split)
    {
        var sequences = data.Examples.Select(tokenization.Tokenize).ToList();
        int truncated = sequences.Count(s => s.Length > options.MaxLength);
        if (truncated > 0) log.WriteLine($"Truncated {truncated} of {sequences.Count} {split} sequences to --max-length {options.MaxLength}");
        var units = sequences.Select(s => SequencePacking.Truncate(s, options.MaxLength)).ToList();
        if (units.All(u => u.TrainedCount == 0))
            throw new InputError($"{options.Data}: no {split} record has a token to train on");
        if (!options.Packing) return units;
        var packed = SequencePacking.BestFitDecreasing(units, options.MaxLength);
        log.WriteLine($"Packed {units.Count} {split} sequences into {packed.Count} rows of at most {options.MaxLength} tokens");
        return packed;
    }
}
