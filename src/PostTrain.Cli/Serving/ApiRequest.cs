using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Generation;

namespace PostTrain.Cli.Serving;

/// <summary>An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.</summary>
public sealed class ApiError(int status, string message, string? param = null, string type = "invalid_request_error", string? code = null) : Exception(message)
{
    public int Status => status;
    public string? Param => param;
    public string Type => type;
    public string? Code => code;

    public JsonObject Body() => new()
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    };

    public static ApiError Bad(string param, string message) => new(400, $"{param}: {message}", param);
}

/// <summary>
/// Reads the fields of a request body with OpenAI's and vLLM's names and meanings, each error
/// naming the field (400). Fields neither defines are ignored, as vLLM ignores them.
/// </summary>
public sealed class ApiRequest(JsonObject body)
{
    public JsonObject Body => body;

    public bool Has(string field) => body[field] is not null;

    public string? String(string field)
    {
        var node = body[field];
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
        throw ApiError.Bad(field, $"expected a string, got {node.ToJsonString()}");
    }

    public bool? Bool(string field)
    {
        var node = body[field];
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return v.GetValue<bool>();
        throw ApiError.Bad(field, $"expected true or false, got {node.ToJsonString()}");
    }

    public double? Double(string field)
    {
        var node = body[field];
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<double>(out var d) && double.IsFinite(d)) return d;
        throw ApiError.Bad(field, $"expected a number, got {node.ToJsonString()}");
    }

    public long? Long(string field)
    {
        var node = body[field];
        if (node is null) return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.Number)
        {
            if (v.TryGetValue<long>(out var l)) return l;
            if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) return (long)d;
        }
        throw ApiError.Bad(field, $"expected an integer, got {node.ToJsonString()}");
    }

    public int? Int(string field, int min = int.MinValue, int max = int.MaxValue)
    {
        var value = Long(field);
        if (value is null) return null;
        if (value < min || value > max)
            throw ApiError.Bad(field, max == int.MaxValue ? $"must be at least {min}, got {value}" : $"must be in [{min}, {max}], got {value}");
        return (int)value;
    }

    /// <summary>A string or a list of strings (stop).</summary>
    public IReadOnlyList<string> Strings(string field)
    {
        var node = body[field];
        switch (node)
        {
            case null: return [];
            case JsonValue v when v.GetValueKind() == JsonValueKind.String: return [v.GetValue<string>()];
            case JsonArray a:
                var list = new List<string>();
                foreach (var item in a)
                    if (item is JsonValue s && s.GetValueKind() == JsonValueKind.String) list.Add(s.GetValue<string>());
                    else throw ApiError.Bad(field, "expected a string or a list of strings");
                return list;
            default: throw ApiError.Bad(field, "expected a string or a list of strings");
        }
    }

    public int[]? IntList(string field)
    {
        var node = body[field];
        if (node is null) return null;
        if (node is not JsonArray a) throw ApiError.Bad(field, "expected a list of integers");
        return a.Select(n => n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out var i) ? i
            : throw ApiError.Bad(field, "expected a list of integers")).ToArray();
    }

    /// <summary>Fields we do not implement: an error when they ask for something, never silently ignored.</summary>
    public void Unsupported()
    {
        foreach (var field in new[] { "presence_penalty", "frequency_penalty" })
            if (Double(field) is { } d && d != 0) throw ApiError.Bad(field, "not supported by this server (use repetition_penalty)");
        if (body["logit_bias"] is JsonObject { Count: > 0 }) throw ApiError.Bad("logit_bias", "not supported by this server");
        if (body["suffix"] is not null) throw ApiError.Bad("suffix", "not supported by this server");
        if (body["response_format"] is JsonObject rf && rf["type"]?.ToString() is { } t && t != "text")
            throw ApiError.Bad("response_format", $"'{t}' is not supported by this server (only text)");
        if (body["guided_json"] is not null || body["guided_regex"] is not null || body["structured_outputs"] is not null)
            throw ApiError.Bad("structured_outputs", "guided decoding is not supported by this server");
        if (Bool("include_stop_str_in_output") == true) throw ApiError.Bad("include_stop_str_in_output", "not supported by this server");
    }

    /// <summary>
    /// The sampling options: the model's defaults, then the request's values. max_tokens
    /// (or max_completion_tokens) is <paramref name="maxTokens"/> when absent.
    /// </summary>
    public SamplingOptions Sampling(SamplingOptions defaults, int maxTokens, bool chat)
    {
        Unsupported();
        int n = Int("n", 1, 128) ?? 1;
        if (!chat && Int("best_of", 1) is { } bestOf && bestOf != n) throw ApiError.Bad("best_of", "must equal n (best_of is not supported)");
        var max = Int("max_completion_tokens", 0) ?? Int("max_tokens", 0) ?? maxTokens;
        var temperature = Double("temperature") ?? defaults.Temperature;
        if (temperature < 0) throw ApiError.Bad("temperature", $"must be at least 0, got {temperature}");
        var topP = Double("top_p") ?? defaults.TopP;
        if (!(topP > 0 && topP <= 1)) throw ApiError.Bad("top_p", $"must be in (0, 1], got {topP}");
        // vLLM: top_k -1 (or 0) turns it off.
        var topK = Int("top_k", -1) ?? defaults.TopK;
        var minP = Double("min_p") ?? defaults.MinP;
        if (!(minP >= 0 && minP <= 1)) throw ApiError.Bad("min_p", $"must be in [0, 1], got {minP}");
        var penalty = Double("repetition_penalty") ?? defaults.RepetitionPenalty;
        if (!(penalty > 0)) throw ApiError.Bad("repetition_penalty", $"must be positive, got {penalty}");
        var stop = Strings("stop");
        if (stop.Any(string.IsNullOrEmpty)) throw ApiError.Bad("stop", "stop strings must not be empty");
        IReadOnlyList<int> eos = defaults.EosTokenIds ?? [];
        if (Bool("ignore_eos") == true) eos = [];
        if (IntList("stop_token_ids") is { Length: > 0 } extra) eos = eos.Concat(extra).Distinct().ToList();
        if (temperature == 0 && n > 1) throw ApiError.Bad("n", "greedy decoding (temperature 0) gives the same completion every time: use n = 1 or sample");
        return defaults with
        {
            N = n, MaxNewTokens = max, Temperature = temperature, TopP = topP, TopK = Math.Max(0, topK), MinP = minP, RepetitionPenalty = penalty,
            Stop = stop, EosTokenIds = eos, Seed = Long("seed") ?? Random.Shared.NextInt64(),
        };
    }
}
