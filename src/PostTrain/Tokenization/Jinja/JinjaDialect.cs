namespace PostTrain.Tokenization.Jinja;

/// <summary>
/// How a jinja2 Environment is configured: transformers renders chat templates with trim_blocks
/// and lstrip_blocks, a dropped trailing newline and lenient undefined values;
/// lm-evaluation-harness renders prompt templates (doc_to_text, ...) with jinja2's defaults,
/// keep_trailing_newline, StrictUndefined and a regex_replace filter.
/// </summary>
public sealed record JinjaDialect(bool TrimBlocks, bool LstripBlocks, bool KeepTrailingNewline, bool StrictUndefined)
{
    /// <summary>Filters beyond jinja2's built-ins: (value, positional args, keyword args) -> result.</summary>
    public IReadOnlyDictionary<string, Func<object?, List<object?>, PyDict, object?>> Filters { get; init; } =
        new Dictionary<string, Func<object?, List<object?>, PyDict, object?>>();

    /// <summary>transformers' chat-template environment.</summary>
    public static readonly JinjaDialect Transformers = new(TrimBlocks: true, LstripBlocks: true, KeepTrailingNewline: false, StrictUndefined: false);
}
