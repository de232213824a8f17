using System.CommandLine;
using System.Text;

namespace PostTrain.Cli.Commands;

/// <summary>
/// docs/options.md: every verb's options as markdown tables, rendered from the same command tree
/// as --help (the trainers' rows from their declared settings), so the reference cannot drift
/// from the code; a test compares the committed file with this rendering.
/// </summary>
public static class OptionsReference
{
    public static string Markdown(RootCommand root)
    {
        var sb = new StringBuilder();
        sb.Append("# `posttrain` options\n\n");
        sb.Append("Every verb's options, generated from the declarations `--help` shows (`dotnet test --filter OptionsReference` checks it; ");
        sb.Append("set `POSTTRAIN_WRITE_OPTIONS_DOC=1` to rewrite it). Every option can also come from the `--config` YAML file ");
        sb.Append("under its name without the dashes; the command line overrides the file.\n");
        foreach (var command in root.Subcommands)
        {
            sb.Append("\n## `posttrain ").Append(command.Name).Append("`\n\n").Append(command.Description).Append("\n\n");
            var arguments = command.Arguments.Where(a => !a.Hidden).ToList();
            if (arguments.Count > 0)
                sb.Append("Arguments: ").Append(string.Join(", ", arguments.Select(a => $"`{a.Name.ToUpperInvariant()}` ({Cell(a.Description)})"))).Append("\n\n");
            sb.Append("| option | default | what it does |\n| --- | --- | --- |\n");
            foreach (var option in command.Options.Where(o => !o.Hidden && o.Name is not "--help" and not "-h" and not "-?"))
            {
                var (description, shown) = SplitDefault(option);
                sb.Append("| `").Append(option.Name).Append('`').Append(option.Required ? " (required)" : "")
                  .Append(" | ").Append(shown).Append(" | ").Append(Cell(description)).Append(" |\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>The help text and the default: a declared setting's "[default: X]", or the option's default value.</summary>
    static (string Description, string Default) SplitDefault(Option option)
    {
        var text = option.Description ?? "";
        int at = text.LastIndexOf(" [default: ", StringComparison.Ordinal);
        if (at >= 0 && text.EndsWith(']')) return (text[..at], "`" + text[(at + 11)..^1] + "`");
        if (option.HasDefaultValue && option.GetDefaultValue() is { } value && value is not false && !(value is Array { Length: 0 }))
            return (text, "`" + (value is bool b ? (b ? "true" : "false") : Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture)) + "`");
        return (text, "");
    }

    static string Cell(string? text) => (text ?? "").Replace("|", "\\|").Replace("\n", " ");
}
