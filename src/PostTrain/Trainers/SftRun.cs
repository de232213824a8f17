using PostTrain.Data;
using PostTrain.Evaluation;
using PostTrain.Tokenization;
using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// A whole SFT run, as `posttrain sft` does it: validate the options, load and validate the data,
/// tokenize (chat template for conversations), truncate and pack, load the model (with LoRA when
/// asked), then train on the shared loop into <see cref="TrainingOptions.Output"/>.
/// <code>
/// var result = SftRun.Train(new SftOptions { Model = "Qwen3-0.6B", Data = "chat.jsonl", Output = "runs/sft", Lora = true }, Console.Out);
/// </code>
/// </summary>
public static class SftRun
{
    /// <param name="log">Progress and what was done to the data (skipped, truncated, packed, dropped).</param>
    /// <param name="resumeFrom">A checkpoint-STEP directory of this run to continue exactly; null: a new run.</param>
    /// <param name="stop">Cancelled: write a checkpoint after the current step and return (Interrupted).</param>
    public static TrainResult Train(SftOptions options, TextWriter log, string? resumeFrom = null, CancellationToken stop = default)
    {
        options.RequirePaths();
        options.Validate();
        using var runLock = RunDirectory.Lock(options.Output!); // checked and taken before any work
        var (train, eval) = RunData.Load(options, p => SftDataset.Load(p, options.SkipInvalid), d => d.Skipped, log);
        log.WriteLine($"Data: {train.Examples.Count} records, {train.Format}" + (eval is null ? "" : $"; eval: {eval.Examples.Count} records"));

        var template = train.Format.Conversational || eval?.Format.Conversational == true
            ? ChatTemplate.FromModelDirectory(options.Model!) : null;
        var tokenization = new SftTokenization(HfTokenizer.FromDirectory(options.Model!), template, options.AllTokens, options.TemplateVariables());
        var trainUnits = Prepare(tokenization, train, options, options.Data!, log, "train");
        var evalUnits = eval is null ? null : Prepare(tokenization, eval, options, options.EvalData!, log, "eval");

        var taskEvaluation = TrainingTaskEvaluation.FromOptions(options);
        using var model = PolicyModel.Load(options);
        RunDirectory.Prepare(options.Output!, resumeFrom, SftOptions.Settings.ToYaml(options), log);
        var trainer = new Trainer<TokenizedSequence>(model, new SftMethod(), trainUnits, evalUnits, options, options.Output!, options.Model);
        if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
        return trainer.Train(log, resumeFrom, stop);
    }

    /// <summary>
    /// Tokenize and truncate to --max-length (counting what was cut); sequences left with no
    /// trained token are dropped, with a count, as TRL does; pack when asked.
    /// </summary>
    public static IReadOnlyList<TokenizedSequence> Prepare(SftTokenization tokenization, SftDataset data, SftOptions options, string path, TextWriter log, string split)
    {
        var sequences = data.Examples.Select(tokenization.Tokenize).ToList();
        int truncated = sequences.Count(s => s.Length > options.MaxLength);
        if (truncated > 0) log.WriteLine($"Truncated {truncated} of {sequences.Count} {split} sequences to --max-length {options.MaxLength}");
        var units = sequences.Select(s => SequencePacking.Truncate(s, options.MaxLength)).Where(u => u.TrainedCount > 0).ToList();
        if (units.Count == 0) throw new InputError($"{path}: no {split} record has a token to train on");
        if (units.Count < sequences.Count)
            log.WriteLine($"Dropped {sequences.Count - units.Count} of {sequences.Count} {split} sequences with no token to train on" +
                          (truncated > 0 ? " (after truncation)" : ""));
        if (!options.Packing) return units;
        var packed = SequencePacking.BestFitDecreasing(units, options.MaxLength);
        log.WriteLine($"Packed {units.Count} {split} sequences into {packed.Count} rows of at most {options.MaxLength} tokens");
        return packed;
    }
}
