using System.Globalization;
using System.Text;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace PostTrain.Training;

/// <summary>
/// One setting of a method, declared once: its kebab-case name (the command-line option
/// <c>--NAME</c> and the key of a <c>--config</c> YAML file), its help, its type and choices, and
/// how it is read from and written to the options record (which holds the default). The CLI's
/// options and help, the YAML reader and the saved config.yaml all come from this declaration.
/// </summary>
public sealed class Setting<TOptions>
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    public required Type Type { get; init; }
    public required Func<TOptions, object?> Get { get; init; }
    public required Func<TOptions, object?, TOptions> Set { get; init; }
    public string[]? Choices { get; init; }
    /// <summary>Other spellings accepted for a choice (e.g. f32 for float32); written back as the choice.</summary>
    public IReadOnlyDictionary<string, string>? Aliases { get; init; }

    /// <summary>The help text with the choices and the default of <paramref name="defaults"/>.</summary>
    public string Help(TOptions defaults)
    {
        var value = Get(defaults);
        var shown = value is null or false ? "" : $" [default: {SettingTable<TOptions>.Show(this, value)}]";
        return Description + (Choices is null ? "" : $" ({string.Join("|", Choices)})") + shown;
    }
}

/// <summary>
/// The settings of a method: parsed the same way from the command line and from a YAML file, so
/// errors read the same; written back as the run's config.yaml, which reads back to the same options.
/// </summary>
public sealed class SettingTable<TOptions>(IReadOnlyList<Setting<TOptions>> settings)
{
    public IReadOnlyList<Setting<TOptions>> Settings => settings;

    public Setting<TOptions>? Find(string name) => settings.FirstOrDefault(s => s.Name == name);

    /// <summary>Sets one setting from its text; <paramref name="where"/> names the source in errors ("--beta", "run.yaml:3: beta").</summary>
    public TOptions Apply(TOptions options, Setting<TOptions> setting, string? text, string where) =>
        setting.Set(options, Parse(setting, text, where));

    /// <summary>
    /// <paramref name="options"/> with the settings of a YAML file of <c>name: value</c> lines
    /// applied (the keys are the setting names; an unknown key is an error naming its line).
    /// </summary>
    public TOptions ReadYaml(TOptions options, string path)
    {
        foreach (var (name, value, line) in YamlSettings.Read(path))
        {
            var setting = Find(name) ?? throw new InputError($"{path}:{line}: {name}: unknown setting");
            options = Apply(options, setting, value, $"{path}:{line}: {name}");
        }
        return options;
    }

    static object? Parse(Setting<TOptions> s, string? text, string where)
    {
        if (text is null) return null;
        var t = Nullable.GetUnderlyingType(s.Type) ?? s.Type;
        if (s.Aliases?.TryGetValue(text, out var canonical) == true) text = canonical;
        if (s.Choices is not null && !s.Choices.Contains(text))
            throw new InputError($"{where}: '{text}' is not one of {string.Join(", ", s.Choices)}");
        try
        {
            if (t == typeof(string)) return text;
            if (t == typeof(int)) return int.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            if (t == typeof(long)) return long.Parse(text, NumberStyles.Integer, CultureInfo.InvariantCulture);
            if (t == typeof(double)) return double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (t == typeof(bool)) return ParseBool(text) ?? throw new FormatException();
            if (t.IsEnum) return Enum.Parse(t, text.Replace("-", "").Replace("_", ""), ignoreCase: true);
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new InputError($"{where}: '{text}' is not a valid {Describe(t)}");
        }
        throw new InvalidOperationException($"setting type {t}");
    }

    /// <summary>true/yes/1 and false/no/0, any case; null for anything else.</summary>
    public static bool? ParseBool(string text) => text.ToLowerInvariant() switch
    {
        "true" or "yes" or "1" => true,
        "false" or "no" or "0" => false,
        _ => null,
    };

    static string Describe(Type t) => t == typeof(int) || t == typeof(long) ? "integer" : t == typeof(double) ? "number" : t == typeof(bool) ? "true/false" : "value";

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

    /// <summary>A value as its setting spells it (an enum as its choice: dr_grpo for DrGrpo), so config.yaml reads back.</summary>
    internal static string Show(Setting<TOptions> s, object? value) =>
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

/// <summary>A YAML file of top-level <c>name: value</c> settings (the format of --config and config.yaml).</summary>
public static class YamlSettings
{
    /// <summary>The top-level scalar keys of a YAML mapping, with their values (null for null/~/empty) and lines.</summary>
    public static IEnumerable<(string Name, string? Value, long Line)> Read(string path)
    {
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
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
            if (value is YamlSequenceNode list && list.Children.All(c => c is YamlScalarNode))
            {
                // A list is a repeatable option's values, e.g. chat-template-kwargs: [enable_thinking=false].
                foreach (var item in list.Children) yield return (name, ((YamlScalarNode)item).Value, item.Start.Line);
                continue;
            }
            if (value is not YamlScalarNode scalar)
                throw new InputError($"{path}:{key.Start.Line}: {name}: expected a single value");
            yield return (name, scalar.Value is "" or "~" or "null" && scalar.Style == ScalarStyle.Plain ? null : scalar.Value, key.Start.Line);
        }
    }
}
