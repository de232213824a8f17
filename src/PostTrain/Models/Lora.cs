using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// A LoRA adapter's settings, as PEFT's LoraConfig: rank r, lora_alpha, lora_dropout, rsLoRA
/// scaling and the target modules (short names such as q_proj, matched against the last part of
/// each linear layer's name, as PEFT matches a list; or a regular expression that must match the
/// whole module name, as PEFT matches a string).
/// </summary>
public sealed record LoraConfig
{
    /// <summary>Every linear layer of the decoder (PEFT's "all-linear" leaves out the output layer).</summary>
    public static readonly IReadOnlyList<string> AllLinear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    public int R { get; init; } = 16;
    public double Alpha { get; init; } = 32;
    public double Dropout { get; init; } = 0.05;
    /// <summary>rsLoRA: scale by alpha / sqrt(r) instead of alpha / r.</summary>
    public bool UseRsLora { get; init; }
    /// <summary>Module names matched as PEFT matches a list: the whole name or its last parts (q_proj, self_attn.q_proj); ignored when <see cref="TargetRegex"/> is set.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = AllLinear;
    /// <summary>PEFT's string form of target_modules: a regex matched against whole module names.</summary>
    public string? TargetRegex { get; init; }
    /// <summary>The base model's directory or Hub name (adapter_config.json's base_model_name_or_path).</summary>
    public string? BaseModel { get; init; }

    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>"all-linear" or a comma-separated list of module names; an unknown name is an error naming <paramref name="option"/>.</summary>
    public static IReadOnlyList<string> ParseTargets(string spec, string option = "--lora-targets")
    {
        if (spec.Trim() == "all-linear") return AllLinear;
        var names = spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Distinct().ToList();
        if (names.Count == 0) throw new InputError($"{option}: give module names (e.g. q_proj,v_proj) or all-linear");
        foreach (var n in names)
            if (!AllLinear.Contains(n))
                throw new InputError($"{option}: '{n}' is not a linear layer of these models; choose from all-linear, {string.Join(", ", AllLinear)}");
        return names;
    }

    public void Validate(string where = "--lora")
    {
        if (R <= 0) throw new InputError($"{where}-r: must be positive, got {R}");
        if (!(Alpha > 0) || double.IsInfinity(Alpha)) throw new InputError($"{where}-alpha: must be positive, got {Alpha}");
        if (!(Dropout is >= 0 and < 1)) throw new InputError($"{where}-dropout: must be in [0, 1), got {Dropout}");
    }

    /// <summary>Whether the linear layer named <paramref name="module"/> (e.g. model.layers.0.self_attn.q_proj) gets an adapter.</summary>
    public bool Targets(string module) => TargetRegex is not null
        ? System.Text.RegularExpressions.Regex.IsMatch(module, $"^(?:{TargetRegex})$")
        : TargetModules.Any(t => module == t || module.EndsWith("." + t, StringComparison.Ordinal));
}

/// <summary>Adding, switching off and merging LoRA adapters on a <see cref="CausalLM"/>.</summary>
public static class LoraAdapters
{
    /// <summary>
    /// Adds an adapter to every targeted linear layer and freezes every other parameter: only
    /// adapters get gradients and optimizer state. Adapter weights are float32 (over a float32 or
    /// bfloat16 base) and initialised as PEFT does, from <paramref name="seed"/>.
    /// </summary>
    public static void Attach(CausalLM model, LoraConfig config, long seed)
    {
        if (model.Lora is not null) throw new InvalidOperationException("the model already has adapters");
        config.Validate();
        var targets = model.Projections().Where(p => config.Targets(p.Name)).ToList();
        if (targets.Count == 0)
            throw new InputError($"--lora-targets: no linear layer of this {model.Config.ModelType} model matches {(config.TargetRegex ?? string.Join(",", config.TargetModules))}");
        // r × (in + out) float32 values per layer, with gradients and optimizer state to come:
        // a rank beyond the machine's memory is refused before anything is allocated.
        Int128 adapterValues = targets.Aggregate(Int128.Zero, (sum, t) => sum + (Int128)config.R * (t.Projection.InFeatures + t.Projection.OutFeatures));
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && adapterValues * 4 > available)
            throw new InputError($"--lora-r: a rank of {config.R:N0} makes adapters of {adapterValues:N0} parameters " +
                                 $"({(double)(adapterValues * 4) / (1L << 30):N1} GiB in float32), more than this machine's {(double)available / (1L << 30):N1} GiB of memory");
        foreach (var p in model.parameters()) p.requires_grad = false;
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        foreach (var (_, projection) in targets)
            projection.AddAdapter(config.R, config.Scaling, config.Dropout, ScalarType.Float32, generator, model.DropoutGenerator);
        model.Lora = config;
    }

    /// <summary>Folds every adapter into its layer's weight; the model becomes a plain model again (all parameters trainable).</summary>
    public static void Merge(CausalLM model)
    {
        foreach (var (_, projection) in model.Projections()) projection.MergeAdapter();
        foreach (var p in model.parameters()) p.requires_grad = true;
        model.Lora = null;
    }

    /// <summary>Runs the base model alone until disposed: every adapter is skipped.</summary>
    public static IDisposable Disabled(CausalLM model) => new Switch(model.Projections().Select(p => p.Projection).ToList());

    /// <summary>
    /// Runs the model with other adapter weights until disposed (PEFT's set_adapter to a second
    /// adapter of the same config): <paramref name="weights"/> holds A and B for every layer
    /// that has an adapter, by module name, shaped as its own; the caller keeps ownership.
    /// </summary>
    public static IDisposable Substituted(CausalLM model, IReadOnlyDictionary<string, (Tensor A, Tensor B)> weights)
    {
        var layers = model.Projections().Where(p => p.Projection.Adapter is not null).ToList();
        if (layers.Count != weights.Count || layers.Any(l => !weights.ContainsKey(l.Name)))
            throw new InvalidOperationException("the substitute adapter weights do not cover exactly the model's adapters");
        foreach (var (name, layer) in layers)
        {
            var (a, b) = layer.Adapter!.Value;
            var (sa, sb) = weights[name];
            if (!sa.shape.SequenceEqual(a.shape) || !sb.shape.SequenceEqual(b.shape) || sa.dtype != a.dtype || sb.dtype != b.dtype)
                throw new InvalidOperationException($"{name}: the substitute adapter weights do not match the layer's adapter");
        }
        foreach (var (name, layer) in layers) layer.Substitute = weights[name];
        return new Restore(() =>
        {
            foreach (var (_, layer) in layers) layer.Substitute = null;
        });
    }

    sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    sealed class Switch : IDisposable
    {
        readonly List<(Projection Layer, bool Was)> saved;

        public Switch(List<Projection> layers)
        {
            saved = layers.Select(l => (l, l.AdapterEnabled)).ToList();
            foreach (var l in layers) l.AdapterEnabled = false;
        }

        public void Dispose()
        {
            foreach (var (layer, was) in saved) layer.AdapterEnabled = was;
        }
    }
}
