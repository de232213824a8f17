using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Evaluation;
using PostTrain.Generation;
using PostTrain.Rewards;
using PostTrain.Tokenization;
using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// A whole GRPO or RLOO run (<see cref="GrpoOptions.Algorithm"/>), as `posttrain grpo` / `rloo`
/// do it: validate, load the prompts, tokenize them as TRL does, build the reward functions,
/// load the policy (and the reference when the KL coefficient is positive), then sample, score
/// and train on the shared loop; --eval-data prompts are scored with the same rewards.
/// <code>
/// GrpoRun.Train(new GrpoOptions { Model = "runs/sft", Data = "gsm8k.jsonl", Output = "runs/grpo", Reward = "math,format" }, Console.Out);
/// </code>
/// </summary>
public static class GrpoRun
{
    /// <inheritdoc cref="SftRun.Train"/>
    public static TrainResult Train(GrpoOptions options, TextWriter log, string? resumeFrom = null, CancellationToken stop = default)
    {
        options.RequirePaths();
        options.Validate();
        var data = PromptDataset.Load(options.Data!, options.PromptField, options.SkipInvalid);
        if (data.Skipped > 0) log.WriteLine($"Skipped {data.Skipped} invalid records of {options.Data}");
        var evalData = options.EvalData is null ? null : PromptDataset.Load(options.EvalData, options.PromptField, options.SkipInvalid);
        if (evalData?.Skipped > 0) log.WriteLine($"Skipped {evalData.Skipped} invalid records of {options.EvalData}");
        log.WriteLine($"Data: {data.Examples.Count} prompts, {data.Format}" + (evalData is null ? "" : $"; eval: {evalData.Examples.Count} prompts"));
        var tokenizer = HfTokenizer.FromDirectory(options.Model!);
        var template = data.Format.Conversational || evalData?.Format.Conversational == true ? ChatTemplate.FromModelDirectory(options.Model!) : null;
        var config = HfCheckpoint.LoadConfig(options.Model!);
        int maxPrompt = Math.Min(options.MaxLength, config.MaxPositionEmbeddings - options.MaxCompletionLength);
        if (maxPrompt < 1) throw new InputError($"--max-completion-length: {options.MaxCompletionLength} leaves no room for a prompt in the model's context of {config.MaxPositionEmbeddings}");
        var prompts = new PromptTokenization(tokenizer, template, options.TemplateVariables(), options.PromptField, maxPrompt);
        var units = prompts.Tokenize(data, log, "train");
        var evalUnits = evalData is null ? null : prompts.Tokenize(evalData, log, "eval");

        var rewardNames = options.Reward.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (rewardNames.Contains("math"))
            foreach (var e in data.Examples.Concat(evalData?.Examples ?? []).Where(e => e.Row[options.AnswerField] is null))
                throw new InputError($"{e.Source}: {options.AnswerField}: missing (the math reward's reference answer; --answer-field names another field)");
        var rewardSettings = new RewardSettings { AnswerField = options.AnswerField, FormatPattern = options.FormatPattern, RewardModel = options.RewardModel };
        var functions = rewardNames.Select(n => BuiltInRewards.Create(n, rewardSettings)).ToList();
        try
        {
            var rewardSet = new RewardSet(functions, RewardSet.ParseWeights(options.RewardWeights));
            var eos = GenerationConfig.Load(options.Model!, config).EosTokenIds;
            var taskEvaluation = TrainingTaskEvaluation.FromOptions(options);
            using var model = PolicyModel.Load(options);
            using var reference = options.EffectiveBeta > 0 ? PolicyModel.Reference(options, model, options.RefModel) : null;
            RunDirectory.Prepare(options.Output!, resumeFrom is not null, GrpoOptions.Settings.ToYaml(options));
            var method = new GrpoMethod(options, rewardSet, reference, ids => tokenizer.Decode(ids, skipSpecialTokens: true), eos,
                Path.Combine(options.Output!, "completions.jsonl"));
            // The loop batches prompts (UnitsPerMicroBatch): --batch-size counts completions, G per prompt.
            var trainer = new Trainer<PromptUnit>(model, method, units, null, options, options.Output!, options.Model);
            if (evalUnits is not null) trainer.Evaluations.Add(m => method.EvaluatePrompts(m, evalUnits));
            if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
            return trainer.Train(log, resumeFrom, stop);
        }
        finally
        {
            foreach (var f in functions) (f as IDisposable)?.Dispose();
        }
    }
}
