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
