using PostTrain.Evaluation;
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
        using var runLock = RunDirectory.Lock(options.Output!); // checked and taken before any work
        using var data = OnlineData.Load(options, log);
        var taskEvaluation = TrainingTaskEvaluation.FromOptions(options);
        using var model = PolicyModel.Load(options);
        using var reference = options.EffectiveBeta > 0 ? PolicyModel.Reference(options, model, options.RefModel) : null;
        RunDirectory.Prepare(options.Output!, resumeFrom, GrpoOptions.Settings.ToYaml(options), log);
        using var remote = Remote.RemoteCompletionSampler.For(options);
        var method = new GrpoMethod(options, data.Rewards, reference, data.Decode, data.EosTokenIds, Path.Combine(options.Output!, "completions.jsonl"), remote);
        // The loop batches prompts (UnitsPerMicroBatch): --batch-size counts completions, G per prompt.
        var trainer = new Trainer<PromptUnit>(model, method, data.Train, null, options, options.Output!, options.Model);
        if (data.Eval is { } evalUnits) trainer.Evaluations.Add(m => method.EvaluatePrompts(m, evalUnits));
        if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
        return trainer.Train(log, resumeFrom, stop);
    }
}
