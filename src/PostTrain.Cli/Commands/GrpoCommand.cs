using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Rewards;
using PostTrain.Tokenization;
using PostTrain.Trainers;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain grpo` and `posttrain rloo`: online RL with verifiable rewards on the shared loop.</summary>
public static class GrpoCommand
{
    public static readonly SettingTable<GrpoOptions> Table = new(
    [
        .. LoopSettings.For<GrpoOptions>(),
        S("reward", "Reward functions, comma-separated: math (final answer vs the answer field), format (regex), model (a reward model)", typeof(string), o => o.Reward, (o, v) => o with { Reward = (string?)v ?? "math" }),
        S("reward-weights", "Weights of the reward functions, comma-separated (default: 1 each)", typeof(string), o => o.RewardWeights, (o, v) => o with { RewardWeights = (string?)v }),
        S("reward-model", "Sequence-classification checkpoint for --reward model", typeof(string), o => o.RewardModel, (o, v) => o with { RewardModel = (string?)v }),
        S("format-pattern", "Regex a completion must match in full for --reward format (default: <think>...</think> then an answer)", typeof(string), o => o.FormatPattern, (o, v) => o with { FormatPattern = (string?)v }),
        S("answer-field", "Dataset field with the reference answer (--reward math)", typeof(string), o => o.AnswerField, (o, v) => o with { AnswerField = (string?)v ?? "answer" }),
        S("prompt-field", "Dataset field with the prompt (e.g. question for GSM8K)", typeof(string), o => o.PromptField, (o, v) => o with { PromptField = (string?)v ?? "prompt" }),
        S("ref-model", "Frozen reference for the KL term (default: the initial model; with --lora its base, with --adapter its base and that adapter as loaded)", typeof(string), o => o.RefModel, (o, v) => o with { RefModel = (string?)v }),
        S("num-generations", "Completions sampled per prompt (G)", typeof(int), o => o.NumGenerations, (o, v) => o with { NumGenerations = (int)v! }),
        S("max-completion-length", "Most tokens per completion", typeof(int), o => o.MaxCompletionLength, (o, v) => o with { MaxCompletionLength = (int)v! }),
        S("temperature", "Sampling temperature (log-probabilities use the same)", typeof(double), o => o.Temperature, (o, v) => o with { Temperature = (double)v! }),
        S("top-p", "Nucleus sampling", typeof(double), o => o.TopP, (o, v) => o with { TopP = (double)v! }),
        S("top-k", "Top-k sampling (0: off)", typeof(int), o => o.TopK, (o, v) => o with { TopK = (int)v! }),
        S("num-iterations", "Optimisation steps on each batch of completions (importance ratios against sampling time)", typeof(int), o => o.NumIterations, (o, v) => o with { NumIterations = (int)v! }),
        S("epsilon", "Lower clipping bound: ratios below 1 - epsilon are clipped", typeof(double), o => o.Epsilon, (o, v) => o with { Epsilon = (double)v! }),
        S("epsilon-high", "Upper clipping bound 1 + epsilon-high (default: epsilon)", typeof(double?), o => o.EpsilonHigh, (o, v) => o with { EpsilonHigh = (double?)v }),
        S("beta", "KL coefficient to the reference (default: grpo 0, no reference loaded; rloo 0.05)", typeof(double?), o => o.Beta, (o, v) => o with { Beta = (double?)v }),
        S("loss-type", "Token-loss normalisation", typeof(GrpoLossType), o => o.LossType, (o, v) => o with { LossType = (GrpoLossType)v! }, ["grpo", "bnpo", "dr_grpo", "dapo"]),
        S("scale-rewards", "Divide advantages by the std of the group, of the batch, or not at all (grpo)", typeof(ScaleRewards), o => o.ScaleRewards, (o, v) => o with { ScaleRewards = (ScaleRewards)v! }, ["group", "batch", "none"]),
        S("mask-truncated-completions", "Leave completions cut at --max-completion-length out of the loss", typeof(bool), o => o.MaskTruncatedCompletions, (o, v) => o with { MaskTruncatedCompletions = (bool)v! }),
        S("log-completions-steps", "Append sampled prompts, completions and rewards to OUTPUT/completions.jsonl every N steps (0: never)", typeof(int), o => o.LogCompletionsSteps, (o, v) => o with { LogCompletionsSteps = (int)v! }),
        S("eval-temperature", "Sampling temperature for the --eval-data prompts (0: greedy)", typeof(double), o => o.EvalTemperature, (o, v) => o with { EvalTemperature = (double)v! }),
        S("eval-num-generations", "Completions per --eval-data prompt", typeof(int), o => o.EvalNumGenerations, (o, v) => o with { EvalNumGenerations = (int)v! }),
        S("skip-invalid", "Drop invalid records (and say how many) instead of failing", typeof(bool), o => o.SkipInvalid, (o, v) => o with { SkipInvalid = (bool)v! }),
        S("disable-dropout", "Set every dropout probability (LoRA's) to 0, as TRL's disable_dropout [default: false, as TRL's GRPOConfig and RLOOConfig]", typeof(bool), o => o.DisableDropout, (o, v) => o with { DisableDropout = (bool)v! }),
    ]);

    static Setting<GrpoOptions> S(string name, string description, Type type, Func<GrpoOptions, object?> get, Func<GrpoOptions, object?, GrpoOptions> set, string[]? choices = null) =>
        LoopSettings.S(name, description, type, get, set, choices);

    public static Command Create(OnlineAlgorithm algorithm)
    {
        var name = algorithm == OnlineAlgorithm.Grpo ? "grpo" : "rloo";
        var command = new Command(name, algorithm == OnlineAlgorithm.Grpo
            ? "GRPO: sample G completions per prompt, score them with rewards, move toward the better ones of each group"
            : "RLOO: online RL with a leave-one-out baseline (each reward against the mean of its prompt's other samples)");
        var defaults = new GrpoOptions { Algorithm = algorithm };
        var settings = Table.AddTo(command, defaults);
        var resume = TrainingRuns.ResumeOption();
        command.Options.Add(resume);
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var options = settings.Bind(result, defaults);
            options.RequirePaths();
            options.Validate();
            var resumeFrom = TrainingRuns.ResumeDirectory(result, resume, options.Output!);

            var data = PromptDataset.Load(options.Data!, options.PromptField, options.SkipInvalid);
            if (data.Skipped > 0) stdout.WriteLine($"Skipped {data.Skipped} invalid records of {options.Data}");
            var evalData = options.EvalData is null ? null : PromptDataset.Load(options.EvalData, options.PromptField, options.SkipInvalid);
            stdout.WriteLine($"Data: {data.Examples.Count} prompts, {data.Format}" + (evalData is null ? "" : $"; eval: {evalData.Examples.Count} prompts"));
            var tokenizer = HfTokenizer.FromDirectory(options.Model!);
            var template = data.Format.Conversational || evalData?.Format.Conversational == true ? ChatTemplate.FromModelDirectory(options.Model!) : null;
            var config = HfCheckpoint.LoadConfig(options.Model!);
            int maxPrompt = Math.Min(options.MaxLength, config.MaxPositionEmbeddings - options.MaxCompletionLength);
            if (maxPrompt < 1) throw new InputError($"--max-completion-length: {options.MaxCompletionLength} leaves no room for a prompt in the model's context of {config.MaxPositionEmbeddings}");
            List<PromptUnit> Units(PromptDataset set, string split)
            {
                int truncated = 0;
                var units = set.Examples.Select((e, i) =>
                {
                    // As TRL: the chat template with the generation prompt, tokenized without added special tokens.
                    var text = e.Messages is null ? e.Text! : Prompts.RenderChat(template!, e.Messages, e.Tools, null);
                    var ids = tokenizer.Encode(text);
                    if (ids.Length == 0) throw new InputError($"{e.Source}: {options.PromptField}: the prompt has no tokens");
                    if (ids.Length > maxPrompt)
                    {
                        truncated++;
                        ids = ids[^maxPrompt..]; // keep the end, as TRL's max_prompt_length does
                    }
                    return new PromptUnit(i, ids, text, e);
                }).ToList();
                if (truncated > 0) stdout.WriteLine($"Truncated {truncated} {split} prompts to their last {maxPrompt} tokens (--max-length, and room for --max-completion-length)");
                return units;
            }
            var units = Units(data, "train");
            var evalUnits = evalData is null ? null : Units(evalData, "eval");

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
                var taskEvaluation = TrainingRuns.TaskEvaluation(options);
                TrainingRuns.PrepareOutput(options.Output!, resumeFrom is not null, Table.ToYaml(options));
                using var model = PolicyModel.Load(options);
                using var reference = options.EffectiveBeta > 0 ? PolicyModel.Reference(options, model, options.RefModel) : null;
                var method = new GrpoMethod(options, rewardSet, reference, ids => tokenizer.Decode(ids, skipSpecialTokens: true), eos,
                    Path.Combine(options.Output!, "completions.jsonl"));
                using var stop = TrainingRuns.CancelOnCtrlC(stdout);
                // The loop batches prompts (UnitsPerMicroBatch): --batch-size counts completions, G per prompt.
                var trainer = new Trainer<PromptUnit>(model, method, units, null, options, options.Output!, options.Model);
                if (evalUnits is not null) trainer.Evaluations.Add(m => method.EvaluatePrompts(m, evalUnits));
                if (taskEvaluation is not null) trainer.Evaluations.Add(taskEvaluation.Evaluate);
                var outcome = trainer.Train(stdout, resumeFrom, stop.Token);
                return outcome.Interrupted ? 130 : 0;
            }
            finally
            {
                foreach (var f in functions) (f as IDisposable)?.Dispose();
            }
        }));
        return command;
    }
}
