using System.Text;

namespace PostTrain.Tokenization.Jinja;

/// <summary>The Python str methods templates call (split, strip, startswith, replace, format, ...).</summary>
public static class StringMethods
{
    /// <summary>Python's str.isspace() for one character.</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    public static Callable? Get(string s, string name) => name switch
    {
        "startswith" => new("startswith", (_, a, _) => Affix(s, a, true)),
        "endswith" => new("endswith", (_, a, _) => Affix(s, a, false)),
        "strip" => new("strip", (_, a, _) => Strip(s, Arg(a, 0), true, true)),
        "lstrip" => new("lstrip", (_, a, _) => Strip(s, Arg(a, 0), true, false)),
        "rstrip" => new("rstrip", (_, a, _) => Strip(s, Arg(a, 0), false, true)),
        "split" => new("split", (_, a, kw) => Split(s, Arg(a, 0, kw, "sep"), Arg(a, 1, kw, "maxsplit") is { } m ? PyOps.ToLong(m) : -1)),
        "rsplit" => new("rsplit", (_, a, kw) => RSplit(s, Arg(a, 0, kw, "sep"), Arg(a, 1, kw, "maxsplit") is { } m ? PyOps.ToLong(m) : -1)),
        "splitlines" => new("splitlines", (_, a, _) => SplitLines(s, a.Count > 0 && PyOps.Truthy(a[0])).Select(x => (object?)x).ToList()),
        "replace" => new("replace", (_, a, _) => Replace(s, PyOps.Str(a[0]), PyOps.Str(a[1]), a.Count > 2 ? PyOps.ToLong(a[2]) : -1)),
        "upper" => new("upper", (_, _, _) => s.ToUpperInvariant()),
        "lower" => new("lower", (_, _, _) => s.ToLowerInvariant()),
        "title" => new("title", (_, _, _) => Title(s)),
        "capitalize" => new("capitalize", (_, _, _) => Capitalize(s)),
        "swapcase" => new("swapcase", (_, _, _) => string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)))),
        "find" => new("find", (_, a, _) => (long)CpIndex(s, s.IndexOf(PyOps.Str(a[0]), StringComparison.Ordinal))),
        "rfind" => new("rfind", (_, a, _) => (long)CpIndex(s, s.LastIndexOf(PyOps.Str(a[0]), StringComparison.Ordinal))),
        "index" => new("index", (_, a, _) =>
        {
            int i = s.IndexOf(PyOps.Str(a[0]), StringComparison.Ordinal);
            return i < 0 ? throw new TemplateRuntimeError("substring not found") : (long)CpIndex(s, i);
        }),
        "count" => new("count", (_, a, _) => (long)Count(s, PyOps.Str(a[0]))),
        "join" => new("join", (_, a, _) => Operators.Join(s, PyOps.Iterate(a[0]).Select(x => x is string str ? str
            : throw new TemplateRuntimeError($"sequence item: expected str instance, {PyOps.TypeName(x)} found")).ToList())),
        "format" => new("format", (_, a, kw) => Format(s, a, kw)),
        "isdigit" => new("isdigit", (_, _, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isnumeric" => new("isnumeric", (_, _, _) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => new("isalpha", (_, _, _) => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => new("isalnum", (_, _, _) => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => new("isspace", (_, _, _) => s.Length > 0 && s.All(IsSpace)),
        "islower" => new("islower", (_, _, _) => s.Any(char.IsLetter) && !s.Any(char.IsUpper)),
        "isupper" => new("isupper", (_, _, _) => s.Any(char.IsLetter) && !s.Any(char.IsLower)),
        "zfill" => new("zfill", (_, a, _) => s.PadLeft((int)PyOps.ToLong(a[0]), '0')),
        "center" => new("center", (_, a, _) => Center(s, Width(a[0]))),
        "ljust" => new("ljust", (_, a, _) => s.PadRight(Width(a[0]))),
        "rjust" => new("rjust", (_, a, _) => s.PadLeft(Width(a[0]))),
        _ => null,
    };

    private static object? Arg(List<object?> a, int i) => i < a.Count ? a[i] : null;
    private static object? Arg(List<object?> a, int i, PyDict kw, string name) =>
        i < a.Count ? a[i] : kw.TryGetValue(name, out var v) ? v : null;

    private static int CpIndex(string s, int utf16) => utf16 < 0 ? -1 : PyOps.CodepointLength(s[..utf16]);

    private static bool Affix(string s, List<object?> a, bool prefix)
    {
        var options = a[0] is PyTuple t ? t.Items : a[0] is List<object?> l ? [.. l] : [a[0]];
        foreach (var o in options)
        {
            if (o is not string p) throw new TemplateRuntimeError($"{(prefix ? "startswith" : "endswith")} first arg must be str or a tuple of str, not {PyOps.TypeName(o)}");
            if (prefix ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    public static string Strip(string s, object? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? IsSpace : chars is string cs ? cs.Contains : throw new TemplateRuntimeError("strip arg must be None or str");
        int a = 0, b = s.Length;
        if (left) while (a < b && strip(s[a])) a++;
        if (right) while (b > a && strip(s[b - 1])) b--;
        return s[a..b];
    }

    public static List<object?> Split(string s, object? sep, long max)
    {
        var r = new List<object?>();
        if (sep is null)
        {
            int i = 0;
            while (true)
            {
                while (i < s.Length && IsSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && r.Count == max) { r.Add(s[i..].TrimEnd().Length == 0 ? s[i..] : Strip(s[i..], null, false, true)); break; }
                int j = i;
                while (j < s.Length && !IsSpace(s[j])) j++;
                r.Add(s[i..j]);
                i = j;
            }
            return r;
        }
        var d = PyOps.Str(sep);
        if (d.Length == 0) throw new TemplateRuntimeError("empty separator");
        int start = 0;
        while (max < 0 || r.Count < max)
        {
            int k = s.IndexOf(d, start, StringComparison.Ordinal);
            if (k < 0) break;
            r.Add(s[start..k]);
            start = k + d.Length;
        }
        r.Add(s[start..]);
        return r;
    }

    public static List<object?> RSplit(string s, object? sep, long max)
    {
        if (max < 0) return Split(s, sep, -1);
        var r = new List<object?>();
        if (sep is null)
        {
            int j = s.Length;
            while (true)
            {
                while (j > 0 && IsSpace(s[j - 1])) j--;
                if (j <= 0) break;
                if (r.Count == max) { r.Add(s[..j]); break; }
                int i = j;
                while (i > 0 && !IsSpace(s[i - 1])) i--;
                r.Add(s[i..j]);
                j = i;
            }
            r.Reverse();
            return r;
        }
        var d = PyOps.Str(sep);
        if (d.Length == 0) throw new TemplateRuntimeError("empty separator");
        int end = s.Length;
        while (r.Count < max)
        {
            int k = end - d.Length < 0 ? -1 : s.LastIndexOf(d, end - 1, end, StringComparison.Ordinal);
            if (k < 0 || k + d.Length > end) break;
            r.Add(s[(k + d.Length)..end]);
            end = k;
        }
        r.Add(s[..end]);
        r.Reverse();
        return r;
    }

    /// <summary>Python's str.splitlines (all of its line boundaries).</summary>
    public static List<string> SplitLines(string s, bool keepEnds = false)
    {
        var r = new List<string>();
        int start = 0, i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            int eol = c switch
            {
                '\r' => i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1,
                '\n' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029' => 1,
                _ => 0,
            };
            if (eol == 0) { i++; continue; }
            r.Add(keepEnds ? s[start..(i + eol)] : s[start..i]);
            i += eol;
            start = i;
        }
        if (start < s.Length) r.Add(s[start..]);
        return r;
    }

    // A padding width, within the string size limit (and never wrapped to a negative int).
    private static int Width(object? w)
    {
        long width = PyOps.ToLong(w);
        Operators.CheckSize(width, "string");
        return (int)Math.Max(0, width);
    }

    public static string Replace(string s, string old, string neu, long count)
    {
        if (neu.Length > old.Length)
        {
            // The result's exact length, before building it: replacements can multiply a string.
            long occurrences = 0;
            if (old.Length == 0) occurrences = s.Length + 1;
            else for (int k = s.IndexOf(old, StringComparison.Ordinal); k >= 0; k = s.IndexOf(old, k + old.Length, StringComparison.Ordinal)) occurrences++;
            if (count >= 0) occurrences = Math.Min(occurrences, count);
            Operators.CheckSize(s.Length + (double)occurrences * (neu.Length - old.Length), "string");
        }
        if (count < 0) return old.Length == 0 ? InsertBetween(s, neu) : s.Replace(old, neu, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long n = 0; n < count && old.Length > 0; n++)
        {
            int k = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (k < 0) break;
            sb.Append(s, pos, k - pos).Append(neu);
            pos = k + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static string InsertBetween(string s, string neu) => neu + string.Concat(PyOps.Codepoints(s).Select(c => c + neu));

    private static int Count(string s, string sub)
    {
        if (sub.Length == 0) return PyOps.CodepointLength(s) + 1;
        int n = 0, pos = 0;
        while ((pos = s.IndexOf(sub, pos, StringComparison.Ordinal)) >= 0) { n++; pos += sub.Length; }
        return n;
    }

    /// <summary>Python's str.title(): a cased letter after an uncased character starts a word.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (var c in s)
        {
            bool cased = char.IsUpper(c) || char.IsLower(c) || char.IsLetter(c) && char.ToUpperInvariant(c) != char.ToLowerInvariant(c);
            sb.Append(cased ? (prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)) : c);
            prevCased = cased;
        }
        return sb.ToString();
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    private static string Center(string s, int width)
    {
        if (width <= s.Length) return s;
        int total = width - s.Length;
        int left = total / 2 + (total & width & 1);
        return new string(' ', left) + s + new string(' ', total - left);
    }

    /// <summary>str.format with "{}", "{0}", "{name}" and "{{ }}" (no format specs beyond a plain field).</summary>
    public static string Format(string fmt, List<object?> args, PyDict kw)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c == '{')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '{') { sb.Append('{'); i++; continue; }
                int close = fmt.IndexOf('}', i);
                if (close < 0) throw new TemplateRuntimeError("Single '{' encountered in format string");
                string field = fmt[(i + 1)..close];
                int colon = field.IndexOf(':');
                if (colon >= 0) field = field[..colon];
                object? v;
                if (field.Length == 0) v = auto < args.Count ? args[auto++] : throw new TemplateRuntimeError("Replacement index out of range");
                else if (int.TryParse(field, out int idx)) v = idx < args.Count ? args[idx] : throw new TemplateRuntimeError($"Replacement index {idx} out of range");
                else v = kw.TryGetValue(field, out var kv) ? kv : throw new TemplateRuntimeError($"'{field}'");
                var piece = PyOps.Str(v);
                Operators.CheckSize((double)sb.Length + piece.Length, "string");
                sb.Append(piece);
                i = close;
            }
            else if (c == '}')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '}') i++;
                sb.Append('}');
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
