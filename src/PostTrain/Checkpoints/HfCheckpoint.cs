using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Checkpoints;

/// <summary>Options for writing a model directory.</summary>
public sealed record SaveOptions
{
    /// <summary>On-disk dtype: Float32 or BFloat16 (or Float16).</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>Shards above this size, as save_pretrained's max_shard_size (5 GB by default).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;
    /// <summary>A directory whose tokenizer files (and generation_config.json) travel with the model.</summary>
    public string? CopyFilesFrom { get; init; }
    /// <summary>Replace an existing non-empty output directory (after the new one is complete).</summary>
    public bool Overwrite { get; init; }
}

/// <summary>
/// Hugging Face model directories: config.json, model.safetensors or
/// model-0000i-of-0000n.safetensors shards with model.safetensors.index.json,
/// generation_config.json, and the tokenizer files beside them.
/// </summary>
public static class HfCheckpoint
{
    public const string ConfigFile = "config.json";
    public const string SingleFile = "model.safetensors";
    public const string IndexFile = "model.safetensors.index.json";
    public const string GenerationConfigFile = "generation_config.json";

    /// <summary>Files that carry the tokenizer and chat template; copied along with a model.</summary>
    public static readonly string[] TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "vocab.json", "merges.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
    ];

    public static ModelConfig LoadConfig(string dir)
    {
        if (!Directory.Exists(dir)) throw new InputError($"{dir}: model directory not found");
        return ModelConfig.Load(System.IO.Path.Combine(dir, ConfigFile));
    }

    /// <summary>Loads a model, converting the stored weights to <paramref name="dtype"/>.</summary>
    public static CausalLM Load(string dir, ScalarType dtype = ScalarType.Float32)
    {
        var config = LoadConfig(dir);
        CheckDeclaredSizes(config, dir);
        var model = new CausalLM(config, dtype);
        try
        {
            LoadWeights(model, dir);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Before a model is allocated from <paramref name="dir"/>: the sizes its config.json declares
    /// fit the tensors its weight files hold (read from their headers only). A config that asks for
    /// more (vocab_size or hidden_size beyond the embedding, more layers than are stored, ...)
    /// would allocate that much before the first tensor is compared; it is an error naming
    /// config.json, the field and the size asked for. With <paramref name="numLabels"/>, a sequence
    /// classifier's head of that many rows is counted (and named when score.weight has fewer).
    /// </summary>
    public static void CheckDeclaredSizes(ModelConfig config, string dir, int? numLabels = null)
    {
        var configPath = System.IO.Path.Combine(dir, ConfigFile);
        var shapes = new Dictionary<string, (long[] Shape, string File)>(StringComparer.Ordinal);
        foreach (var path in WeightFiles(dir))
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (var info in file.Tensors.Values) shapes.TryAdd(info.Name, (info.Shape, path));
        }
        // A config within reach of the files is left to the tensor-by-tensor comparison after
        // allocation, whose messages name the tensor; one that asks for more than twice what they
        // hold (and a million parameters besides) is refused here, by field where one explains it.
        Int128 asked = config.DecoderParameterCount() + (numLabels ?? 0) * (Int128)config.HiddenSize;
        Int128 stored = shapes.Where(kv => kv.Key is not "lm_head.weight")
            .Aggregate(Int128.Zero, (sum, kv) => sum + kv.Value.Shape.Aggregate(Int128.One, (p, d) => p * d));
        if (asked <= 2 * stored + (1 << 20)) return;
        InputError TooLarge(string field, long asked, string tensor, string holds) =>
            InputError.At(configPath, null, field, $"{asked:N0} asked for, but {System.IO.Path.GetFileName(shapes[tensor].File)} holds {holds} " +
                                                  $"({tensor} is [{string.Join(", ", shapes[tensor].Shape)}]): the config does not describe these weights");
        void Dim(string field, long asked, string tensor, int axis)
        {
            if (shapes.TryGetValue(tensor, out var t) && t.Shape.Length > axis && asked > t.Shape[axis])
                throw TooLarge(field, asked, tensor, t.Shape[axis].ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        }
        const string embed = "model.embed_tokens.weight";
        Dim("vocab_size", config.VocabSize, embed, 0);
        Dim("hidden_size", config.HiddenSize, embed, 1);
        int storedLayers = shapes.Keys.Select(LayerIndex).DefaultIfEmpty(-1).Max() + 1;
        if (config.NumHiddenLayers > storedLayers)
            throw InputError.At(configPath, null, "num_hidden_layers",
                $"{config.NumHiddenLayers:N0} asked for, but the weight files hold {storedLayers} layer{(storedLayers == 1 ? "" : "s")}: the config does not describe these weights");
        const string layer0 = "model.layers.0.";
        Dim("intermediate_size", config.IntermediateSize, layer0 + "mlp.gate_proj.weight", 0);
        Dim("num_attention_heads × head_dim", (long)config.NumAttentionHeads * config.HeadDim, layer0 + "self_attn.q_proj.weight", 0);
        Dim("num_key_value_heads × head_dim", (long)config.NumKeyValueHeads * config.HeadDim, layer0 + "self_attn.k_proj.weight", 0);
        if (numLabels is { } labels) Dim("num_labels", labels, SequenceClassifier.ScoreWeight, 0);
        // Whatever the fields above do not explain.
        throw InputError.At(configPath, null, null,
            $"the config describes {asked:N0} parameters, but the weight files hold {stored:N0} values: the config does not describe these weights");
    }

    // The layer index of a "model.layers.{i}." tensor name, else -1.
    static int LayerIndex(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return -1;
        int end = name.IndexOf('.', prefix.Length);
        return end > prefix.Length && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out var i) ? i : -1;
    }

    /// <summary>The safetensors files of a directory, single or sharded.</summary>
    public static IReadOnlyList<string> WeightFiles(string dir)
    {
        var index = System.IO.Path.Combine(dir, IndexFile);
        if (File.Exists(index))
        {
            JsonObject weightMap;
            try
            {
                weightMap = (JsonNode.Parse(File.ReadAllText(index)) as JsonObject)?["weight_map"] as JsonObject
                            ?? throw new InputError($"{index}: weight_map: missing or not an object");
            }
            catch (JsonException e)
            {
                throw new InputError($"{index}: invalid JSON: {e.Message.Split('\n')[0]}");
            }
            var files = new List<string>();
            foreach (var (tensor, file) in weightMap)
            {
                if (file is not JsonValue value || !value.TryGetValue<string>(out var name))
                    throw new InputError($"{index}: weight_map.{tensor}: expected a file name");
                if (!IsPlainFileName(name))
                    throw new InputError($"{index}: weight_map.{tensor}: shard '{name}' is not a file name inside the model directory (no directories, '..' or absolute paths)");
                var path = System.IO.Path.Combine(dir, name);
                if (!files.Contains(path))
                {
                    if (!File.Exists(path))
                        throw new InputError($"{index}: weight_map.{tensor}: shard '{name}' not found in {dir}");
                    files.Add(path);
                }
            }
            return files;
        }
        var single = System.IO.Path.Combine(dir, SingleFile);
        if (File.Exists(single)) return [single];
        if (File.Exists(System.IO.Path.Combine(dir, "pytorch_model.bin")))
            throw new InputError($"{dir}: only safetensors checkpoints are supported (found pytorch_model.bin)");
        throw new InputError($"{dir}: no {SingleFile} or {IndexFile}");
    }

    /// <summary>
    /// A shard name of an index is a file of the model directory itself, as save_pretrained writes
    /// it (transformers joins it to the directory): a name with a separator, '..' or a root could
    /// make loading open any file on the machine.
    /// </summary>
    static bool IsPlainFileName(string name) =>
        name.Length > 0 && name is not ("." or "..") && name.IndexOfAny(['/', '\\', '\0']) < 0 && !System.IO.Path.IsPathRooted(name);

    /// <summary>
    /// Copies every tensor of the directory into the model's parameters. A missing tensor, an
    /// unexpected one, or a shape or dtype mismatch is an error naming the tensor and file.
    /// </summary>
    public static void LoadWeights(CausalLM model, string dir) => LoadWeights(model, model.Config, dir);

    /// <summary>As <see cref="LoadWeights(CausalLM, string)"/> for any module with transformers' parameter names.</summary>
    public static void LoadWeights(nn.Module model, ModelConfig config, string dir) =>
        LoadWeights(model.named_parameters().Where(p => !CausalLM.IsAdapterParameter(p.name)).Select(p => (p.name, p.parameter)), config, dir);

    /// <summary>
    /// A sequence classifier's weights: model.* into its decoder and, with
    /// <paramref name="withScore"/>, score.weight into its head. A causal LM checkpoint's
    /// lm_head.weight is skipped (as TRL loads a causal LM into AutoModelForSequenceClassification,
    /// whose head is then new); without <paramref name="withScore"/> a stored score.weight is
    /// skipped too and the head is left as it is.
    /// </summary>
    public static void LoadWeights(SequenceClassifier model, string dir, bool withScore = true) =>
        LoadWeights(model.NamedParameters().Where(p => withScore || p.Name != SequenceClassifier.ScoreWeight), model.Config, dir,
            name => name == "lm_head.weight" || (!withScore && name == SequenceClassifier.ScoreWeight));

    /// <param name="skip">Tensors of the directory that are not read (and need no parameter).</param>
    static void LoadWeights(IEnumerable<(string Name, TorchSharp.Modules.Parameter Parameter)> named, ModelConfig config, string dir, Func<string, bool>? skip = null)
    {
        var parameters = named.ToDictionary(p => p.Name, p => p.Parameter, StringComparer.Ordinal);
        var found = new HashSet<string>(StringComparer.Ordinal);
        var files = WeightFiles(dir);
        using var noGrad = no_grad();
        foreach (var path in files)
        {
            using var file = SafeTensorsFile.Open(path);
            foreach (var info in file.Tensors.Values)
            {
                if (skip?.Invoke(info.Name) == true) continue;
                if (!parameters.TryGetValue(info.Name, out var parameter))
                {
                    if (Ignorable(info.Name, config)) continue;
                    throw new InputError($"{path}: unexpected tensor '{info.Name}' for a {config.ModelType} model with this config");
                }
                if (!found.Add(info.Name)) throw new InputError($"{path}: tensor '{info.Name}' appears in more than one file");
                if (!info.Shape.SequenceEqual(parameter.shape))
                    throw new InputError($"{path}: tensor '{info.Name}' has shape [{string.Join(", ", info.Shape)}], the model expects [{string.Join(", ", parameter.shape)}]");
                if (info.DType is not ("F32" or "BF16" or "F16" or "F64"))
                    throw new InputError($"{path}: tensor '{info.Name}' has dtype {info.DType}, expected a floating-point dtype (F32, BF16 or F16)");
                var fileType = SafeTensorsFile.ToScalarType(info.DType, path, info.Name);
                if (fileType == parameter.dtype)
                {
                    file.CopyInto(info, parameter);
                }
                else
                {
                    using var staged = empty(info.Shape, fileType);
                    file.CopyInto(info, staged);
                    parameter.copy_(staged);
                }
            }
        }
        var missing = parameters.Keys.Where(n => !found.Contains(n)).ToList();
        if (missing.Count > 0)
            throw new InputError($"{dir}: missing tensor '{missing[0]}'" + (missing.Count > 1 ? $" (and {missing.Count - 1} more)" : ""));
    }

    // Tensors transformers also skips when loading: a stored lm_head of a tied model, and old
    // checkpoints' rotary inv_freq buffers.
    static bool Ignorable(string name, ModelConfig config) =>
        (name == "lm_head.weight" && config.TieWordEmbeddings) || name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    /// <summary>
    /// Writes the model as a Hugging Face directory that transformers loads unchanged. The
    /// directory is assembled beside the target and renamed into place: a failure leaves nothing.
    /// </summary>
    public static void Save(CausalLM model, string dir, SaveOptions? options = null)
    {
        options ??= new SaveOptions();
        AtomicDirectory.Write(dir, options.Overwrite, temp => WriteInto(model, temp, options));
    }

    /// <summary>Writes the model's files into an existing directory (no atomic rename: callers arrange that).</summary>
    public static void WriteInto(CausalLM model, string dir, SaveOptions options)
    {
        File.WriteAllText(System.IO.Path.Combine(dir, ConfigFile), model.Config.ToJson(DtypeName(options.DType)));
        WriteTensors(dir, model.BaseParameters().Select(p => (p.name, (Tensor)p.parameter)).ToList(), options.DType, options.MaxShardBytes);
        var source = options.CopyFilesFrom;
        var generation = source is null ? null : System.IO.Path.Combine(source, GenerationConfigFile);
        if (generation is not null && File.Exists(generation))
            File.Copy(generation, System.IO.Path.Combine(dir, GenerationConfigFile));
        else
            File.WriteAllText(System.IO.Path.Combine(dir, GenerationConfigFile), GenerationConfigJson(model.Config));
        if (source is not null) CopyTokenizerFiles(source, dir);
    }

    /// <summary>
    /// Writes a sequence classifier as transformers saves a ...ForSequenceClassification model:
    /// config.json with architectures [Qwen2ForSequenceClassification | Qwen3... | Llama...],
    /// id2label / label2id (num_labels is their size) and pad_token_id (the id the pooling skips,
    /// as TRL's RewardTrainer sets config.pad_token_id); the decoder's model.* tensors and
    /// score.weight, no lm_head; no generation_config.json (the class does not generate); the
    /// tokenizer files of <see cref="SaveOptions.CopyFilesFrom"/>.
    /// </summary>
    public static void WriteInto(SequenceClassifier model, string dir, SaveOptions options, int? padTokenId)
    {
        File.WriteAllText(System.IO.Path.Combine(dir, ConfigFile), ClassifierConfigJson(model, padTokenId, DtypeName(options.DType)));
        WriteTensors(dir, model.NamedParameters().Select(p => (p.Name, (Tensor)p.Parameter)).ToList(), options.DType, options.MaxShardBytes);
        if (options.CopyFilesFrom is not null) CopyTokenizerFiles(options.CopyFilesFrom, dir);
    }

    /// <summary>config.json of a sequence classifier: the decoder's keys with the classifier's architecture, labels and pad id.</summary>
    public static string ClassifierConfigJson(SequenceClassifier model, int? padTokenId, string? torchDtype = null)
    {
        var config = JsonNode.Parse(model.Config.ToJson(torchDtype))!.AsObject();
        config["architectures"] = new JsonArray(model.Config.ArchitectureClass.Replace("ForCausalLM", "ForSequenceClassification"));
        config["id2label"] = new JsonObject(Enumerable.Range(0, model.NumLabels).Select(i =>
            new KeyValuePair<string, JsonNode?>(i.ToString(System.Globalization.CultureInfo.InvariantCulture), $"LABEL_{i}")));
        config["label2id"] = new JsonObject(Enumerable.Range(0, model.NumLabels).Select(i => new KeyValuePair<string, JsonNode?>($"LABEL_{i}", i)));
        if (config.ContainsKey("num_labels")) config["num_labels"] = model.NumLabels;
        if (padTokenId is { } pad) config["pad_token_id"] = pad;
        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    static string DtypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        _ => throw new ArgumentException($"cannot save in {dtype}"),
    };

    /// <summary>model.safetensors, or shards with model.safetensors.index.json above <paramref name="maxShardBytes"/>.</summary>
    static void WriteTensors(string dir, List<(string Name, Tensor Tensor)> tensors, ScalarType dtype, long maxShardBytes)
    {
        int elementSize = SafeTensorsFile.ElementSize(SafeTensorsFile.FromScalarType(dtype));
        var shards = Shard(tensors, elementSize, maxShardBytes);
        if (shards.Count == 1)
        {
            SafeTensorsFile.Write(System.IO.Path.Combine(dir, SingleFile), shards[0], dtype);
            return;
        }
        var weightMap = new JsonObject();
        long total = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            var name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafeTensorsFile.Write(System.IO.Path.Combine(dir, name), shards[i], dtype);
            foreach (var (tensorName, t) in shards[i])
            {
                weightMap[tensorName] = name;
                total += t.numel() * elementSize;
            }
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = weightMap,
        };
        File.WriteAllText(System.IO.Path.Combine(dir, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Copies the tokenizer files that exist in <paramref name="source"/> into <paramref name="dir"/>.</summary>
    public static void CopyTokenizerFiles(string source, string dir)
    {
        foreach (var f in TokenizerFiles)
        {
            var from = System.IO.Path.Combine(source, f);
            if (File.Exists(from)) File.Copy(from, System.IO.Path.Combine(dir, f), overwrite: true);
        }
    }

    /// <summary>Greedy sharding in parameter order, as save_pretrained does it.</summary>
    static List<List<(string, Tensor)>> Shard(List<(string Name, Tensor Tensor)> tensors, int elementSize, long maxBytes)
    {
        var shards = new List<List<(string, Tensor)>> { new() };
        long current = 0;
        foreach (var (name, t) in tensors)
        {
            long bytes = t.numel() * elementSize;
            if (current > 0 && current + bytes > maxBytes)
            {
                shards.Add(new());
                current = 0;
            }
            shards[^1].Add((name, t));
            current += bytes;
        }
        return shards;
    }

    public static string GenerationConfigJson(ModelConfig config)
    {
        var o = new JsonObject { ["_from_model_config"] = true };
        if (config.BosTokenId is { } bos) o["bos_token_id"] = bos;
        if (config.EosTokenIds.Count == 1) o["eos_token_id"] = config.EosTokenIds[0];
        else if (config.EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(config.EosTokenIds.Select(i => (JsonNode)i).ToArray());
        o["transformers_version"] = "4.57.1";
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
