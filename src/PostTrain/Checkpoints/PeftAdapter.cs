using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Checkpoints;

/// <summary>
/// LoRA adapters on disk exactly as PEFT saves them: adapter_config.json (peft_type LORA, r,
/// lora_alpha, target_modules, ...) and adapter_model.safetensors with PEFT's tensor names
/// (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight), so peft loads them and we
/// load PEFT's. A sequence classifier's adapter (a reward model trained with LoRA) is PEFT's
/// SEQ_CLS layout: the decoder's adapters plus the classification head trained in full
/// (modules_to_save), saved as base_model.model.score.weight.
/// </summary>
public static class PeftAdapter
{
    public const string ConfigFile = "adapter_config.json";
    public const string WeightsFile = "adapter_model.safetensors";
    /// <summary>PeftModelForCausalLM wraps LoraModel, which wraps the transformers model.</summary>
    public const string Prefix = "base_model.model.";
    /// <summary>
    /// The head of a SEQ_CLS adapter: PEFT wraps score in a ModulesToSaveWrapper and saves its copy
    /// without the wrapper's modules_to_save.default part.
    /// </summary>
    public const string ScoreTensor = Prefix + "score.weight";
    /// <summary>modules_to_save as PeftModelForSequenceClassification sets it (its classifier module names).</summary>
    public static readonly IReadOnlyList<string> ClassifierModules = ["classifier", "score"];

    /// <summary>Whether <paramref name="dir"/> holds an adapter (rather than a full model).</summary>
    public static bool IsAdapter(string dir) => File.Exists(Path.Combine(dir, ConfigFile));

    /// <summary>The adapter's tensors with PEFT's names.</summary>
    public static IReadOnlyList<(string Name, Tensor Tensor)> Tensors(CausalLM model)
    {
        var list = new List<(string, Tensor)>();
        foreach (var (name, projection) in model.Projections())
            if (projection.Adapter is { } ab)
            {
                list.Add(($"{Prefix}{name}.lora_A.weight", ab.A));
                list.Add(($"{Prefix}{name}.lora_B.weight", ab.B));
            }
        return list;
    }

    /// <summary>
    /// Writes adapter_config.json and adapter_model.safetensors into an existing directory; with
    /// <paramref name="score"/>, a sequence classifier's adapter (task_type SEQ_CLS, the head as
    /// <see cref="ScoreTensor"/>).
    /// </summary>
    public static void WriteInto(CausalLM model, string dir, Tensor? score = null)
    {
        var config = model.Lora ?? throw new InvalidOperationException("the model has no adapters");
        File.WriteAllText(Path.Combine(dir, ConfigFile), ConfigJson(config, model.Config, sequenceClassification: score is not null));
        var tensors = Tensors(model);
        SafeTensorsFile.Write(Path.Combine(dir, WeightsFile), score is null ? tensors : [.. tensors, (ScoreTensor, score)]);
    }

    /// <summary>
    /// adapter_config.json as PEFT writes it: every LoraConfig field, keys sorted, indent 2. A
    /// sequence classifier's: task_type SEQ_CLS and modules_to_save ["classifier", "score"], as
    /// PeftModelForSequenceClassification saves a LoRA config given without modules_to_save.
    /// </summary>
    public static string ConfigJson(LoraConfig config, ModelConfig model, bool sequenceClassification = false)
    {
        JsonNode alpha = config.Alpha == Math.Floor(config.Alpha) && Math.Abs(config.Alpha) < int.MaxValue ? (int)config.Alpha : config.Alpha;
        JsonNode targets = config.TargetRegex is not null
            ? config.TargetRegex
            : new JsonArray(config.TargetModules.Order(StringComparer.Ordinal).Select(t => (JsonNode)t).ToArray());
        var o = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["alpha_pattern"] = new JsonObject(),
            ["auto_mapping"] = null,
            ["base_model_name_or_path"] = config.BaseModel,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["layer_replication"] = null,
            ["layers_pattern"] = null,
            ["layers_to_transform"] = null,
            ["loftq_config"] = new JsonObject(),
            ["lora_alpha"] = alpha,
            ["lora_bias"] = false,
            ["lora_dropout"] = config.Dropout,
            ["modules_to_save"] = sequenceClassification ? new JsonArray(ClassifierModules.Select(m => (JsonNode)m).ToArray()) : null,
            ["peft_type"] = "LORA",
            ["r"] = config.R,
            ["rank_pattern"] = new JsonObject(),
            ["revision"] = null,
            ["target_modules"] = targets,
            ["task_type"] = sequenceClassification ? "SEQ_CLS" : "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = config.UseRsLora,
        };
        return new JsonObject(o).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>
    /// Reads adapter_config.json. Features we do not implement (DoRA, trained biases, per-layer
    /// ranks, modules_to_save, ...) are errors naming the field, never silently ignored. With
    /// <paramref name="sequenceClassification"/>, a reward model's adapter: task_type SEQ_CLS (or
    /// none, as TRL's LoraConfig(modules_to_save=["score"]) leaves it) and modules_to_save naming
    /// score (classifier may be named too: PEFT's SEQ_CLS adds both names).
    /// </summary>
    public static LoraConfig ReadConfig(string dir, bool sequenceClassification = false)
    {
        var path = Path.Combine(dir, ConfigFile);
        if (!File.Exists(path)) throw new InputError($"{dir}: not a LoRA adapter (no {ConfigFile})");
        JsonObject o;
        try
        {
            o = JsonNode.Parse(File.ReadAllText(path))?.AsObject() ?? throw new InputError($"{path}: expected a JSON object");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new InputError($"{path}: not valid JSON: {e.Message}");
        }
        InputError Bad(string field, string message) => new($"{path}: {field}: {message}");
        T Get<T>(string field, T fallback)
        {
            var node = o[field];
            if (node is null) return fallback;
            try { return node.GetValue<T>(); }
            catch (Exception e) when (e is InvalidOperationException or FormatException) { throw Bad(field, $"expected {typeof(T).Name.ToLowerInvariant()}, got {node.ToJsonString()}"); }
        }
        var peftType = Get<string?>("peft_type", null);
        if (peftType != "LORA") throw Bad("peft_type", $"'{peftType}' is not supported (only LORA)");
        if (Get("use_dora", false)) throw Bad("use_dora", "DoRA adapters are not supported");
        if (Get("bias", "none") != "none") throw Bad("bias", "adapters that train biases are not supported (only \"none\")");
        if (Get("lora_bias", false)) throw Bad("lora_bias", "not supported");
        if (Get("fan_in_fan_out", false)) throw Bad("fan_in_fan_out", "not supported (Qwen and Llama layers are not Conv1D)");
        foreach (var field in new[] { "rank_pattern", "alpha_pattern" })
            if (o[field] is JsonObject p && p.Count > 0) throw Bad(field, "per-layer ranks and alphas are not supported");
        foreach (var field in new[] { "layers_to_transform", "layer_replication", "trainable_token_indices", "target_parameters" })
            if (o[field] is JsonNode n && !(n is JsonArray { Count: 0 })) throw Bad(field, "not supported");
        var taskType = Get<string?>("task_type", null);
        if (sequenceClassification)
        {
            if (taskType is not null && taskType != "SEQ_CLS")
                throw Bad("task_type", $"'{taskType}': expected SEQ_CLS (a reward model's adapter: the decoder's adapters and the score head)");
            var saved = o["modules_to_save"] is JsonArray list ? list.Select(n => n is JsonValue v && v.TryGetValue<string>(out var m) ? m : null).ToList() : null;
            if (saved is null || !saved.Contains("score") || saved.Any(m => m is null || !ClassifierModules.Contains(m)))
                throw Bad("modules_to_save", $"{o["modules_to_save"]?.ToJsonString() ?? "null"}: a reward model's adapter saves the score head: expected [\"score\"] or [\"classifier\", \"score\"]");
        }
        else
        {
            if (o["modules_to_save"] is JsonNode n && !(n is JsonArray { Count: 0 })) throw Bad("modules_to_save", "not supported");
            if (taskType is not null && taskType != "CAUSAL_LM") throw Bad("task_type", $"'{taskType}': expected CAUSAL_LM");
        }
        if (o["r"] is null) throw Bad("r", "missing");
        var r = Get("r", 0);
        var alpha = o["lora_alpha"] is null ? 8.0 : Get("lora_alpha", 0.0);
        string? regex = null;
        IReadOnlyList<string> modules = [];
        switch (o["target_modules"])
        {
            case JsonValue v when v.TryGetValue<string>(out var s):
                if (s == "all-linear") modules = LoraConfig.AllLinear;
                else regex = s;
                break;
            case JsonArray a:
                modules = a.Select(n => n?.GetValue<string>() ?? throw Bad("target_modules", "expected strings")).ToList();
                if (modules.Count == 0) throw Bad("target_modules", "empty");
                break;
            default:
                throw Bad("target_modules", "expected a list of module names or a regular expression");
        }
        var config = new LoraConfig
        {
            R = r,
            Alpha = alpha,
            Dropout = Get("lora_dropout", 0.0),
            UseRsLora = Get("use_rslora", false),
            TargetModules = modules,
            TargetRegex = regex,
            BaseModel = Get<string?>("base_model_name_or_path", null),
        };
        try { config.Validate(); }
        catch (InputError e) { throw new InputError($"{path}: {e.Message.Replace("--lora-", "lora_")}"); }
        return config;
    }

    /// <summary>
    /// Adds the adapter of <paramref name="dir"/> to <paramref name="model"/> and loads its
    /// weights. An adapter made for another architecture, or whose tensors do not fit the
    /// base's layers, is an error naming the file and tensor. With <paramref name="score"/> (a
    /// sequence classifier's head), a SEQ_CLS adapter whose saved head is copied into it.
    /// </summary>
    public static LoraConfig Load(CausalLM model, string dir, long seed = 0, Tensor? score = null)
    {
        var config = ReadConfig(dir, sequenceClassification: score is not null);
        CheckArchitecture(model, dir, config);
        var path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path))
            throw new InputError($"{dir}: no {WeightsFile}" + (File.Exists(Path.Combine(dir, "adapter_model.bin")) ? " (adapter_model.bin, a pickle, is not read: save with safe_serialization)" : ""));
        CheckRank(path, config);
        // Attach where the file has tensors: the list form of target_modules is matched the same way.
        try { LoraAdapters.Attach(model, config, seed); }
        catch (InputError e) { throw new InputError($"{Path.Combine(dir, ConfigFile)}: target_modules: {e.Message}"); }
        LoadWeights(model, dir, score);
        return config;
    }

    /// <summary>
    /// Before adapters are attached (allocated at r × in and out × r per layer): adapter_config.json's
    /// r is the rank of the stored lora_A / lora_B tensors, so an r of 10^9 with small tensors is an
    /// error naming the file and field, not an allocation.
    /// </summary>
    static void CheckRank(string weightsPath, LoraConfig config)
    {
        using var file = SafeTensorsFile.Open(weightsPath);
        foreach (var info in file.Tensors.Values)
        {
            int axis = info.Name.EndsWith(".lora_A.weight", StringComparison.Ordinal) ? 0
                : info.Name.EndsWith(".lora_B.weight", StringComparison.Ordinal) ? 1 : -1;
            if (axis < 0 || info.Shape.Length != 2 || info.Shape[axis] == config.R) continue;
            throw new InputError($"{Path.Combine(Path.GetDirectoryName(weightsPath)!, ConfigFile)}: r: {config.R:N0} asked for, but " +
                                 $"{WeightsFile} holds rank {info.Shape[axis]:N0} ({info.Name} is [{string.Join(", ", info.Shape)}])");
        }
    }

    /// <summary>Loads adapter weights (and a SEQ_CLS adapter's head into <paramref name="score"/>) into a model that already carries the same adapters (resume).</summary>
    public static void LoadWeights(CausalLM model, string dir, Tensor? score = null)
    {
        var targets = Tensors(model).ToDictionary(t => t.Name, t => t.Tensor, StringComparer.Ordinal);
        if (score is not null) targets[ScoreTensor] = score;
        CopyInto(model, dir, targets);
    }

    /// <summary>
    /// A frozen copy of the adapter weights in <paramref name="dir"/>, made for the adapters
    /// <paramref name="model"/> carries (same layers, shapes and dtype; no gradient): by module
    /// name, each layer's A and B. The caller owns (and disposes) the tensors.
    /// </summary>
    public static Dictionary<string, (Tensor A, Tensor B)> ReadCopy(CausalLM model, string dir) =>
        ReadLayers(model, dir, model.Projections().Where(p => p.Projection.Adapter is not null)
            .Select(p => (p.Name, zeros_like(p.Projection.Adapter!.Value.A).DetachFromDisposeScope(), zeros_like(p.Projection.Adapter!.Value.B).DetachFromDisposeScope())));

    // Reads each layer's lora_A and lora_B from DIR into the tensors given for it (allocated as
    // they are enumerated); on an error, every tensor made so far is disposed.
    static Dictionary<string, (Tensor A, Tensor B)> ReadLayers(CausalLM model, string dir, IEnumerable<(string Name, Tensor A, Tensor B)> layers)
    {
        var copy = new Dictionary<string, (Tensor A, Tensor B)>(StringComparer.Ordinal);
        var targets = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, a, b) in layers)
            {
                copy[name] = (a, b);
                targets[$"{Prefix}{name}.lora_A.weight"] = a;
                targets[$"{Prefix}{name}.lora_B.weight"] = b;
            }
            CopyInto(model, dir, targets);
        }
        catch
        {
            foreach (var (a, b) in copy.Values)
            {
                a.Dispose();
                b.Dispose();
            }
            throw;
        }
        return copy;
    }

    /// <summary>
    /// An adapter read for serving beside others, without attaching it to the model: its config
    /// and, for each layer it targets, A [r, in] and B [out, r] in float32 (the caller owns
    /// them). The same checks as <see cref="Load"/>: architecture, rank against the stored
    /// tensors, every tensor in its place with its shape.
    /// </summary>
    public static (LoraConfig Config, Dictionary<string, (Tensor A, Tensor B)> Weights) ReadStandalone(CausalLM model, string dir)
    {
        var config = ReadConfig(dir);
        CheckArchitecture(model, dir, config);
        var path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path)) throw new InputError($"{dir}: no {WeightsFile}");
        CheckRank(path, config);
        var layers = model.Projections().Where(p => config.Targets(p.Name)).ToList();
        if (layers.Count == 0) throw new InputError($"{Path.Combine(dir, ConfigFile)}: target_modules: no linear layer of this {model.Config.ModelType} model matches");
        var weights = ReadLayers(model, dir, layers.Select(l =>
            (l.Name, zeros(config.R, l.Projection.InFeatures).DetachFromDisposeScope(), zeros(l.Projection.OutFeatures, config.R).DetachFromDisposeScope())));
        return (config, weights);
    }

    /// <summary>Copies every tensor of DIR/adapter_model.safetensors into its target, by PEFT name; each target must get one.</summary>
    static void CopyInto(CausalLM model, string dir, Dictionary<string, Tensor> expected)
    {
        var path = Path.Combine(dir, WeightsFile);
        if (!File.Exists(path)) throw new InputError($"{dir}: no {WeightsFile}");
        var found = new HashSet<string>(StringComparer.Ordinal);
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = no_grad();
        foreach (var info in file.Tensors.Values)
        {
            if (!expected.TryGetValue(info.Name, out var target))
                throw new InputError($"{path}: tensor '{info.Name}' has no place in this {model.Config.ModelType} model " +
                                     "(expected base_model.model.<module>.lora_A.weight / lora_B.weight for a targeted linear layer)");
            if (!info.Shape.SequenceEqual(target.shape))
                throw new InputError($"{path}: tensor '{info.Name}' has shape [{string.Join(", ", info.Shape)}], the base model's layer needs [{string.Join(", ", target.shape)}]: the adapter was made for another model");
            if (info.DType is not ("F32" or "BF16" or "F16"))
                throw new InputError($"{path}: tensor '{info.Name}' has dtype {info.DType}, expected F32, BF16 or F16");
            using var staged = empty(info.Shape, SafeTensorsFile.ToScalarType(info.DType, path, info.Name));
            file.CopyInto(info, staged);
            target.copy_(staged);
            found.Add(info.Name);
        }
        var missing = expected.Keys.Where(n => !found.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new InputError($"{path}: missing tensor '{missing[0]}'" + (missing.Count > 1 ? $" (and {missing.Count - 1} more)" : ""));
    }

    // PEFT's config does not name the architecture itself, but its base_model_name_or_path does
    // when it is a local directory, and auto_mapping may name the base class.
    static void CheckArchitecture(CausalLM model, string dir, LoraConfig config)
    {
        var path = Path.Combine(dir, ConfigFile);
        var raw = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        if (raw["auto_mapping"] is JsonObject map && map["base_model_class"]?.GetValue<string>() is { } cls &&
            cls != model.Config.ArchitectureClass)
            throw new InputError($"{path}: auto_mapping.base_model_class: the adapter was made for {cls}, the base model is {model.Config.ArchitectureClass}");
        var baseDir = config.BaseModel is null ? null : Path.GetFullPath(config.BaseModel); // PEFT resolves it from the working directory
        if (baseDir is null || !File.Exists(Path.Combine(baseDir, HfCheckpoint.ConfigFile))) return;
        var baseType = JsonNode.Parse(File.ReadAllText(Path.Combine(baseDir, HfCheckpoint.ConfigFile)))?["model_type"]?.GetValue<string>();
        if (baseType is not null && baseType != model.Config.ModelType)
            throw new InputError($"{path}: base_model_name_or_path: the adapter was made for a {baseType} model ({config.BaseModel}), the base model is {model.Config.ModelType}");
    }
}
