using System.Globalization;
using System.Text;

namespace PostTrain.Tokenization.Jinja;

/// <summary>
/// Global functions (range, namespace, dict, raise_exception, strftime_now), attribute and item
/// lookup with jinja2's sandbox rules, slicing, and the Python str/dict/list methods templates call.
/// </summary>
public static class Builtins
{
    public static readonly IReadOnlyDictionary<string, object?> Globals = new Dictionary<string, object?>
    {
        ["range"] = new Callable("range", (_, a, _) => Range(a)),
        ["namespace"] = new Callable("namespace", (_, a, kw) =>
        {
            var ns = new Namespace();
            foreach (var arg in a)
                if (arg is PyDict d) foreach (var (k, v) in d) ns.Attributes[k] = v;
            foreach (var (k, v) in kw) ns.Attributes[k] = v;
            return ns;
        }),
        ["dict"] = new Callable("dict", (_, a, kw) =>
        {
            var d = new PyDict();
            if (a.Count > 0 && a[0] is PyDict src) foreach (var (k, v) in src) d[k] = v;
            foreach (var (k, v) in kw) d[k] = v;
            return d;
        }),
        ["raise_exception"] = new Callable("raise_exception", (_, a, _) =>
            throw new RaisedException(a.Count > 0 ? PyOps.Str(a[0]) : "")),
        ["strftime_now"] = new Callable("strftime_now", (interp, a, _) =>
            Strftime(interp.Now(), a.Count > 0 ? PyOps.Str(a[0]) : "")),
    };

    private static List<object?> Range(List<object?> a)
    {
        long start = 0, stop, step = 1;
        if (a.Count == 1) stop = PyOps.ToLong(a[0]);
        else if (a.Count >= 2) { start = PyOps.ToLong(a[0]); stop = PyOps.ToLong(a[1]); if (a.Count > 2) step = PyOps.ToLong(a[2]); }
        else throw new TemplateRuntimeError("range expected at least 1 argument, got 0");
        if (step == 0) throw new TemplateRuntimeError("range() arg 3 must not be zero");
        var r = new List<object?>();
        for (long i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            r.Add(i);
            if (r.Count > 100_000) throw new TemplateRuntimeError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
        }
        return r;
    }

    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    private static readonly string[] Days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

    /// <summary>Python's datetime.strftime for the common directives (C locale), with glibc's "%-d" style.</summary>
    public static string Strftime(DateTime t, string fmt)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            bool noPad = false;
            if (c == '-' && i + 1 < fmt.Length) { noPad = true; c = fmt[++i]; }
            string two(int v) => noPad ? v.ToString(CultureInfo.InvariantCulture) : v.ToString("00", CultureInfo.InvariantCulture);
            int dow = ((int)t.DayOfWeek + 6) % 7;
            sb.Append(c switch
            {
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => two(t.Year % 100),
                'm' => two(t.Month),
                'd' => two(t.Day),
                'e' => t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'H' => two(t.Hour),
                'I' => two(t.Hour % 12 == 0 ? 12 : t.Hour % 12),
                'M' => two(t.Minute),
                'S' => two(t.Second),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'B' => Months[t.Month - 1],
                'b' or 'h' => Months[t.Month - 1][..3],
                'A' => Days[dow],
                'a' => Days[dow][..3],
                'j' => noPad ? t.DayOfYear.ToString(CultureInfo.InvariantCulture) : t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                'F' => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + c,
            });
        }
        return sb.ToString();
    }

    // ---- lookup ----

    private static readonly HashSet<string> UnsafeListMethods = ["append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse"];
    private static readonly HashSet<string> UnsafeDictMethods = ["update", "pop", "popitem", "setdefault", "clear"];

    /// <summary>`obj.name`: an attribute (method) first, then an item, else Undefined.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u: throw new TemplateRuntimeError(u.Message());
            case PyDict d:
                if (DictMethod(d, name) is { } dm) return dm;
                return d.TryGetValue(name, out var v) ? v : new Undefined(obj, name);
            case string s:
                return (object?)StringMethods.Get(s, name) ?? new Undefined(obj, name);
            case List<object?> l:
                return (object?)ListMethod(l, name) ?? new Undefined(obj, name);
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var nv) ? nv : new Undefined(obj, name);
            case LoopInfo loop:
                return loop.Get(name);
            default:
                return new Undefined(obj, name);
        }
    }

    /// <summary>`obj[key]`: an item first, then (for a string key) an attribute, else Undefined.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u: throw new TemplateRuntimeError(u.Message());
            case PyDict d:
                if (key is not null && key is not (List<object?> or PyDict) && d.TryGetValue(key, out var v)) return v;
                break;
            case List<object?> l when key is long or bool:
                long i = PyOps.ToLong(key);
                if (i < 0) i += l.Count;
                if (i >= 0 && i < l.Count) return l[(int)i];
                return new Undefined(obj, key);
            case PyTuple t when key is long or bool:
                long ti = PyOps.ToLong(key);
                if (ti < 0) ti += t.Items.Length;
                if (ti >= 0 && ti < t.Items.Length) return t.Items[(int)ti];
                return new Undefined(obj, key);
            case string s when key is long or bool:
                var cps = PyOps.Codepoints(s);
                long si = PyOps.ToLong(key);
                if (si < 0) si += cps.Count;
                if (si >= 0 && si < cps.Count) return cps[(int)si];
                return new Undefined(obj, key);
        }
        if (key is string name) return GetAttr(obj, name);
        return new Undefined(obj, key);
    }

    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        List<object?> items = obj switch
        {
            List<object?> l => l,
            PyTuple t => [.. t.Items],
            string s => [.. PyOps.Codepoints(s)],
            _ => throw new TemplateRuntimeError($"'{PyOps.TypeName(obj)}' object is not subscriptable"),
        };
        long n = items.Count;
        long st = step is null ? 1 : PyOps.ToLong(step);
        if (st == 0) throw new TemplateRuntimeError("slice step cannot be zero");
        long lo, hi;
        if (st > 0)
        {
            lo = start is null ? 0 : Clamp(PyOps.ToLong(start), n, 0, n);
            hi = stop is null ? n : Clamp(PyOps.ToLong(stop), n, 0, n);
        }
        else
        {
            lo = start is null ? n - 1 : Clamp(PyOps.ToLong(start), n, -1, n - 1);
            hi = stop is null ? -1 : Clamp(PyOps.ToLong(stop), n, -1, n - 1);
        }
        var result = new List<object?>();
        for (long i = lo; st > 0 ? i < hi : i > hi; i += st) result.Add(items[(int)i]);
        return obj switch
        {
            string => string.Concat(result.Cast<string>()),
            PyTuple => new PyTuple([.. result]),
            _ => result,
        };
    }

    private static long Clamp(long i, long n, long min, long max)
    {
        if (i < 0) i += n;
        return Math.Clamp(i, min, max);
    }

    private static Callable? DictMethod(PyDict d, string name)
    {
        if (UnsafeDictMethods.Contains(name)) throw new TemplateRuntimeError($"access to attribute '{name}' of 'dict' object is unsafe.");
        return name switch
        {
            "items" => new Callable("items", (_, _, _) => d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList()),
            "keys" => new Callable("keys", (_, _, _) => d.Keys.Select(k => (object?)k).ToList()),
            "values" => new Callable("values", (_, _, _) => d.Values.ToList()),
            "get" => new Callable("get", (_, a, _) =>
                a.Count > 0 && a[0] is not null && d.TryGetValue(a[0]!, out var v) ? v : a.Count > 1 ? a[1] : null),
            "copy" => new Callable("copy", (_, _, _) => { var c = new PyDict(); foreach (var (k, v) in d) c[k] = v; return c; }),
            _ => null,
        };
    }

    private static Callable? ListMethod(List<object?> l, string name)
    {
        if (UnsafeListMethods.Contains(name)) throw new TemplateRuntimeError($"access to attribute '{name}' of 'list' object is unsafe.");
        return name switch
        {
            "index" => new Callable("index", (_, a, _) =>
            {
                for (int i = 0; i < l.Count; i++) if (PyOps.Eq(l[i], a[0])) return (long)i;
                throw new TemplateRuntimeError($"{PyOps.Repr(a[0])} is not in list");
            }),
            "count" => new Callable("count", (_, a, _) => (long)l.Count(x => PyOps.Eq(x, a[0]))),
            "copy" => new Callable("copy", (_, _, _) => l.ToList()),
            _ => null,
        };
    }
}
