using System.CommandLine;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>
/// A method's declared settings (<see cref="SettingTable{TOptions}"/>, in the library) as
/// command-line options: --config FILE and one --NAME per setting, with its help and default.
/// </summary>
public static class SettingOptions
{
    /// <summary>Adds --config and every setting to a command; the returned binding reads them back from a parse.</summary>
    public static SettingBinding<TOptions> AddTo<TOptions>(this SettingTable<TOptions> table, Command command, TOptions defaults)
    {
        var config = ConfigOption.Create();
        var options = new Dictionary<Setting<TOptions>, Option>();
        command.Options.Add(config);
        foreach (var s in table.Settings)
        {
            Option option = s.Type == typeof(bool)
                ? new Option<bool>("--" + s.Name) { Description = s.Help(defaults) }
                : new Option<string?>("--" + s.Name) { Description = s.Help(defaults) };
            options[s] = option;
            command.Options.Add(option);
        }
        return new SettingBinding<TOptions>(table, config, options);
    }
}

/// <summary>A command's own options for a setting table (one per command instance: parses never share options).</summary>
public sealed class SettingBinding<TOptions>(SettingTable<TOptions> table, Option<string?> config, IReadOnlyDictionary<Setting<TOptions>, Option> options)
{
    /// <summary>The effective options: defaults, then the YAML file, then the command line.</summary>
    public TOptions Bind(ParseResult result, TOptions defaults)
    {
        var bound = defaults;
        var configPath = result.GetValue(config);
        if (configPath is not null) bound = table.ReadYaml(bound, configPath);
        foreach (var (s, option) in options)
        {
            var given = result.GetResult(option);
            if (given is null || given.Implicit) continue;
            bound = s.Type == typeof(bool)
                ? s.Set(bound, result.GetValue((Option<bool>)option))
                : table.Apply(bound, s, result.GetValue((Option<string?>)option), "--" + s.Name);
        }
        return bound;
    }
}
