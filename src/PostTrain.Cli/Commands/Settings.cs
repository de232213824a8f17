using System.CommandLine;
using System.Globalization;
using System.Text;
using PostTrain.Training;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PostTrain.Cli.Commands;

/// <summary>
/// One setting of a trainer: a kebab-case command-line option that a --config YAML file may also
/// give under the same name. The command line overrides the file; defaults come from the options
/// record. Values are parsed the same way from both sources, so errors read the same.
/// </summary>
public sealed class Setting<TOptions>
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    public required Type Type { get; init; }
    public required Func<TOptions, object?> Get { get; init; }
    public required Func<TOptions, object?, TOptions> Set { get; init; }
    public string[]? Choices { get; init; }
}

/// <summary>Settings of a command, bound from the command line and an optional YAML file.</summary>
public sealed class SettingTable<TOptions>(IReadOnlyList<Setting<TOptions>> settings)
{
    public IReadOnlyList<Setting<TOptions>> Settings => settings;

    /// <summary>
    /// Adds --config and every setting to a command (showing the defaults of
    /// <paramref name="defaults"/>); the returned binding reads them back from a parse.
    /// </summary>
    public SettingBinding<TOptions> AddTo(Command command, TOptions defaults)
    {
        var config = new Option<string?>("--config") { Description = "YAML file of settings (same names as the options; the command line overrides it)" };
        var options = new Dictionary<Setting<TOptions>, Option>();
        command.Options.Add(config);
        foreach (var s in settings)
        {
            var value = s.Get(defaults);
            var shown = value is null or false ? "" : $" [default: {Show(s, value)}]";
            Option option = s.Type == typeof(bool)
                ? new Option<bool>("--" + s.Name) { Description = s.Description }
                : new Option<string?>("--" + s.Name) { Description = s.Description + (s.Choices is null ? "" : $" ({string.Join("|", s.Choices)})") + shown };
            options[s] = option;
            command.Options.Add(option);
        }
        return new SettingBinding<TOptions>(this, config, options);
    }

    /// <summary>The effective options: defaults, then the YAML file, then the command line.</summary>
    internal TOptions Bind(ParseResult result, TOptions defaults, Option<string?> config, IReadOnlyDictionary<Setting<TOptions>, Option> bound)
    {
        var options = defaults;
        var configPath = result.GetValue(config);
        if (configPath is not null)
            foreach (var (name, value, line) in ReadYaml(configPath))
            {
                var setting = settings.FirstOrDefault(s => s.Name == name)
                              ?? throw new InputError($"{configPath}:{line}: {name}: unknown setting");
                options = setting.Set(options, Parse(setting, value, $"{configPath}:{line}: {name}"));
            }
        foreach (var s in settings)
        {
            var option = bound[s];
            var given = result.GetResult(option);
            if (given is null || given.Implicit) continue;
            object? raw = s.Type == typeof(bool) ? result.GetValue((Option<bool>)option) : result.GetValue((Option<string?>)option);
            options = s.Set(options, raw is bool b ? b : Parse(s, (string?)raw, "--" + s.Name));
        }
        return options;
    }

    static object? Parse(Setting<TOptions> s, string? text, string where)
    {
        if (text is null) return null;
        var t = Nullable.GetUnderlyingType(s.Type) ?? s.Type;
        if (s.Choices is not null && !s.Choices.Contains(text))
            throw new InputError($"{where}: '{text}' is not one of {string.Join(", ", s.Choices)}");
        try
        {
            if (t == typeof(string)) return text;
            if (t == typeof(int)) return int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            if (t == typeof(long)) return long.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            if (t == typeof(double)) return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (t == typeof(bool)) return text.ToLowerInvariant() switch
            {
                "true" or "yes" or "1" => true,
                "false" or "no" or "0" => false,
                _ => throw new FormatException(),
            };
            if (t.IsEnum) return Enum.Parse(t, text.Replace("-", "").Replace("_", ""), ignoreCase: true);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new InputError($"{where}: '{text}' is not a valid {Describe(t)}");
        }
        throw new InvalidOperationException($"setting type {t}");
    }

    static string Describe(Type t) => t == typeof(int) || t == typeof(long) ? "integer" : t == typeof(double) ? "number" : t == typeof(bool) ? "true/false" : "value";

    /// <summary>Top-level scalar keys of a YAML mapping, with their lines.</summary>
    static IEnumerable<(string Name, string? Value, long Line)> ReadYaml(string path)
    {
        if (!File.Exists(path)) throw new InputError($"{path}: file not found");
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path, Encoding.UTF8);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new InputError($"{path}:{e.Start.Line}: not valid YAML: {e.Message.Split('\n')[0]}");
        }
        if (stream.Documents.Count == 0) yield break;
        if (stream.Documents[0].RootNode is not YamlMappingNode map)
            throw new InputError($"{path}: expected a mapping of setting: value");
        foreach (var (key, value) in map.Children)
        {
            var name = ((YamlScalarNode)key).Value ?? "";
            if (value is not YamlScalarNode scalar)
                throw new InputError($"{path}:{key.Start.Line}: {name}: expected a single value");
            yield return (name, scalar.Value is "" or "~" or "null" ? null : scalar.Value, key.Start.Line);
        }
    }

    /// <summary>The effective settings as YAML, as saved with every run.</summary>
    public string ToYaml(TOptions options)
    {
        var sb = new StringBuilder();
        foreach (var s in settings)
        {
            var value = s.Get(options);
            sb.Append(s.Name).Append(": ").Append(value is string str ? Quote(str) : Show(s, value)).Append('\n');
        }
        return sb.ToString();
    }

    // An enum value as its choice is spelled (dr_grpo for DrGrpo), so config.yaml reads back.
    static string Show(Setting<TOptions> s, object? value) =>
        value is Enum e && s.Choices?.FirstOrDefault(c => string.Equals(c.Replace("-", "").Replace("_", ""), e.ToString(), StringComparison.OrdinalIgnoreCase)) is { } choice
            ? choice : Text(value);

    static string Text(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        Enum e => e.ToString().ToLowerInvariant(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString()!,
    };

    static string Quote(string s) => "\"" + s.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}

/// <summary>A command's own options for a setting table (one per command instance: parses never share options).</summary>
public sealed class SettingBinding<TOptions>(SettingTable<TOptions> table, Option<string?> config, IReadOnlyDictionary<Setting<TOptions>, Option> options)
{
    /// <summary>The effective options: defaults, then the YAML file, then the command line.</summary>
    public TOptions Bind(ParseResult result, TOptions defaults) => table.Bind(result, defaults, config, options);
}

/// <summary>The loop's settings, shared by every trainer's command.</summary>
public static class LoopSettings
{
    public static IEnumerable<Setting<T>> For<T>() where T : TrainingOptions =>
        Loop().Select(s => new Setting<T>
        {
            Name = s.Name, Description = s.Description, Type = s.Type, Choices = s.Choices,
            Get = o => s.Get(o),
            Set = (o, v) => (T)s.Set(o, v), // records clone their runtime type: T stays T
        });

    static IEnumerable<Setting<TrainingOptions>> Loop() =>
    [
        S<TrainingOptions>("model", "Model directory to start from (Hugging Face layout)", typeof(string), o => o.Model, (o, v) => o with { Model = (string?)v }),
        S<TrainingOptions>("data", "Training data: .jsonl, .json or .parquet file, or a directory of them", typeof(string), o => o.Data, (o, v) => o with { Data = (string?)v }),
        S<TrainingOptions>("eval-data", "Evaluation data, scored every --eval-steps and at the end", typeof(string), o => o.EvalData, (o, v) => o with { EvalData = (string?)v }),
        S<TrainingOptions>("eval-tasks", "lm-eval tasks scored on the model every --eval-steps and at the end, logged as eval/TASK/METRIC,FILTER: built-in names or task YAML files, comma-separated, each optionally TASK=DATA", typeof(string), o => o.EvalTasks, (o, v) => o with { EvalTasks = (string?)v }),
        S<TrainingOptions>("eval-tasks-limit", "Score the first N documents of each --eval-tasks task", typeof(double?), o => o.EvalTasksLimit, (o, v) => o with { EvalTasksLimit = (double?)v }),
        S<TrainingOptions>("eval-apply-chat-template", "Render the --eval-tasks prompts with the model's chat template, as eval's --apply-chat-template", typeof(bool), o => o.EvalApplyChatTemplate, (o, v) => o with { EvalApplyChatTemplate = (bool)v! }),
        S<TrainingOptions>("output", "Run directory: metrics.jsonl, TensorBoard, checkpoints, the final model", typeof(string), o => o.Output, (o, v) => o with { Output = (string?)v }),
        S<TrainingOptions>("learning-rate", "Peak learning rate", typeof(double), o => o.LearningRate, (o, v) => o with { LearningRate = (double)v! }),
        S<TrainingOptions>("batch-size", "Sequences per micro-batch", typeof(int), o => o.BatchSize, (o, v) => o with { BatchSize = (int)v! }),
        S<TrainingOptions>("gradient-accumulation-steps", "Micro-batches per optimiser step", typeof(int), o => o.GradientAccumulationSteps, (o, v) => o with { GradientAccumulationSteps = (int)v! }),
        S<TrainingOptions>("epochs", "Passes over the training data", typeof(double), o => o.Epochs, (o, v) => o with { Epochs = (double)v! }),
        S<TrainingOptions>("max-steps", "Total optimiser steps (overrides --epochs when positive)", typeof(int), o => o.MaxSteps, (o, v) => o with { MaxSteps = (int)v! }),
        S<TrainingOptions>("lr-scheduler", "Learning-rate schedule after warmup", typeof(LrScheduler), o => o.LrScheduler, (o, v) => o with { LrScheduler = (LrScheduler)v! }, ["constant", "linear", "cosine"]),
        S<TrainingOptions>("warmup-ratio", "Fraction of steps of linear warmup", typeof(double), o => o.WarmupRatio, (o, v) => o with { WarmupRatio = (double)v! }),
        S<TrainingOptions>("warmup-steps", "Steps of linear warmup (overrides --warmup-ratio)", typeof(int), o => o.WarmupSteps, (o, v) => o with { WarmupSteps = (int)v! }),
        S<TrainingOptions>("weight-decay", "AdamW weight decay (not on biases and norms)", typeof(double), o => o.WeightDecay, (o, v) => o with { WeightDecay = (double)v! }),
        S<TrainingOptions>("adam-beta1", "AdamW beta1", typeof(double), o => o.AdamBeta1, (o, v) => o with { AdamBeta1 = (double)v! }),
        S<TrainingOptions>("adam-beta2", "AdamW beta2", typeof(double), o => o.AdamBeta2, (o, v) => o with { AdamBeta2 = (double)v! }),
        S<TrainingOptions>("adam-epsilon", "AdamW epsilon", typeof(double), o => o.AdamEpsilon, (o, v) => o with { AdamEpsilon = (double)v! }),
        S<TrainingOptions>("max-grad-norm", "Clip the gradient norm to this (0: no clipping)", typeof(double), o => o.MaxGradNorm, (o, v) => o with { MaxGradNorm = (double)v! }),
        S<TrainingOptions>("logging-steps", "Log every N steps", typeof(int), o => o.LoggingSteps, (o, v) => o with { LoggingSteps = (int)v! }),
        S<TrainingOptions>("eval-steps", "Evaluate every N steps (0: at the end only)", typeof(int), o => o.EvalSteps, (o, v) => o with { EvalSteps = (int)v! }),
        S<TrainingOptions>("save-steps", "Write a checkpoint every N steps (0: none)", typeof(int), o => o.SaveSteps, (o, v) => o with { SaveSteps = (int)v! }),
        S<TrainingOptions>("save-total-limit", "Keep the last K checkpoints (0: all)", typeof(int), o => o.SaveTotalLimit, (o, v) => o with { SaveTotalLimit = (int)v! }),
        S<TrainingOptions>("seed", "Random seed (data order)", typeof(long), o => o.Seed, (o, v) => o with { Seed = (long)v! }),
        S<TrainingOptions>("max-length", "Truncate sequences to this many tokens (and pack rows of it)", typeof(int), o => o.MaxLength, (o, v) => o with { MaxLength = (int)v! }),
        S<TrainingOptions>("gradient-checkpointing", "Recompute decoder layers in backward to save activation memory", typeof(bool), o => o.GradientCheckpointing, (o, v) => o with { GradientCheckpointing = (bool)v! }),
        S<TrainingOptions>("lora", "Train LoRA adapters on a frozen base; OUTPUT gets a PEFT adapter", typeof(bool), o => o.Lora, (o, v) => o with { Lora = (bool)v! }),
        S<TrainingOptions>("lora-r", "LoRA rank", typeof(int), o => o.LoraR, (o, v) => o with { LoraR = (int)v! }),
        S<TrainingOptions>("lora-alpha", "LoRA alpha: adapters are scaled by alpha / r", typeof(double), o => o.LoraAlpha, (o, v) => o with { LoraAlpha = (double)v! }),
        S<TrainingOptions>("lora-dropout", "Dropout on the adapters' input", typeof(double), o => o.LoraDropout, (o, v) => o with { LoraDropout = (double)v! }),
        S<TrainingOptions>("lora-targets", "Layers that get adapters: all-linear or a list such as q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj", typeof(string), o => o.LoraTargets, (o, v) => o with { LoraTargets = (string?)v ?? "all-linear" }),
        S<TrainingOptions>("use-rslora", "rsLoRA: scale adapters by alpha / sqrt(r)", typeof(bool), o => o.UseRslora, (o, v) => o with { UseRslora = (bool)v! }),
        S<TrainingOptions>("adapter", "Continue training this PEFT LoRA adapter directory (its r, alpha and targets)", typeof(string), o => o.Adapter, (o, v) => o with { Adapter = (string?)v }),
        S<TrainingOptions>("base-dtype", "dtype of the frozen base with LoRA (bf16 halves its memory)", typeof(BaseDtype), o => o.BaseDtype, (o, v) => o with { BaseDtype = (BaseDtype)v! }, ["f32", "bf16"]),
    ];

    public static Setting<T> S<T>(string name, string description, Type type, Func<T, object?> get, Func<T, object?, T> set, string[]? choices = null) =>
        new() { Name = name, Description = description, Type = type, Get = get, Set = set, Choices = choices };
}
