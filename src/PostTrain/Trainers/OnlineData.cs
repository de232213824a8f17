using PostTrain.Checkpoints;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Rewards;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// What every online run (GRPO, RLOO, PPO) prepares before its model: the train and --eval-data
/// prompts, loaded, validated and tokenized as TRL does (<see cref="PromptTokenization"/>), the
/// reward functions (a row without the math reward's answer is an error before training), the
/// tokenizer and the end-of-sequence ids. Disposing it frees the reward functions (a reward model).
/// </summary>
public sealed class OnlineData : IDisposable
{
    readonly List<IRewardFunction> functions;

    OnlineData(List<IRewardFunction> functions) => this.functions = functions;

    public required IReadOnlyList<PromptUnit> Train { get; init; }
    public IReadOnlyList<PromptUnit>? Eval { get; init; }
    public required HfTokenizer Tokenizer { get; init; }
    public required RewardSet Rewards { get; init; }
    public required IReadOnlyList<int> EosTokenIds { get; init; }

    /// <summary>Token ids to the text the rewards read (special tokens skipped).</summary>
    public string Decode(IReadOnlyList<int> ids) => Tokenizer.Decode(ids, skipSpecialTokens: true);

    public static OnlineData Load(OnlineOptions options, TextWriter log)
    {
        var (data, evalData) = RunData.Load(options, p => PromptDataset.Load(p, options.PromptField, options.SkipInvalid), d => d.Skipped, log);
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
        var functions = new List<IRewardFunction>();
        try
        {
            foreach (var name in rewardNames) functions.Add(BuiltInRewards.Create(name, rewardSettings));
            return new OnlineData(functions)
            {
                Train = units, Eval = evalUnits, Tokenizer = tokenizer,
                Rewards = new RewardSet(functions, RewardSet.ParseWeights(options.RewardWeights)),
                EosTokenIds = GenerationConfig.Load(options.Model!, config).EosTokenIds,
            };
        }
        catch
        {
            foreach (var f in functions) (f as IDisposable)?.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var f in functions) (f as IDisposable)?.Dispose();
    }
}
