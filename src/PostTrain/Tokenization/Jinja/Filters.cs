using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PostTrain.Tokenization.Jinja;

/// <summary>jinja2 3.1's built-in filters (those chat templates use), plus transformers' tojson.</summary>
public static partial class Filters
{
    private sealed class Args(List<object?> positional, PyDict kwargs, string filter)
    {
        public object? Get(int i, string name, object? fallback)
        {
            if (i < positional.Count) return positional[i];
            return kwargs.TryGetValue(name, out var v) ? v : fallback;
        }
        public bool Has(int i, string name) => i < positional.Count || kwargs.ContainsKey(name);
        public List<object?> Rest(int from) => positional.Skip(from).ToList();
        public PyDict Kwargs => kwargs;
        public string Filter => filter;
    }

    /// <summary>Every built-in filter name of jinja2 3.1 (plus transformers' tojson); others fail when the template is parsed, as in jinja2.</summary>
    public static readonly HashSet<string> JinjaNames =
    [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat",
        "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join", "last", "length", "list",
        "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr", "replace", "reverse", "round", "safe",
        "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title", "tojson", "trim", "truncate",
        "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr",
    ];

    public static object? Apply(Interpreter interp, string name, object? value, List<object?> positional, PyDict kwargs)
    {
        var a = new Args(positional, kwargs, name);
        switch (name)
        {
            case "default" or "d":
                bool boolean = PyOps.Truthy(a.Get(1, "boolean", false));
                return value is Undefined || (boolean && !PyOps.Truthy(value)) ? a.Get(0, "default_value", "") : value;
            case "length" or "count": return PyOps.Length(value);
            case "tojson":
                return Json.Dumps(value, PyOps.Truthy(a.Get(0, "ensure_ascii", false)), a.Get(1, "indent", null),
                    a.Get(2, "separators", null) switch { null => null, PyTuple t => t, List<object?> l => new PyTuple([.. l]), _ => throw new TemplateRuntimeError("separators must be a tuple") },
                    PyOps.Truthy(a.Get(3, "sort_keys", false)));
            case "safe": return value;
            case "string": return PyOps.Str(value);
            case "trim": return StringMethods.Strip(Text(value), a.Get(0, "chars", null), true, true);
            case "upper": return Text(value).ToUpperInvariant();
            case "lower": return Text(value).ToLowerInvariant();
            case "capitalize": return StringMethods.Capitalize(Text(value));
            case "title":
                return string.Concat(WordBeginning().Split(Text(value)).Where(p => p.Length > 0)
                    .Select(p => char.ToUpperInvariant(p[0]) + p[1..].ToLowerInvariant()));
            case "replace":
                var count = a.Get(2, "count", null);
                return StringMethods.Replace(Text(value), PyOps.Str(a.Get(0, "old", "")), PyOps.Str(a.Get(1, "new", "")), count is null ? -1 : PyOps.ToLong(count));
            case "join":
                var attr = a.Get(1, "attribute", null);
                var parts = PyOps.Iterate(value).Select(x => PyOps.Str(attr is null ? x : Attribute(x, attr, null))).ToList();
                return Operators.Join(PyOps.Str(a.Get(0, "d", "")), parts);
            case "first":
                var fl = PyOps.Iterate(value);
                return fl.Count > 0 ? fl[0] : new Undefined("No first item, sequence was empty.");
            case "last":
                var ll = PyOps.Iterate(value);
                return ll.Count > 0 ? ll[^1] : new Undefined("No last item, sequence was empty.");
            case "list": return PyOps.Iterate(value).ToList();
            case "items":
                if (value is Undefined) return new List<object?>();
                if (value is not PyDict d) throw new TemplateRuntimeError("Can only get item pairs from a mapping.");
                return d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
            case "int": return ToInt(value, a.Get(0, "default", 0L), a.Get(1, "base", 10L));
            case "float": return ToFloat(value, a.Get(0, "default", 0.0));
            case "abs":
                return value switch
                {
                    long l => (object)Math.Abs(l),
                    double f => (object)Math.Abs(f),
                    bool b => b ? 1L : 0L,
                    _ => throw new TemplateRuntimeError($"bad operand type for abs(): '{PyOps.TypeName(value)}'"),
                };
            case "indent": return Indent(Text(value), a.Get(0, "width", 4L), PyOps.Truthy(a.Get(1, "first", false)), PyOps.Truthy(a.Get(2, "blank", false)));
            case "map": return Map(interp, value, a);
            case "select" or "reject": return Select(interp, value, a, name == "select", false);
            case "selectattr" or "rejectattr": return Select(interp, value, a, name == "selectattr", true);
            case "unique":
            {
                bool cs = PyOps.Truthy(a.Get(0, "case_sensitive", false));
                var uattr = a.Get(1, "attribute", null);
                var seen = new List<object?>();
                var result = new List<object?>();
                foreach (var x in PyOps.Iterate(value))
                {
                    var key = Fold(uattr is null ? x : Attribute(x, uattr, null), cs);
                    if (seen.Any(s => PyOps.Eq(s, key))) continue;
                    seen.Add(key);
                    result.Add(x);
                }
                return result;
            }
            case "dictsort":
            {
                if (value is not PyDict dd) throw new TemplateRuntimeError("You can only sort by either \"key\" or \"value\"");
                bool cs = PyOps.Truthy(a.Get(0, "case_sensitive", false));
                string by = PyOps.Str(a.Get(1, "by", "key"));
                int pos = by == "key" ? 0 : by == "value" ? 1 : throw new TemplateRuntimeError("You can only sort by either \"key\" or \"value\"");
                bool rev = PyOps.Truthy(a.Get(2, "reverse", false));
                var pairs = dd.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
                return Sorted(pairs, x => Fold(((PyTuple)x!).Items[pos], cs), rev);
            }
            case "sort":
            {
                bool rev = PyOps.Truthy(a.Get(0, "reverse", false));
                bool cs = PyOps.Truthy(a.Get(1, "case_sensitive", false));
                var sattr = a.Get(2, "attribute", null);
                return Sorted(PyOps.Iterate(value), x => Fold(sattr is null ? x : Attribute(x, sattr, null), cs), rev);
            }
            case "max" or "min":
            {
                bool cs = PyOps.Truthy(a.Get(0, "case_sensitive", false));
                var mattr = a.Get(1, "attribute", null);
                var items = PyOps.Iterate(value);
                if (items.Count == 0) return new Undefined("No aggregated item, sequence was empty.");
                object? best = items[0];
                foreach (var x in items.Skip(1))
                {
                    int c = PyOps.Compare(Fold(mattr is null ? x : Attribute(x, mattr, null), cs), Fold(mattr is null ? best : Attribute(best, mattr, null), cs));
                    if (name == "max" ? c > 0 : c < 0) best = x;
                }
                return best;
            }
            case "sum":
            {
                var sattr = a.Get(0, "attribute", null);
                object? total = a.Get(1, "start", 0L);
                foreach (var x in PyOps.Iterate(value)) total = Operators.Binary("+", total, sattr is null ? x : Attribute(x, sattr, null));
                return total;
            }
            case "reverse":
                if (value is string rs) return string.Concat(Enumerable.Reverse(PyOps.Codepoints(rs)));
                var rl = PyOps.Iterate(value).ToList();
                rl.Reverse();
                return rl;
            case "round": return Round(value, PyOps.ToLong(a.Get(0, "precision", 0L)), PyOps.Str(a.Get(1, "method", "common")));
            case "wordcount": return (long)WordRegex().Matches(Text(value)).Count;
            case "batch":
            {
                long size = PyOps.ToLong(a.Get(0, "linecount", 1L));
                bool fill = a.Has(1, "fill_with");
                var fillWith = a.Get(1, "fill_with", null);
                var result = new List<object?>();
                List<object?> cur = [];
                foreach (var x in PyOps.Iterate(value))
                {
                    if (cur.Count == size) { result.Add(cur); cur = []; }
                    cur.Add(x);
                }
                if (cur.Count > 0)
                {
                    if (fill && fillWith is not null) while (cur.Count < size) cur.Add(fillWith);
                    result.Add(cur);
                }
                return result;
            }
            case "escape" or "e" or "forceescape":
                return Text(value).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "center":
                return StringMethods.Get(Text(value), "center")!.Body(interp, [PyOps.ToLong(a.Get(0, "width", 80L))], new PyDict());
            case "format":
                return Operators.Binary("%", Text(value), a.Kwargs.Count > 0 ? a.Kwargs : new PyTuple([.. a.Rest(0)]));
            case "attr":
                var an = PyOps.Str(a.Get(0, "name", ""));
                return value is PyDict ad ? (Builtins.GetAttr(new PyDict(), an) is Callable ? Builtins.GetAttr(ad, an) : new Undefined(value, an)) : Builtins.GetAttr(value, an);
            case "pprint": return PyOps.Repr(value);
            default:
                throw new TemplateRuntimeError(JinjaNames.Contains(name) ? $"the '{name}' filter is not supported by this engine" : $"No filter named '{name}'.");
        }
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginning();

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();

    private static string Text(object? v) => PyOps.Str(v);

    private static object? Fold(object? v, bool caseSensitive) => !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    private static List<object?> Sorted(List<object?> items, Func<object?, object?> key, bool reverse)
    {
        var cmp = Comparer<object?>.Create((x, y) => PyOps.Compare(x, y));
        var sorted = reverse ? items.OrderByDescending(key, cmp) : items.OrderBy(key, cmp);
        return sorted.ToList();
    }

    /// <summary>jinja2's attribute getter: "a.b.0" walks items/attributes.</summary>
    private static object? Attribute(object? item, object? attribute, object? fallback)
    {
        IEnumerable<object?> parts = attribute is string s ? s.Split('.').Select(p => long.TryParse(p, out var n) ? (object?)n : p) : [attribute];
        foreach (var p in parts)
        {
            item = Builtins.GetItem(item, p);
            if (item is Undefined && fallback is not null) return fallback;
        }
        return item;
    }

    private static object? ToInt(object? v, object? fallback, object? baseArg)
    {
        switch (v)
        {
            case long l: return l;
            case bool b: return b ? 1L : 0L;
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var t = s.Trim().Replace("_", "");
                int bas = (int)PyOps.ToLong(baseArg);
                try
                {
                    if (bas == 10) return long.Parse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
                    return Convert.ToInt64(t, bas);
                }
                catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
                {
                    return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
                }
            default: return fallback;
        }
    }

    private static object? ToFloat(object? v, object? fallback) => v switch
    {
        long l => (double)l,
        double d => d,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
        _ => fallback,
    };

    private static string Indent(string s, object? width, bool first, bool blank)
    {
        string ind = width is string ws ? ws : new string(' ', (int)PyOps.ToLong(width));
        s += "\n";
        var lines = StringMethods.SplitLines(s);
        string rv;
        if (blank) rv = string.Join("\n" + ind, lines);
        else
        {
            rv = lines[0];
            if (lines.Count > 1) rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? ind + l : l));
        }
        return first ? ind + rv : rv;
    }

    private static object? Round(object? v, long precision, string method)
    {
        if (method is not ("common" or "ceil" or "floor")) throw new TemplateRuntimeError("method must be common, ceil or floor");
        if (method == "common")
        {
            if (v is long or bool) return PyOps.ToLong(v);
            double d = PyOps.ToDouble(v);
            // Python's round(): rounds the exact binary value, ties to even. "F30" prints exact digits.
            if (!double.IsFinite(d) || Math.Abs(d) > 1e20 || precision > 20 || precision < 0) return d;
            var dec = decimal.Parse(d.ToString("F30", CultureInfo.InvariantCulture), NumberStyles.Float, CultureInfo.InvariantCulture);
            return (double)Math.Round(dec, (int)precision, MidpointRounding.ToEven);
        }
        double f = Math.Pow(10, precision);
        double x = PyOps.ToDouble(v) * f;
        return (method == "ceil" ? Math.Ceiling(x) : Math.Floor(x)) / f;
    }

    private static List<object?> Map(Interpreter interp, object? value, Args a)
    {
        var items = PyOps.Iterate(value);
        if (a.Kwargs.TryGetValue("attribute", out var attr))
        {
            var fallback = a.Kwargs.TryGetValue("default", out var dv) ? dv : null;
            return items.Select(x => Attribute(x, attr, fallback)).ToList();
        }
        var filter = PyOps.Str(a.Get(0, "", null));
        var rest = a.Rest(1);
        var kw = new PyDict();
        foreach (var (k, v) in a.Kwargs) kw[k] = v;
        return items.Select(x => Apply(interp, filter, x, rest, kw)).ToList();
    }

    private static List<object?> Select(Interpreter interp, object? value, Args a, bool keep, bool byAttr)
    {
        int off = byAttr ? 1 : 0;
        var attr = byAttr ? a.Get(0, "", null) : null;
        string? test = a.Get(off, "", null) is { } t ? PyOps.Str(t) : null;
        var rest = a.Rest(off + 1);
        var result = new List<object?>();
        foreach (var x in PyOps.Iterate(value))
        {
            var probe = byAttr ? Attribute(x, attr, null) : x;
            bool ok = test is null ? PyOps.Truthy(probe) : Tests.Apply(interp, test, probe, rest, new PyDict());
            if (ok == keep) result.Add(x);
        }
        return result;
    }
}
