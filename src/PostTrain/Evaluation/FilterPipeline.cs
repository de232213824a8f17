using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation;

/// <summary>
/// One entry of an lm-eval task's <c>filter_list</c>, e.g.
/// <c>{"name": "strict-match", "filter": [{"function": "regex", "regex_pattern": "#### (\\-?[0-9\\.\\,]+)"},
/// {"function": "take_first"}]}</c>: lm-eval's FilterEnsemble, its steps applied in order to every document's
/// responses. Functions: regex, multi_choice_regex, take_first, take_first_k, majority_vote, lowercase, uppercase,
/// remove_whitespace, map (lm-eval's <c>lm_eval/filters</c>; regex_pos, format_span and custom are not supported).
/// </summary>
/// <remarks>
/// Values are held as lm-eval holds them: each document starts as the list of its responses; take_first turns the
/// list into its first element, and a step that comes after that iterates over whatever the document holds, as
/// Python does (a string's characters, for instance). Where lm-eval's Python would raise while applying (an index
/// past the matches, take_first_k asking for more responses than there are, lowercase of a number), the pipeline
/// throws through the <c>error</c> callback it was built with, naming the step's field.
/// </remarks>
public sealed class FilterPipeline
{
    public string Name { get; }
    readonly FilterStep[] _steps;
    readonly Func<string, string, Exception> _error;

    FilterPipeline(string name, FilterStep[] steps, Func<string, string, Exception> error)
    {
        Name = name;
        _steps = steps;
        _error = error;
    }

    /// <summary>The default lm-eval applies when a task has no filter_list: name "none", take_first.</summary>
    public static FilterPipeline None { get; } =
        new("none", [new TakeFirstStep("filter[0]")], (field, message) => new InvalidOperationException($"{field}: {message}"));

    static readonly string[] Known =
        ["regex", "multi_choice_regex", "take_first", "take_first_k", "majority_vote", "lowercase", "uppercase",
         "remove_whitespace", "map"];

    /// <summary>Builds a pipeline from a filter_list entry. A bad entry throws <c>error(fieldPath, message)</c>, e.g.
    /// <c>error("filter[0].regex_pattern", "does not compile: ...")</c>; the pipeline keeps <paramref name="error"/>
    /// for what can only go wrong while applying it.</summary>
    public static FilterPipeline FromConfig(JsonObject entry, Func<string, string, Exception> error)
    {
        foreach (var (key, _) in entry)
            if (key is not ("name" or "filter"))
                throw error(key, "unknown key (a filter_list entry has name and filter)");
        if (entry["name"] is not JsonValue nameValue || nameValue.GetValueKind() != JsonValueKind.String)
            throw error("name", entry.ContainsKey("name") ? "must be a string" : "is missing");
        var name = nameValue.GetValue<string>();
        if (entry["filter"] is not JsonArray list)
            throw error("filter", entry.ContainsKey("filter") ? "must be a list of {function: ...} entries" : "is missing");

        var steps = new FilterStep[list.Count];
        for (int i = 0; i < list.Count; i++)
        {
            var path = $"filter[{i}]";
            if (list[i] is not JsonObject f) throw error(path, "must be an object with a function key");
            if (f["function"] is not JsonValue fn || fn.GetValueKind() != JsonValueKind.String)
                throw error(path + ".function", f.ContainsKey("function") ? "must be a string" : "is missing");
            var function = fn.GetValue<string>();
            var args = new Args(f, path, error);
            steps[i] = function switch
            {
                "regex" => RegexStep.Create(path, args),
                "multi_choice_regex" => MultiChoiceRegexStep.Create(path, args),
                "take_first" => args.None(new TakeFirstStep(path)),
                "take_first_k" => new TakeFirstKStep(path, args.Integer("k", null)),
                "majority_vote" => args.None(new MajorityVoteStep(path)),
                "lowercase" => args.None(new StringStep(path, "lower", PyString.Lower)),
                "uppercase" => args.None(new StringStep(path, "upper", PyString.Upper)),
                "remove_whitespace" => args.None(new StringStep(path, "strip", PyString.Strip)),
                "map" => MapStep.Create(path, args),
                "regex_pos" or "format_span" or "custom" or "decontaminate" =>
                    throw error(path + ".function", $"lm-eval's '{function}' filter is not supported"),
                _ => throw error(path + ".function",
                    $"unknown filter function '{function}' (known: {string.Join(", ", Known)})"),
            };
            args.RejectUnknown(function);
        }
        return new FilterPipeline(name, steps, error);
    }

    /// <summary>
    /// Applies the pipeline. <paramref name="resps"/>[i] holds document i's raw responses (one per repeat);
    /// <paramref name="docs"/>[i] is its dataset row (multi_choice_regex reads its "choices"). Returns each document's
    /// filtered response as lm-eval holds it: a string (JsonValue) once a step reduced the list to one element
    /// (take_first), else a JsonArray of strings, or of other JSON values where map put them. An element is null
    /// where lm-eval holds None (map's default_value left unset, then take_first).
    /// </summary>
    public JsonNode[] Apply(IReadOnlyList<IReadOnlyList<string>> resps, IReadOnlyList<JsonObject> docs)
    {
        if (resps.Count != docs.Count)
            throw new ArgumentException($"{resps.Count} response lists for {docs.Count} documents");
        var values = new object?[resps.Count];
        for (int i = 0; i < values.Length; i++) values[i] = resps[i].Select(r => (object?)r).ToList();
        if (values.Length > 0)
            foreach (var step in _steps) values = step.Apply(values, docs, _error);
        var result = new JsonNode[values.Length];
        for (int i = 0; i < values.Length; i++) result[i] = Py.ToJson(values[i])!;
        return result;
    }

    /// <summary>A step's arguments: every key but "function", each read at most once; the rest are errors.</summary>
    internal sealed class Args(JsonObject f, string path, Func<string, string, Exception> error)
    {
        readonly HashSet<string> _read = ["function"];
        public string Path => path;
        public Func<string, string, Exception> Error => error;

        public T None<T>(T step)
        {
            RejectUnknown(null);
            return step;
        }

        public void RejectUnknown(string? function)
        {
            foreach (var (key, _) in f)
                if (!_read.Contains(key))
                    throw error($"{path}.{key}", function is null
                        ? "unknown argument (this filter takes none)"
                        : $"unknown argument for {function}");
        }

        public bool Has(string key)
        {
            _read.Add(key);
            return f.ContainsKey(key);
        }

        public JsonNode? Raw(string key)
        {
            _read.Add(key);
            return f[key];
        }

        public string String(string key, string fallback)
        {
            if (!Has(key)) return fallback;
            if (f[key] is JsonValue v && v.GetValueKind() == JsonValueKind.String) return v.GetValue<string>();
            throw error($"{path}.{key}", "must be a string");
        }

        public long Integer(string key, long? fallback)
        {
            if (!Has(key))
                return fallback ?? throw error($"{path}.{key}", "is missing");
            if (f[key] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var l))
                return l;
            if (f[key] is JsonValue w && w.GetValueKind() == JsonValueKind.Number && w.TryGetValue<int>(out var n))
                return n;
            throw error($"{path}.{key}", "must be an integer");
        }

        public bool Bool(string key, bool fallback)
        {
            if (!Has(key)) return fallback;
            if (f[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False)
                return v.GetValue<bool>();
            throw error($"{path}.{key}", "must be true or false");
        }

        public PythonRegex Regex(string key, string pattern, string? field = null)
        {
            try { return new PythonRegex(pattern); }
            catch (PythonRegexException e) { throw error(field ?? $"{path}.{key}", $"does not compile: {e.Message}"); }
        }
    }
}

/// <summary>One function of a pipeline; values are Python-like (see <see cref="Py"/>).</summary>
internal abstract class FilterStep(string path)
{
    public string Path { get; } = path;
    public abstract object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error);

    protected IEnumerable<object?> Items(object? value, int doc, Func<string, string, Exception> error) =>
        Py.Iterate(value) ?? throw error(Path, $"document {doc} holds a {Py.TypeName(value)}, which lm-eval cannot iterate over");
}

/// <summary>lm-eval's RegexFilter: findall, pick group_select, first non-empty element of a tuple, strip.</summary>
internal sealed class RegexStep(string path, PythonRegex regex, long groupSelect, string fallback) : FilterStep(path)
{
    public static RegexStep Create(string path, FilterPipeline.Args args)
    {
        var pattern = args.String("regex_pattern", @"#### (\-?[0-9\.\,]+)");
        return new RegexStep(path, args.Regex("regex_pattern", pattern), args.Integer("group_select", 0),
            args.String("fallback", "[invalid]"));
    }

    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
        {
            var filtered = new List<object?>();
            int r = 0;
            foreach (var resp in Items(values[d], d, error))
            {
                var matches = Regexes.FindAll(regex, resp as string ?? "", Path + ".regex_pattern", d, r, error);
                string match;
                if (matches.Count == 0) match = fallback;
                else
                {
                    var m = matches[Regexes.Index(matches.Count, groupSelect, Path, d, r, error)];
                    match = regex.GroupCount > 1 ? m.FirstOrDefault(x => x.Length > 0) ?? fallback : m[0];
                    match = PyString.Strip(match);
                }
                filtered.Add(match);
                r++;
            }
            result[d] = filtered;
        }
        return result;
    }
}

/// <summary>lm-eval's MultiChoiceRegexFilter: the regex first; failing that, the document's choices (after the
/// ignore options) searched in the response and mapped to "(A)", "(B)", …; failing that, ": B" style letters.</summary>
internal sealed class MultiChoiceRegexStep(
    string path, PythonRegex regex, long groupSelect, string fallback, bool ignoreCase, bool ignorePunctuation,
    PythonRegex[]? ignore) : FilterStep(path)
{
    public static MultiChoiceRegexStep Create(string path, FilterPipeline.Args args)
    {
        var pattern = args.String("regex_pattern", @"#### (\-?[0-9\.\,]+)");
        var regex = args.Regex("regex_pattern", pattern);
        var groupSelect = args.Integer("group_select", 0);
        var fallback = args.String("fallback", "[invalid]");
        var ignoreCase = args.Bool("ignore_case", false);
        var ignorePunctuation = args.Bool("ignore_punctuation", false);
        PythonRegex[]? ignore = null;
        var raw = args.Raw("regexes_to_ignore");
        if (raw is JsonArray list)
        {
            ignore = new PythonRegex[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                var field = $"{path}.regexes_to_ignore[{i}]";
                if (list[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                    throw args.Error(field, "must be a string");
                ignore[i] = args.Regex("regexes_to_ignore", v.GetValue<string>(), field);
            }
        }
        else if (raw is not null) throw args.Error($"{path}.regexes_to_ignore", "must be a list of patterns");
        return new MultiChoiceRegexStep(path, regex, groupSelect, fallback, ignoreCase, ignorePunctuation, ignore);
    }

    bool AnyIgnore => ignore is not null || ignoreCase || ignorePunctuation;

    string FilterIgnores(string s)
    {
        if (ignore is not null) foreach (var rx in ignore) s = rx.RemoveAll(s);
        if (ignoreCase) s = PyString.Lower(s);
        if (ignorePunctuation)
        {
            var sb = new System.Text.StringBuilder(s.Length);
            foreach (var r in s.EnumerateRunes())
                if (!PyString.IsUnicodePunctuation(r.Value)) sb.Append(r.ToString());
            s = sb.ToString();
        }
        return s;
    }

    // find_match: null for "no match at all" (lm-eval's empty findall list), else the picked, stripped match.
    string? FindMatch(PythonRegex rx, object? resp, Dictionary<string, string>? convert, int d, int r,
        Func<string, string, Exception> error)
    {
        var matches = Regexes.FindAll(rx, resp as string ?? "", Path + ".regex_pattern", d, r, error);
        if (matches.Count == 0) return null;
        var m = matches[Regexes.Index(matches.Count, groupSelect, Path, d, r, error)];
        string match;
        if (rx.GroupCount > 1)
        {
            var nonEmpty = m.FirstOrDefault(x => x.Length > 0);
            if (nonEmpty is null) return "";
            match = nonEmpty;
        }
        else match = m[0];
        match = PyString.Strip(match);
        if (match.Length > 0 && convert is not null && convert.TryGetValue(match, out var converted)) match = converted;
        return match;
    }

    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
        {
            if (!docs[d].TryGetPropertyValue("choices", out var choicesNode))
                throw error(Path, $"document {d} has no \"choices\" (multi_choice_regex reads them)");
            var choices = Py.Iterate(Py.FromJson(choicesNode))
                ?? throw error(Path, $"document {d}: \"choices\" must be a list of strings");
            var fallbackPatterns = new List<string>();
            var choiceToAlpha = new Dictionary<string, string>();
            var letters = new List<string>();
            var letterToTarget = new Dictionary<string, string>();
            char next = 'A';
            foreach (var c in choices)
            {
                if (c is not string choice) throw error(Path, $"document {d}: \"choices\" must be a list of strings");
                var m = FilterIgnores(PyString.Strip(choice));
                fallbackPatterns.Add(PythonRegex.Escape(m));
                choiceToAlpha[m] = $"({next})";
                letters.Add(next.ToString());
                letterToTarget[next.ToString()] = $"({next})";
                next++;
            }
            PythonRegex choiceRegex, letterRegex;
            try
            {
                choiceRegex = new PythonRegex(string.Join("|", fallbackPatterns));
                letterRegex = new PythonRegex(@":[\s]*(" + string.Join("|", letters) + ")");
            }
            catch (PythonRegexException e)
            {
                throw error(Path, $"document {d}: lm-eval cannot build its patterns for these {letters.Count} choices ({e.Message})");
            }

            var filtered = new List<object?>();
            int r = 0;
            foreach (var resp in Items(values[d], d, error))
            {
                var match = FindMatch(regex, resp, null, d, r, error);
                if (string.IsNullOrEmpty(match))
                {
                    string? ignored;
                    if (resp is string s) ignored = FilterIgnores(s);
                    else if (AnyIgnore)
                        throw error(Path, $"document {d}, response {r} is a {Py.TypeName(resp)}, not a string");
                    else ignored = null;
                    match = FindMatch(choiceRegex, ignored, choiceToAlpha, d, r, error);
                    if (string.IsNullOrEmpty(match))
                        match = FindMatch(letterRegex, resp, letterToTarget, d, r, error);
                }
                filtered.Add(string.IsNullOrEmpty(match) ? fallback : match);
                r++;
            }
            result[d] = filtered;
        }
        return result;
    }
}

internal static class Regexes
{
    public static List<string[]> FindAll(PythonRegex rx, string input, string field, int doc, int resp,
        Func<string, string, Exception> error)
    {
        try { return rx.FindAll(input); }
        catch (RegexMatchTimeoutException)
        {
            throw error(field, $"matching document {doc}, response {resp} took longer than " +
                $"{PythonRegex.DefaultTimeout.TotalSeconds:0} s (catastrophic backtracking?)");
        }
    }

    // Python's list[i]: a negative index counts from the end; out of range is lm-eval's IndexError.
    public static int Index(int count, long i, string path, int doc, int resp, Func<string, string, Exception> error)
    {
        long j = i < 0 ? i + count : i;
        if (j < 0 || j >= count)
            throw error(path + ".group_select",
                $"is {i}, but document {doc}, response {resp} has {count} match{(count == 1 ? "" : "es")} (lm-eval fails with IndexError)");
        return (int)j;
    }
}

/// <summary>take_first: <c>r[0]</c> of every document.</summary>
internal sealed class TakeFirstStep(string path) : FilterStep(path)
{
    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
        {
            result[d] = values[d] switch
            {
                List<object?> { Count: > 0 } l => l[0],
                string { Length: > 0 } s => PyString.Chars(s)[0],
                List<object?> or string => throw error(Path, $"document {d} holds an empty {Py.TypeName(values[d])}: there is no first response"),
                _ => throw error(Path, $"document {d} holds a {Py.TypeName(values[d])}, which has no first element"),
            };
        }
        return result;
    }
}

/// <summary>take_first_k: <c>r[:k]</c>, after lm-eval's check that the first document has at least k.</summary>
internal sealed class TakeFirstKStep(string path, long k) : FilterStep(path)
{
    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        long have = Py.Length(values[0]) ?? throw error(Path, $"document 0 holds a {Py.TypeName(values[0])}, which has no length");
        if (have < k)
            throw error(Path + ".k", $"is {k}, but document 0 has {have} response{(have == 1 ? "" : "s")} (lm-eval asserts at least k; raise the task's repeats)");
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
        {
            result[d] = values[d] switch
            {
                List<object?> l => l.Take((int)Math.Clamp(k < 0 ? l.Count + k : k, 0, l.Count)).ToList(),
                string s => PyString.Prefix(s, k),
                _ => throw error(Path, $"document {d} holds a {Py.TypeName(values[d])}, which cannot be sliced"),
            };
        }
        return result;
    }
}

/// <summary>majority_vote: the most common response (the first seen among equals), as a one-element list.</summary>
internal sealed class MajorityVoteStep(string path) : FilterStep(path)
{
    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
        {
            var counts = new Dictionary<Py.Key, (object? first, int count, int order)>();
            foreach (var item in Items(values[d], d, error))
            {
                var key = Py.HashKey(item) ?? throw error(Path, $"document {d}: a {Py.TypeName(item)} cannot be counted (unhashable)");
                counts[key] = counts.TryGetValue(key, out var c) ? (c.first, c.count + 1, c.order) : (item, 1, counts.Count);
            }
            if (counts.Count == 0) throw error(Path, $"document {d} has no responses to vote on");
            var best = counts.Values.OrderByDescending(c => c.count).ThenBy(c => c.order).First();
            result[d] = new List<object?> { best.first };
        }
        return result;
    }
}

/// <summary>lowercase, uppercase, remove_whitespace: a str method applied to every response.</summary>
internal sealed class StringStep(string path, string method, Func<string, string> f) : FilterStep(path)
{
    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
            result[d] = Items(values[d], d, error).Select(x => x is string s ? (object?)f(s)
                : throw error(Path, $"document {d}: a {Py.TypeName(x)} has no .{method}() (lm-eval fails with AttributeError)")).ToList();
        return result;
    }
}

/// <summary>map: <c>mapping_dict.get(response, default_value)</c> for every response.</summary>
internal sealed class MapStep(string path, Dictionary<string, object?> mapping, object? defaultValue) : FilterStep(path)
{
    public static MapStep Create(string path, FilterPipeline.Args args)
    {
        var mapping = new Dictionary<string, object?>();
        var raw = args.Raw("mapping_dict");
        if (raw is JsonObject o)
            foreach (var (k, v) in o) mapping[k] = Py.FromJson(v);
        else if (raw is not null) throw args.Error($"{path}.mapping_dict", "must be a mapping (lm-eval asserts a dict)");
        return new MapStep(path, mapping, Py.FromJson(args.Raw("default_value")));
    }

    public override object?[] Apply(object?[] values, IReadOnlyList<JsonObject> docs, Func<string, string, Exception> error)
    {
        var result = new object?[values.Length];
        for (int d = 0; d < values.Length; d++)
            result[d] = Items(values[d], d, error).Select(x => x switch
            {
                string s => mapping.TryGetValue(s, out var v) ? v : defaultValue,
                // Keys are JSON strings, so no other hashable value matches one.
                _ when Py.HashKey(x) is not null => defaultValue,
                _ => throw error(Path, $"document {d}: a {Py.TypeName(x)} cannot be looked up (unhashable)"),
            }).ToList();
        return result;
    }
}

/// <summary>
/// Python values as the filters pass them along: <c>string</c> (str), <c>List&lt;object?&gt;</c> (list),
/// <c>null</c> (None), and JSON from the config (map's values) for anything else: a number or boolean JsonValue,
/// a JsonObject (dict).
/// </summary>
internal static class Py
{
    public readonly record struct Key(int Kind, string? Text, double Number);

    public static object? FromJson(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.Null => null,
        JsonArray a => a.Select(FromJson).ToList(),
        _ => node.DeepClone(),
    };

    public static JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        string s => JsonValue.Create(s),
        List<object?> l => new JsonArray(l.Select(ToJson).ToArray()),
        JsonNode n => n.DeepClone(),
        _ => throw new InvalidOperationException(value.GetType().Name),
    };

    /// <summary><c>for x in value</c>; null when Python cannot iterate over it.</summary>
    public static IEnumerable<object?>? Iterate(object? value) => value switch
    {
        List<object?> l => l,
        string s => PyString.Chars(s),
        JsonObject o => o.Select(p => (object?)p.Key).ToList(),
        _ => null,
    };

    public static long? Length(object? value) => value switch
    {
        List<object?> l => l.Count,
        string s => PyString.Length(s),
        JsonObject o => o.Count,
        _ => null,
    };

    /// <summary>Python's equality for hashable values (1 == 1.0 == True); null for unhashable ones (list, dict).</summary>
    public static Key? HashKey(object? value) => value switch
    {
        null => new Key(0, null, 0),
        string s => new Key(1, s, 0),
        JsonValue v when v.GetValueKind() == JsonValueKind.True => new Key(2, null, 1),
        JsonValue v when v.GetValueKind() == JsonValueKind.False => new Key(2, null, 0),
        JsonValue v when v.GetValueKind() == JsonValueKind.Number =>
            new Key(2, null, double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture)),
        _ => null,
    };

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        string => "str",
        List<object?> => "list",
        JsonObject => "dict",
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => "bool",
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.ToJsonString().IndexOfAny(['.', 'e', 'E']) < 0 ? "int" : "float",
        _ => "value",
    };
}
