using System.CommandLine;
using PostTrain.Training;

namespace PostTrain.Cli.Commands;

/// <summary>
/// --config FILE on every verb: a YAML file of <c>name: value</c> settings with the names of the
/// verb's options (without the dashes); the command line overrides it. The trainers bind it with
/// their setting tables (<see cref="SettingBinding{TOptions}"/>); every other verb gets the file's
/// settings as command-line arguments before its own parse (<see cref="Expand"/>).
/// </summary>
public static class ConfigOption
{
    public const string Name = "--config";

    public static Option<string?> Create() => new(Name)
    {
        Description = "YAML file of settings (the options' names without --; the command line overrides it)",
    };

    /// <summary>Adds --config to every verb that does not declare its own.</summary>
    public static void AddToVerbs(RootCommand root)
    {
        foreach (var command in root.Subcommands)
            if (!command.Options.Any(o => o.Name == Name))
                command.Options.Add(new GenericConfig());
    }

    /// <summary>The generic --config of a verb without a setting table (recognised by its type).</summary>
    sealed class GenericConfig : Option<string?>
    {
        public GenericConfig() : base(ConfigOption.Name)
        {
            Description = Create().Description;
        }
    }

    /// <summary>
    /// For a verb with the generic --config: the arguments with the file's settings inserted
    /// before the command line's own (a setting given on the command line is left to it).
    /// Unknown names are errors naming the file and line. Null when there is nothing to expand.
    /// </summary>
    public static string[]? Expand(ParseResult parsed, string[] args)
    {
        var command = parsed.CommandResult.Command;
        if (command.Options.OfType<GenericConfig>().FirstOrDefault() is not { } config) return null;
        var path = parsed.GetValue(config);
        if (path is null) return null;
        var extra = new List<string>();
        foreach (var group in YamlSettings.Read(path).GroupBy(s => s.Name))
        {
            var (name, _, line) = group.First();
            var option = command.Options.FirstOrDefault(o => o.Name == "--" + name || o.Aliases.Contains("--" + name));
            if (option is null || option is GenericConfig)
                throw new InputError($"{path}:{line}: {name}: unknown setting of `{command.Name}`");
            var given = parsed.GetResult(option);
            if (given is not null && !given.Implicit) continue; // the command line overrides the file
            foreach (var (_, value, _) in group)
            {
                if (option.ValueType == typeof(bool))
                {
                    var flag = value is null ? null : SettingTable<object>.ParseBool(value);
                    if (flag is null) throw new InputError($"{path}:{line}: {name}: '{value}' is not a valid true/false");
                    extra.Add($"--{name}={(flag.Value ? "true" : "false")}");
                }
                else if (value is not null)
                {
                    extra.Add("--" + name);
                    extra.Add(value);
                }
            }
        }
        // The verb's name first, then the file's settings, then the rest of the command line.
        int at = Array.IndexOf(args, command.Name);
        return [.. args[..(at + 1)], .. extra, .. args[(at + 1)..]];
    }
}
