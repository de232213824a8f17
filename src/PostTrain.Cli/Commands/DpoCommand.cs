using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Tokenization;
using PostTrain.Trainers;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain dpo`: direct preference optimisation on the shared training loop.</summary>
public static class DpoCommand
{
    public static readonly SettingTable<DpoOptions> Table = new(
    [
        .. LoopSettings.For<DpoOptions>(),
        LoopSettings.S<DpoOptions>("ref-model", "Frozen reference model directory (default: a copy of --model)", typeof(string), o => o.RefModel, (o, v) => o with { RefModel = (string?)v }),
        LoopSettings.S<DpoOptions>("beta", "Deviation from the reference: higher beta, less deviation (IPO's tau)", typeof(double), o => o.Beta, (o, v) => o with { Beta = (double)v! }),
        LoopSettings.S<DpoOptions>("loss-type", "DPO loss", typeof(DpoLossType), o => o.LossType, (o, v) => o with { LossType = (DpoLossType)v! }, ["sigmoid", "robust", "ipo", "hinge"]),
        LoopSettings.S<DpoOptions>("label-smoothing", "Probability that a preference label is flipped, in [0, 0.5): conservative DPO (sigmoid), robust DPO", typeof(double), o => o.LabelSmoothing, (o, v) => o with { LabelSmoothing = (double)v! }),
        LoopSettings.S<DpoOptions>("rpo-alpha", "Add this times the NLL of the chosen completions (RPO; the paper uses 1.0)", typeof(double?), o => o.RpoAlpha, (o, v) => o with { RpoAlpha = (double?)v }),
        LoopSettings.S<DpoOptions>("precompute-ref-logps", "Score the train and eval sets with the reference once before training, then free it", typeof(bool), o => o.PrecomputeRefLogps, (o, v) => o with { PrecomputeRefLogps = (bool)v! }),
        LoopSettings.S<DpoOptions>("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
        LoopSettings.S<DpoOptions>("disable-dropout", "Set every dropout probability (LoRA's) to 0, as TRL's disable_dropout [default: true; --disable-dropout false keeps dropout]", typeof(bool), o => o.DisableDropout, (o, v) => o with { DisableDropout = (bool)v! }),
    ]);

    public static Command Create()
    {
        var command = new Command("dpo", "Direct preference optimisation: prefer the chosen completion to the rejected one, relative to a frozen reference");
        var settings = Table.AddTo(command, new DpoOptions());
        var resume = TrainingRuns.ResumeOption();
        command.Options.Add(resume);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var options = settings.Bind(result, new DpoOptions());
            options.RequirePaths();
            options.Validate();
            var resumeFrom = TrainingRuns.ResumeDirectory(result, resume, options.Output!);

            var train = PreferenceDataset.Load(options.Data!, options.SkipInvalid);
            if (train.Skipped > 0) stdout.WriteLine($"Skipped {train.Skipped} invalid records of {options.Data}");
            var eval = options.EvalData is null ? null : PreferenceDataset.Load(options.EvalData, options.SkipInvalid);
            if (eval?.Skipped > 0) stdout.WriteLine($"Skipped {eval.Skipped} invalid records of {options.EvalData}");
            stdout.WriteLine($"Data: {train.Examples.Count} pairs, {train.Format}" + (eval is null ? "" : $"; eval: {eval.Examples.Count} pairs"));

            var template = train.Format.Conversational || eval?.Format.Conversational == true
                ? ChatTemplate.FromModelDirectory(options.Model!) : null;
            var tokenization = new DpoTokenization(HfTokenizer.FromDirectory(options.Model!), template);
            var trainPairs = Prepare(tokenization, train, options, options.Data!, stdout, "train");
            var evalPairs = eval is null ? null : Prepare(tokenization, eval, options, options.EvalData!, stdout, "eval");
            if (tokenization.PrefixMismatches > 0)
                stdout.WriteLine($"Warning: in {tokenization.PrefixMismatches} pairs the prompt's tokens are not a prefix of prompt + completion's; the completion starts after as many tokens as the prompt has (as TRL does)");

            using var model = PolicyModel.Load(options);
            // --ref-model, else (LoRA) the base with a frozen copy of --adapter or with the adapters off, else the model loaded a second time.
            ReferenceModel? reference = PolicyModel.Reference(options, model, options.RefModel);
            try
            {
                var taskEvaluation = TrainingRuns.TaskEvaluation(options);
                TrainingRuns.PrepareOutput(options.Output!, resumeFrom is not null, Table.ToYaml(options));
                if (options.PrecomputeRefLogps)
                {
                    stdout.WriteLine($"Scoring {trainPairs.Count} train" + (evalPairs is null ? "" : $" and {evalPairs.Count} eval") + " pairs with the reference");
                    trainPairs = DpoMethod.PrecomputeReferenceLogps(reference, model, trainPairs, options.BatchSize);
                    if (evalPairs is not null) evalPairs = DpoMethod.PrecomputeReferenceLogps(reference, model, evalPairs, options.BatchSize);
                    reference.Dispose();
                    reference = null;
                }
                using var stop = TrainingRuns.CancelOnCtrlC(stdout);
                var trainer = new Trainer<PreferencePair>(model, new DpoMethod(options, reference), trainPairs, evalPairs, options, options.Output!, options.Model);
                if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
                var outcome = trainer.Train(stdout, resumeFrom, stop.Token);
                return outcome.Interrupted ? 130 : 0;
            }
            finally
            {
                reference?.Dispose();
            }
        }));
        return command;
    }

    /// <summary>Tokenize and truncate (keep_start to --max-length; pairs whose prompt fills it are dropped, as TRL does).</summary>
    static IReadOnlyList<PreferencePair> Prepare(DpoTokenization tokenization, PreferenceDataset data, DpoOptions options, string path, TextWriter log, string split)
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
