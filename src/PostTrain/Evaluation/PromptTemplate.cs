using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Evaluation;

/// <summary>
/// A doc_to_text / doc_to_target / doc_to_choice / description template rendered over a
/// document as lm-evaluation-harness renders it (utils.apply_template): jinja2's default
/// whitespace handling, keep_trailing_newline, StrictUndefined (printing a missing field is an
/// error), and the regex_replace filter (Python's re.sub).
/// </summary>
public sealed class PromptTemplate
{
    public static readonly JinjaDialect LmEvalDialect = new(TrimBlocks: false, LstripBlocks: false, KeepTrailingNewline: true, StrictUndefined: true)
    {
        Filters = new Dictionary<string, Func<object?, List<object?>, PyDict, object?>>
        {
            ["regex_replace"] = RegexReplace,
        },
    };

    readonly List<Node> body;
    readonly string name;

    PromptTemplate(string source, string name)
    {
        this.name = name;
        body = Parser.Parse(source, name, LmEvalDialect);
    }

    /// <summary>Parses a template; a syntax error is a <see cref="TemplateError"/>.</summary>
    public static PromptTemplate Parse(string source, string name) => new(source, name);

    /// <summary>Renders over a document's fields; a runtime error is a <see cref="TemplateError"/> or <see cref="TemplateRuntimeError"/>.</summary>
    public string Render(JsonObject doc)
    {
        var context = new Dictionary<string, object?>();
        foreach (var (k, v) in doc) context[k] = ValueConverter.FromNode(v);
        return new Interpreter(name, () => DateTime.Now, LmEvalDialect).Render(body, context);
    }

    static object? RegexReplace(object? value, List<object?> args, PyDict kwargs)
    {
        object? Arg(int i, string key) => i < args.Count ? args[i] : kwargs.TryGetValue(key, out var v) ? v : null;
        var text = PyOps.Str(value);
        var pattern = Arg(0, "pattern") as string ?? throw new TemplateRuntimeError("regex_replace: pattern must be a string");
        var repl = Arg(1, "repl") as string ?? throw new TemplateRuntimeError("regex_replace: repl must be a string");
        var count = Arg(2, "count") is long c ? (int)c : 0;
        PythonRegex regex;
        try
        {
            regex = new PythonRegex(pattern);
        }
        catch (PythonRegexException e)
        {
            throw new TemplateRuntimeError($"regex_replace: {e.Message}");
        }
        // Python's \1 and \g<name> in the replacement are .NET's $1 and ${name}.
        var netRepl = Regex.Replace(repl.Replace("$", "$$"), @"\\(\d+)|\\g<(\w+)>", m => m.Groups[1].Success ? "${" + m.Groups[1].Value + "}" : "${" + m.Groups[2].Value + "}");
        var net = new Regex(regex.DotNetPattern, RegexOptions.None, PythonRegex.DefaultTimeout);
        return count > 0 ? net.Replace(text, netRepl, count) : net.Replace(text, netRepl);
    }
}

/// <summary>
/// Python's ast.literal_eval for the values lm-eval templates produce: lists, tuples, dicts,
/// strings (single or double quoted, with escapes), integers, floats, True, False, None.
/// Lists and tuples become JsonArray, dicts JsonObject.
/// </summary>
public static class PyLiteral
{
    public static JsonNode? Parse(string text)
    {
        int pos = 0;
        var value = ParseValue(text, ref pos);
        SkipSpace(text, ref pos);
        if (pos != text.Length) throw new FormatException($"unexpected '{text[pos]}' at {pos}");
        return value;
    }

    public static bool TryParse(string text, out JsonNode? value)
    {
        try
        {
            value = Parse(text);
            return true;
        }
        catch (FormatException)
        {
            value = null;
            return false;
        }
    }

    static void SkipSpace(string s, ref int pos)
    {
        while (pos < s.Length && char.IsWhiteSpace(s[pos])) pos++;
    }

    static JsonNode? ParseValue(string s, ref int pos)
    {
        SkipSpace(s, ref pos);
        if (pos >= s.Length) throw new FormatException("unexpected end");
        char c = s[pos];
        switch (c)
        {
            case '[' or '(':
            {
                char close = c == '[' ? ']' : ')';
                pos++;
                var list = new JsonArray();
                while (true)
                {
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == close) { pos++; return list; }
                    list.Add(ParseValue(s, ref pos));
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == close) { pos++; return list; }
                    throw new FormatException($"expected ',' or '{close}' at {pos}");
                }
            }
            case '{':
            {
                pos++;
                var o = new JsonObject();
                while (true)
                {
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == '}') { pos++; return o; }
                    var key = ParseValue(s, ref pos);
                    SkipSpace(s, ref pos);
                    if (pos >= s.Length || s[pos] != ':') throw new FormatException($"expected ':' at {pos}");
                    pos++;
                    o[key?.ToString() ?? "None"] = ParseValue(s, ref pos);
                    SkipSpace(s, ref pos);
                    if (pos < s.Length && s[pos] == ',') { pos++; continue; }
                    if (pos < s.Length && s[pos] == '}') { pos++; return o; }
                    throw new FormatException($"expected ',' or '}}' at {pos}");
                }
            }
            case '\'' or '"':
                return JsonValue.Create(ParseString(s, ref pos));
        }
        var m = Regex.Match(s[pos..], @"^(True|False|None|[-+]?(\d[\d_]*)?(\.\d*)?([eE][-+]?\d+)?)");
        var token = m.Value;
        if (token.Length == 0 || token is "+" or "-") throw new FormatException($"unexpected '{c}' at {pos}");
        pos += token.Length;
        return token switch
        {
            "True" => JsonValue.Create(true),
            "False" => JsonValue.Create(false),
            "None" => null,
            _ when long.TryParse(token.Replace("_", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            _ when double.TryParse(token.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
            _ => throw new FormatException($"not a number: {token}"),
        };
    }

    static string ParseString(string s, ref int pos)
    {
        char quote = s[pos++];
        var sb = new StringBuilder();
        while (pos < s.Length && s[pos] != quote)
        {
            char c = s[pos++];
            if (c != '\\') { sb.Append(c); continue; }
            if (pos >= s.Length) break;
            char e = s[pos++];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '0': sb.Append('\0'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': break;
                case 'x': sb.Append((char)System.Convert.ToInt32(s.Substring(pos, 2), 16)); pos += 2; break;
                case 'u': sb.Append((char)System.Convert.ToInt32(s.Substring(pos, 4), 16)); pos += 4; break;
                case 'U': sb.Append(char.ConvertFromUtf32(System.Convert.ToInt32(s.Substring(pos, 8), 16))); pos += 8; break;
                case '\\' or '\'' or '"': sb.Append(e); break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        if (pos >= s.Length) throw new FormatException("unterminated string");
        pos++;
        return sb.ToString();
    }
}
