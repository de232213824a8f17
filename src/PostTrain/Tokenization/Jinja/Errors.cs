namespace PostTrain.Tokenization.Jinja;

/// <summary>A template error: syntax or runtime, naming the template source, line and column.</summary>
public class TemplateError : Exception
{
    public string SourceName { get; }
    public int Line { get; }
    public int Column { get; }
    /// <summary>The message without the location, as jinja2 would word it.</summary>
    public string Detail { get; }

    public TemplateError(string sourceName, int line, int column, string detail, Exception? inner = null)
        : base($"{sourceName}:{line}:{column}: {detail}", inner)
    {
        SourceName = sourceName;
        Line = line;
        Column = column;
        Detail = detail;
    }
}

/// <summary>The template's text cannot be parsed.</summary>
public sealed class TemplateSyntaxError(string sourceName, int line, int column, string detail)
    : TemplateError(sourceName, line, column, "syntax error: " + detail);

/// <summary>An error raised while rendering, before the location is known; the interpreter wraps it.</summary>
public class TemplateRuntimeError(string message) : Exception(message);

/// <summary>raise_exception(message) was called by the template.</summary>
public sealed class RaisedException(string message) : TemplateRuntimeError(message);

/// <summary>
/// What one parse or render may use, so that a template cannot hang or exhaust the machine: jinja2's
/// sandbox caps range() (at 100,000, as <see cref="Builtins"/> does) but not the rest. A template
/// that reaches a limit stops with a <see cref="TemplateError"/> naming the template and line.
/// </summary>
public static class JinjaLimits
{
    /// <summary>Characters a render (or one macro call, {% set %} or filter block) may produce.</summary>
    public const int MaxOutputChars = 1 << 24;
    /// <summary>for-loop iterations over a whole render, nested loops counted in full (about a second of work).</summary>
    public const long MaxLoopIterations = 1_000_000;
    /// <summary>Characters of a string, or items of a list, that +, ~ or * may build.</summary>
    public const long MaxSequenceLength = 1 << 24;
    /// <summary>
    /// Characters a render may build in all (strings from + ~ * % join format replace padding,
    /// and the output of every macro call, {% set %} and filter block), so that many strings each
    /// under <see cref="MaxSequenceLength"/> cannot add up to gigabytes. It counts what is built,
    /// not what stays alive, so it is generous: a template that appends each message to a string
    /// with + builds the square of a conversation's length (a 10 MB conversation in 1,000 turns
    /// builds about 5 G characters and would stop here).
    /// </summary>
    public const long MaxCharsBuilt = 1L << 28;
    /// <summary>Nesting of expressions and blocks in the parser, and of macro calls when rendering.</summary>
    public const int MaxDepth = 500;
}
