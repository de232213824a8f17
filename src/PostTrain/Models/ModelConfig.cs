using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Models;

/// <summary>The architectures PostTrain implements, by their config.json model_type.</summary>
public enum Architecture { Qwen2, Qwen3, Llama }

/// <summary>RoPE frequency scaling, as transformers' rope_scaling / rope_parameters describe it.</summary>
public sealed record RopeScaling(
    string Type,
    double Factor,
    double LowFreqFactor,
    double HighFreqFactor,
    int OriginalMaxPositionEmbeddings);

/// <summary>
/// The Hugging Face config.json of a Qwen2/Qwen3/Llama causal LM: the fields the model math
/// needs, typed, with transformers' defaults for each architecture. Every other key of the file
/// is kept in <see cref="Raw"/> and written back unchanged by <see cref="ToJson"/>.
/// </summary>
public sealed class ModelConfig
{
    public Architecture Architecture { get; init; }
    public int VocabSize { get; init; }
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumHiddenLayers { get; init; }
    public int NumAttentionHeads { get; init; }
    public int NumKeyValueHeads { get; init; }
    public int HeadDim { get; init; }
    public int MaxPositionEmbeddings { get; init; }
    public double RmsNormEps { get; init; }
    public double RopeTheta { get; init; }
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Bias on q/k/v (Qwen2 always; Qwen3 and Llama when attention_bias).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on o_proj (Qwen3 and Llama when attention_bias; never Qwen2).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Bias on gate/up/down (Llama's mlp_bias).</summary>
    public bool MlpBias { get; init; }
    /// <summary>Per-head RMSNorm on q and k before RoPE (Qwen3).</summary>
    public bool QkNorm => Architecture == Architecture.Qwen3;
    public double InitializerRange { get; init; } = 0.02;
    public int? BosTokenId { get; init; }
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];
    public int? PadTokenId { get; init; }
    /// <summary>config.json's torch_dtype (or dtype): the dtype the checkpoint was saved in.</summary>
    public string? TorchDtype { get; init; }

    /// <summary>All keys as read (or as <see cref="Create"/> made them).</summary>
    public JsonObject Raw { get; init; } = new();

    public string ModelType => ModelTypeOf(Architecture);

    public string ArchitectureClass => ArchClass(Architecture);

    public static Architecture ParseArchitecture(string modelType, string? file = null, string field = "model_type") =>
        modelType switch
        {
            "qwen2" => Architecture.Qwen2,
            "qwen3" => Architecture.Qwen3,
            "llama" => Architecture.Llama,
            _ => throw InputError.At(file, null, field,
                $"unsupported model type '{modelType}' (supported: qwen2, qwen3, llama)"),
        };

    /// <summary>Reads config.json; a missing or malformed key is an error naming the file and key.</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
        JsonObject raw;
        try
        {
            raw = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                  ?? throw new InputError($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InputError($"{path}: invalid JSON at line {e.LineNumber + 1}: {FirstLine(e.Message)}");
        }
        return FromJson(raw, path);
    }

    public static ModelConfig FromJson(JsonObject raw, string file = "config.json")
    {
        var r = new Reader(raw, file);
        var arch = ParseArchitecture(r.String("model_type") ?? throw r.Missing("model_type"), file);
        int hidden = r.Int("hidden_size") ?? throw r.Missing("hidden_size");
        int heads = r.Int("num_attention_heads") ?? throw r.Missing("num_attention_heads");
        int kvHeads = r.Int("num_key_value_heads") ?? heads;
        int headDim = r.Int("head_dim") ?? (arch == Architecture.Qwen3 ? 128 : hidden / heads);
        if (heads <= 0 || hidden <= 0) throw r.Bad("num_attention_heads", "must be positive");
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw r.Bad("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads {heads}");
        if (arch != Architecture.Qwen3 && r.Int("head_dim") is null && hidden % heads != 0)
            throw r.Bad("hidden_size", $"{hidden} is not a multiple of num_attention_heads {heads}");
        if (headDim % 2 != 0) throw r.Bad("head_dim", "must be even for RoPE");

        var act = r.String("hidden_act") ?? "silu";
        if (act != "silu") throw r.Bad("hidden_act", $"'{act}' is not supported (only silu)");
        if (r.Bool("use_sliding_window") == true)
            throw r.Bad("use_sliding_window", "sliding-window attention is not supported");

        bool attentionBias = r.Bool("attention_bias") ?? false;
        int maxPositions = r.Int("max_position_embeddings") ?? (arch == Architecture.Llama ? 2048 : 32768);
        var (theta, scaling) = ReadRope(r, maxPositions);

        // Sizes that no model can have: libtorch would fail on them with its own message.
        foreach (var (key, min) in new[] { ("vocab_size", 1), ("intermediate_size", 1), ("num_hidden_layers", 0), ("head_dim", 2) })
            if (r.Int(key) is { } size && size < min)
                throw r.Bad(key, min == 0 ? $"must not be negative, got {size}" : $"must be positive, got {size}");
        return new ModelConfig
        {
            Architecture = arch,
            VocabSize = r.Int("vocab_size") ?? throw r.Missing("vocab_size"),
            HiddenSize = hidden,
            IntermediateSize = r.Int("intermediate_size") ?? throw r.Missing("intermediate_size"),
            NumHiddenLayers = r.Int("num_hidden_layers") ?? throw r.Missing("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            MaxPositionEmbeddings = maxPositions,
            RmsNormEps = r.Double("rms_norm_eps") ?? 1e-6,
            RopeTheta = theta,
            RopeScaling = scaling,
            TieWordEmbeddings = r.Bool("tie_word_embeddings") ?? false,
            QkvBias = arch == Architecture.Qwen2 || attentionBias,
            OutputBias = arch != Architecture.Qwen2 && attentionBias,
            MlpBias = arch == Architecture.Llama && (r.Bool("mlp_bias") ?? false),
            InitializerRange = r.Double("initializer_range") ?? 0.02,
            BosTokenId = r.Int("bos_token_id"),
            EosTokenIds = r.IntOrList("eos_token_id"),
            PadTokenId = r.Int("pad_token_id"),
            TorchDtype = r.String("torch_dtype") ?? r.String("dtype"),
            Raw = raw,
        };
    }

    // As transformers' rope standardisation: the RoPE dict is rope_scaling when present, else
    // rope_parameters (v5); a rope_theta inside it wins over the flat key; "type" is the legacy
    // name of "rope_type".
    static (double Theta, RopeScaling? Scaling) ReadRope(Reader r, int maxPositions)
    {
        const double defaultTheta = 10000.0;
        var (dict, name) = r.Object("rope_scaling") is { } scaling ? (scaling, "rope_scaling")
            : r.Object("rope_parameters") is { } parameters ? (parameters, "rope_parameters") : (null, "");
        if (dict is null) return (r.Double("rope_theta") ?? defaultTheta, null);
        var d = new Reader(dict, r.File, name + ".");
        return (d.Double("rope_theta") ?? r.Double("rope_theta") ?? defaultTheta, ReadScaling(d, dict, maxPositions));
    }

    static RopeScaling? ReadScaling(Reader s, JsonObject node, int maxPositions)
    {
        var type = s.String("rope_type") ?? s.String("type") ?? "default";
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling(type, s.Double("factor") ?? throw s.Missing("factor"), 0, 0, 0);
            case "llama3":
                return new RopeScaling(type,
                    s.Double("factor") ?? throw s.Missing("factor"),
                    s.Double("low_freq_factor") ?? throw s.Missing("low_freq_factor"),
                    s.Double("high_freq_factor") ?? throw s.Missing("high_freq_factor"),
                    s.Int("original_max_position_embeddings") ?? maxPositions);
            default:
                throw s.Bad(node.ContainsKey("rope_type") ? "rope_type" : "type",
                    $"RoPE type '{type}' is not supported (supported: default, linear, llama3)");
        }
    }

    /// <summary>
    /// A config for a new model with transformers' keys for the architecture (as its
    /// PretrainedConfig.to_dict() writes them), so that transformers accepts the file unchanged.
    /// </summary>
    public static ModelConfig Create(Architecture arch, int vocabSize, int hiddenSize, int intermediateSize,
        int layers, int heads, int kvHeads, int? headDim = null, int maxPositions = 32768,
        double ropeTheta = 10000.0, RopeScaling? ropeScaling = null, double rmsNormEps = 1e-6,
        bool tieWordEmbeddings = false, int? bosTokenId = null, IReadOnlyList<int>? eosTokenIds = null,
        string torchDtype = "float32")
    {
        int hd = headDim ?? hiddenSize / heads;
        var raw = new JsonObject
        {
            ["architectures"] = new JsonArray(ArchClass(arch)),
            ["attention_dropout"] = 0.0,
        };
        if (arch != Architecture.Qwen2) raw["attention_bias"] = false;
        raw["bos_token_id"] = bosTokenId;
        raw["eos_token_id"] = eosTokenIds is null || eosTokenIds.Count == 0 ? null
            : eosTokenIds.Count == 1 ? eosTokenIds[0] : new JsonArray(eosTokenIds.Select(i => (JsonNode)i).ToArray());
        if (arch != Architecture.Qwen2 || hd != hiddenSize / heads) raw["head_dim"] = hd;
        raw["hidden_act"] = "silu";
        raw["hidden_size"] = hiddenSize;
        raw["initializer_range"] = 0.02;
        raw["intermediate_size"] = intermediateSize;
        raw["max_position_embeddings"] = maxPositions;
        if (arch != Architecture.Llama) raw["max_window_layers"] = layers;
        if (arch == Architecture.Llama) raw["mlp_bias"] = false;
        raw["model_type"] = ModelTypeOf(arch);
        raw["num_attention_heads"] = heads;
        raw["num_hidden_layers"] = layers;
        raw["num_key_value_heads"] = kvHeads;
        if (arch == Architecture.Llama) raw["pretraining_tp"] = 1;
        raw["rms_norm_eps"] = rmsNormEps;
        raw["rope_scaling"] = ropeScaling is null ? null : new JsonObject
        {
            ["factor"] = ropeScaling.Factor,
            ["high_freq_factor"] = ropeScaling.HighFreqFactor,
            ["low_freq_factor"] = ropeScaling.LowFreqFactor,
            ["original_max_position_embeddings"] = ropeScaling.OriginalMaxPositionEmbeddings,
            ["rope_type"] = ropeScaling.Type,
        };
        raw["rope_theta"] = ropeTheta;
        if (arch != Architecture.Llama)
        {
            raw["sliding_window"] = null;
            raw["use_sliding_window"] = false;
        }
        raw["tie_word_embeddings"] = tieWordEmbeddings;
        raw["torch_dtype"] = torchDtype;
        raw["transformers_version"] = "4.57.1";
        raw["use_cache"] = true;
        raw["vocab_size"] = vocabSize;
        return FromJson(raw);
    }

    static string ArchClass(Architecture a) => a switch
    {
        Architecture.Qwen2 => "Qwen2ForCausalLM",
        Architecture.Qwen3 => "Qwen3ForCausalLM",
        _ => "LlamaForCausalLM",
    };

    static string ModelTypeOf(Architecture a) => a switch
    {
        Architecture.Qwen2 => "qwen2",
        Architecture.Qwen3 => "qwen3",
        _ => "llama",
    };

    /// <summary>config.json text: the raw keys, with torch_dtype set to the dtype being saved.</summary>
    public string ToJson(string? torchDtype = null)
    {
        var copy = (JsonObject)Raw.DeepClone();
        if (torchDtype is not null)
        {
            if (copy.ContainsKey("dtype")) copy["dtype"] = torchDtype;
            else copy["torch_dtype"] = torchDtype;
        }
        return copy.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>Number of parameters of the model this config describes.</summary>
    public long ParameterCount()
    {
        long h = HiddenSize, q = (long)NumAttentionHeads * HeadDim, kv = (long)NumKeyValueHeads * HeadDim;
        long attn = h * q + 2 * h * kv + q * h + (QkvBias ? q + 2 * kv : 0) + (OutputBias ? h : 0)
                    + (QkNorm ? 2L * HeadDim : 0);
        long mlp = 3 * h * IntermediateSize + (MlpBias ? 2L * IntermediateSize + h : 0);
        long layer = attn + mlp + 2 * h;
        return (long)VocabSize * h * (TieWordEmbeddings ? 1 : 2) + NumHiddenLayers * layer + h;
    }

    /// <summary>
    /// Parameters of the decoder (embedding, layers, final norm; no output layer), exact for any
    /// sizes a config may declare (no overflow).
    /// </summary>
    public Int128 DecoderParameterCount()
    {
        Int128 h = HiddenSize, q = (Int128)NumAttentionHeads * HeadDim, kv = (Int128)NumKeyValueHeads * HeadDim, i = IntermediateSize;
        Int128 attn = h * q + 2 * h * kv + q * h + (QkvBias ? q + 2 * kv : 0) + (OutputBias ? h : 0) + (QkNorm ? 2 * (Int128)HeadDim : 0);
        Int128 mlp = 3 * h * i + (MlpBias ? 2 * i + h : 0);
        return (Int128)VocabSize * h + NumHiddenLayers * (attn + mlp + 2 * h) + h;
    }

    static string FirstLine(string s) => s.Split('\n')[0];

    /// <summary>Typed access to config keys with errors that name the file and key.</summary>
    internal sealed class Reader(JsonObject obj, string file, string prefix = "")
    {
        public string File => file;

        public InputError Missing(string key) => InputError.At(file, null, prefix + key, "missing");
        public InputError Bad(string key, string message) => InputError.At(file, null, prefix + key, message);

        JsonNode? Get(string key) => obj.TryGetPropertyValue(key, out var v) ? v : null;

        public string? String(string key) => Get(key) switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            _ => throw Bad(key, "expected a string"),
        };

        public int? Int(string key)
        {
            var node = Get(key);
            if (node is null) return null;
            if (node is JsonValue v)
            {
                if (v.TryGetValue<int>(out var i)) return i;
                if (v.TryGetValue<double>(out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue) return (int)d;
            }
            throw Bad(key, $"expected an integer, got {node.ToJsonString()}");
        }

        public double? Double(string key)
        {
            var node = Get(key);
            if (node is null) return null;
            if (node is JsonValue v && v.TryGetValue<double>(out var d)) return d;
            if (node is JsonValue s && s.TryGetValue<string>(out var str) &&
                double.TryParse(str, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed)) return parsed;
            throw Bad(key, $"expected a number, got {node.ToJsonString()}");
        }

        public bool? Bool(string key) => Get(key) switch
        {
            null => null,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            var n => throw Bad(key, $"expected true or false, got {n.ToJsonString()}"),
        };

        public JsonObject? Object(string key) => Get(key) switch
        {
            null => null,
            JsonObject o => o,
            var n => throw Bad(key, $"expected an object, got {n.ToJsonString()}"),
        };

        public IReadOnlyList<int> IntOrList(string key)
        {
            var node = Get(key);
            if (node is null) return [];
            if (node is JsonArray a)
                return a.Select((x, i) => x is JsonValue v && v.TryGetValue<int>(out var n) ? n
                    : throw Bad($"{key}[{i}]", "expected an integer")).ToArray();
            return [Int(key)!.Value];
        }
    }
}
