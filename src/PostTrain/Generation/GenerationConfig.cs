using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;

namespace PostTrain.Generation;

/// <summary>
/// A model directory's generation_config.json: end-of-sequence ids and the sampling defaults
/// its authors chose (as transformers' GenerationConfig; absent keys take its defaults).
/// </summary>
public sealed record GenerationConfig
{
    /// <summary>eos_token_id (an int or a list); config.json's when the file has none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    public bool DoSample { get; init; }
    public double Temperature { get; init; } = 1.0;
    /// <summary>transformers' default is 50 (applied when sampling).</summary>
    public int TopK { get; init; } = 50;
    public double TopP { get; init; } = 1.0;
    public double MinP { get; init; }
    public double RepetitionPenalty { get; init; } = 1.0;
    public int? MaxNewTokens { get; init; }
    /// <summary>The keys generation_config.json sets (empty without the file): a server takes only those as its defaults, as vLLM does.</summary>
    public IReadOnlySet<string> Keys { get; init; } = new HashSet<string>();

    /// <summary>Reads DIR/generation_config.json if present; otherwise the defaults with config.json's eos ids.</summary>
    public static GenerationConfig Load(string dir, ModelConfig config)
    {
        var path = Path.Combine(dir, HfCheckpoint.GenerationConfigFile);
        if (!File.Exists(path)) return new GenerationConfig { EosTokenIds = config.EosTokenIds, PadTokenId = config.PadTokenId };
        JsonObject o;
        try
        {
            o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InputError($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InputError($"{path}: invalid JSON: {e.Message.Split('\n')[0]}");
        }
        var r = new ModelConfig.Reader(o, path);
        var eos = r.IntOrList("eos_token_id");
        return new GenerationConfig
        {
            EosTokenIds = eos.Count > 0 ? eos : config.EosTokenIds,
            PadTokenId = r.Int("pad_token_id") ?? config.PadTokenId,
            DoSample = r.Bool("do_sample") ?? false,
            Temperature = r.Double("temperature") ?? 1.0,
            TopK = r.Int("top_k") ?? 50,
            TopP = r.Double("top_p") ?? 1.0,
            MinP = r.Double("min_p") ?? 0.0,
            RepetitionPenalty = r.Double("repetition_penalty") ?? 1.0,
            MaxNewTokens = r.Int("max_new_tokens"),
            Keys = o.Select(kv => kv.Key).ToHashSet(StringComparer.Ordinal),
        };
    }
}
