using System.CommandLine;
using PostTrain.Generation;

namespace PostTrain.Cli.Commands;

/// <summary>
/// The sampling options shared by `generate` and `chat`. Options not given take the model's
/// generation_config.json values, as transformers' generate() does: its do_sample decides
/// greedy or sampling unless --temperature is given (0 = greedy) or another sampling option
/// (--top-p, --top-k, --min-p) asks for sampling; top_k defaults to 50 as in transformers.
/// </summary>
sealed class SamplingCli
{
    public readonly Option<int?> MaxNewTokens = new("--max-new-tokens") { Description = "Most new tokens per completion (default: generation_config.json's, else 256)" };
    public readonly Option<double?> Temperature = new("--temperature") { Description = "Sampling temperature; 0 = greedy (default: generation_config.json's do_sample/temperature)" };
    public readonly Option<double?> TopP = new("--top-p") { Description = "Nucleus sampling: keep the most likely tokens up to this probability, in (0, 1]" };
    public readonly Option<int?> TopK = new("--top-k") { Description = "Keep the k most likely tokens; 0 = off (default: generation_config.json's, else 50)" };
    public readonly Option<double?> MinP = new("--min-p") { Description = "Drop tokens below min-p times the top token's probability, in [0, 1]" };
    public readonly Option<double?> RepetitionPenalty = new("--repetition-penalty") { Description = "Penalise tokens already in prompt or completion (> 1 discourages repeats)" };
    public readonly Option<long> Seed = new("--seed") { Description = "Sampling seed: the same seed reproduces the same outputs", DefaultValueFactory = _ => 0 };
    public readonly Option<string[]> Stop = new("--stop") { Description = "Stop strings (repeatable): the text is cut before the first one", AllowMultipleArgumentsPerToken = true };

    public static SamplingCli Create() => new();

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { MaxNewTokens, Temperature, TopP, TopK, MinP, RepetitionPenalty, Seed, Stop })
            command.Options.Add(o);
    }

    public SamplingOptions Read(ParseResult result, GenerationConfig defaults)
    {
        var temperature = result.GetValue(Temperature);
        var topP = result.GetValue(TopP);
        var topK = result.GetValue(TopK);
        var minP = result.GetValue(MinP);
        bool sample = defaults.DoSample || topP is not null || topK is not null || minP is not null;
        return new SamplingOptions
        {
            MaxNewTokens = result.GetValue(MaxNewTokens) ?? defaults.MaxNewTokens ?? 256,
            Temperature = temperature ?? (sample ? defaults.Temperature : 0),
            TopP = topP ?? defaults.TopP,
            TopK = topK ?? defaults.TopK,
            MinP = minP ?? defaults.MinP,
            RepetitionPenalty = result.GetValue(RepetitionPenalty) ?? defaults.RepetitionPenalty,
            Seed = result.GetValue(Seed),
            Stop = result.GetValue(Stop) ?? [],
            EosTokenIds = defaults.EosTokenIds,
        };
    }
}
