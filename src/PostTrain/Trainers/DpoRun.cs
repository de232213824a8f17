using PostTrain.Data;
using PostTrain.Evaluation;
using PostTrain.Tokenization;
using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// A whole DPO run, as `posttrain dpo` does it: validate, load the preference data, tokenize as
/// TRL's DPOTrainer does, truncate, load the policy and its frozen reference (--ref-model; with
/// LoRA the base without adapters; else a second copy of --model), optionally score the data with
/// the reference once, then train on the shared loop.
/// <code>
/// DpoRun.Train(new DpoOptions { Model = "runs/sft", Data = "prefs.jsonl", Output = "runs/dpo", Beta = 0.1 }, Console.Out);
/// </code>
/// </summary>
public static class DpoRun
{
    /// <inheritdoc cref="SftRun.Train"/>
    public static TrainResult Train(DpoOptions options, TextWriter log, string? resumeFrom = null, CancellationToken stop = default)
    {
        options.RequirePaths();
        options.Validate();
        using var runLock = RunDirectory.Lock(options.Output!); // checked and taken before any work
        var (train, eval) = RunData.Load(options, p => PreferenceDataset.Load(p, options.SkipInvalid), d => d.Skipped, log);
        log.WriteLine($"Data: {train.Examples.Count} pairs, {train.Format}" + (eval is null ? "" : $"; eval: {eval.Examples.Count} pairs"));

        var template = train.Format.Conversational || eval?.Format.Conversational == true
            ? ChatTemplate.FromModelDirectory(options.Model!) : null;
        var tokenization = new DpoTokenization(HfTokenizer.FromDirectory(options.Model!), template, options.TemplateVariables());
        var trainPairs = Prepare(tokenization, train, options, options.Data!, log, "train");
        var evalPairs = eval is null ? null : Prepare(tokenization, eval, options, options.EvalData!, log, "eval");
        if (tokenization.PrefixMismatches > 0)
            log.WriteLine($"Warning: in {tokenization.PrefixMismatches} pairs the prompt's tokens are not a prefix of prompt + completion's; the completion starts after as many tokens as the prompt has (as TRL does)");

        var taskEvaluation = TrainingTaskEvaluation.FromOptions(options);
        using var model = PolicyModel.Load(options);
        ReferenceModel? reference = PolicyModel.Reference(options, model, options.RefModel);
        try
        {
            RunDirectory.Prepare(options.Output!, resumeFrom, DpoOptions.Settings.ToYaml(options), log);
            if (options.PrecomputeRefLogps)
            {
                log.WriteLine($"Scoring {trainPairs.Count} train" + (evalPairs is null ? "" : $" and {evalPairs.Count} eval") + " pairs with the reference");
                trainPairs = DpoMethod.PrecomputeReferenceLogps(reference, model, trainPairs, options.BatchSize);
                if (evalPairs is not null) evalPairs = DpoMethod.PrecomputeReferenceLogps(reference, model, evalPairs, options.BatchSize);
                reference.Dispose();
                reference = null;
            }
            var trainer = new Trainer<PreferencePair>(model, new DpoMethod(options, reference), trainPairs, evalPairs, options, options.Output!, options.Model);
            if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
            return trainer.Train(log, resumeFrom, stop);
        }
        finally
        {
            reference?.Dispose();
        }
    }

    /// <summary>Tokenize and truncate (keep_start to --max-length; pairs whose prompt fills it are dropped, as TRL does).</summary>
    public static IReadOnlyList<PreferencePair> Prepare(DpoTokenization tokenization, PreferenceDataset data, DpoOptions options, string path, TextWriter log, string split)
    {
        var pairs = data.Examples.Select(tokenization.Tokenize).ToList();
        int truncated = pairs.Count(p => Math.Max(p.ChosenLength, p.RejectedLength) > options.MaxLength);
        var kept = pairs.Select(p => p.Truncate(options.MaxLength)).OfType<PreferencePair>().ToList();
        int dropped = pairs.Count - kept.Count;
        if (truncated > 0)
            log.WriteLine($"Truncated {truncated - dropped} of {pairs.Count} {split} pairs to --max-length {options.MaxLength}" +
                          (dropped > 0 ? $"; dropped {dropped} whose prompt alone fills it" : ""));
        if (kept.Count == 0) throw new InputError($"{path}: no {split} pair has a completion token within --max-length {options.MaxLength}");
        return kept;
    }
}
