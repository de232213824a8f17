using PostTrain.Evaluation;
using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// A whole PPO run, as `posttrain ppo` does it: validate, load the prompts and rewards
/// (<see cref="OnlineData"/>), the policy, its frozen reference and the value model, then roll
/// out, score and train policy and value model together on the shared loop. OUTPUT holds the
/// policy (Hugging Face layout or PEFT adapter) and OUTPUT/value_model (sequence classification).
/// <code>
/// PpoRun.Train(new PpoOptions { Model = "runs/sft", Data = "prompts.jsonl", Output = "runs/ppo", Reward = "model", RewardModel = "runs/rm" }, Console.Out);
/// </code>
/// </summary>
public static class PpoRun
{
    /// <inheritdoc cref="SftRun.Train"/>
    public static TrainResult Train(PpoOptions options, TextWriter log, string? resumeFrom = null, CancellationToken stop = default)
    {
        options.RequirePaths();
        options.Validate();
        using var runLock = RunDirectory.Lock(options.Output!); // checked and taken before any work
        using var data = OnlineData.Load(options, log);
        var taskEvaluation = TrainingTaskEvaluation.FromOptions(options);
        using var model = PolicyModel.Load(options);
        using var reference = options.KlCoef > 0 ? PolicyModel.Reference(options, model, options.RefModel) : null;
        var valueDir = options.ValueModel ?? options.RewardModel ?? options.Model!;
        log.Write("Value model: ");
        using var value = RewardRun.LoadClassifier(valueDir, options.Seed, TorchSharp.torch.ScalarType.Float32, log);
        if (value.Config.VocabSize != model.Config.VocabSize)
            throw new InputError($"{Path.Combine(valueDir, Checkpoints.HfCheckpoint.ConfigFile)}: vocab_size: the value model has {value.Config.VocabSize} tokens, the policy {model.Config.VocabSize}; it reads the policy's token ids");
        RunDirectory.Prepare(options.Output!, resumeFrom, PpoOptions.Settings.ToYaml(options), log);
        using var remote = Remote.RemoteCompletionSampler.For(options);
        var rollouts = new Rollouts(data.Rewards, data.Decode, data.EosTokenIds, reference, remote);
        var method = new PpoMethod(options, rollouts, value, data.Tokenizer.PadTokenId ?? data.Tokenizer.EosTokenId, Path.Combine(options.Output!, "completions.jsonl"));
        var trainer = new Trainer<PromptUnit>(model, method, data.Train, null, options, options.Output!, options.Model);
        if (data.Eval is { } evalUnits) trainer.Evaluations.Add(m => method.EvaluatePrompts(m, evalUnits));
        if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
        return trainer.Train(log, resumeFrom, stop);
    }
}
