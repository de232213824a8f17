using System.Text;

namespace PostTrain.Tokenization.Jinja;

/// <summary>Python arithmetic and comparison: int stays int, / is true division, // and % floor.</summary>
public static class Operators
{
    private static TemplateRuntimeError Unsupported(string op, object? a, object? b) =>
        a is Undefined ua ? new TemplateRuntimeError(ua.Message())
        : b is Undefined ub ? new TemplateRuntimeError(ub.Message())
        : new TemplateRuntimeError($"unsupported operand type(s) for {op}: '{PyOps.TypeName(a)}' and '{PyOps.TypeName(b)}'");

    public static object? Unary(string op, object? v)
    {
        if (v is Undefined u) throw new TemplateRuntimeError(u.Message());
        return (op, v) switch
        {
            ("-", long l) => -l,
            ("-", double d) => -d,
            ("-", bool b) => b ? -1L : 0L,
            ("+", long or double) => v,
            ("+", bool b) => b ? 1L : 0L,
            _ => throw new TemplateRuntimeError($"bad operand type for unary {op}: '{PyOps.TypeName(v)}'"),
        };
    }

    public static object? Binary(string op, object? a, object? b)
    {
        if (op == "~") return Concat(PyOps.Str(a), PyOps.Str(b));
        bool nums = PyOps.IsNumber(a) && PyOps.IsNumber(b);
        bool ints = nums && a is not double && b is not double;
        switch (op)
        {
            case "+":
                if (ints) return PyOps.ToLong(a) + PyOps.ToLong(b);
                if (nums) return PyOps.ToDouble(a) + PyOps.ToDouble(b);
                if (a is string sa && b is string sb) return Concat(sa, sb);
                if (a is List<object?> la && b is List<object?> lb) { CheckSize((long)la.Count + lb.Count, "list"); return (List<object?>)[.. la, .. lb]; }
                if (a is PyTuple ta && b is PyTuple tb) { CheckSize((long)ta.Items.Length + tb.Items.Length, "tuple"); return new PyTuple([.. ta.Items, .. tb.Items]); }
                if (a is string && b is not Undefined || b is string && a is not Undefined)
                    throw new TemplateRuntimeError(a is string ? $"can only concatenate str (not \"{PyOps.TypeName(b)}\") to str" : $"unsupported operand type(s) for +: '{PyOps.TypeName(a)}' and 'str'");
                throw Unsupported("+", a, b);
            case "-":
                if (ints) return PyOps.ToLong(a) - PyOps.ToLong(b);
                if (nums) return PyOps.ToDouble(a) - PyOps.ToDouble(b);
                throw Unsupported("-", a, b);
            case "*":
                if (ints) return PyOps.ToLong(a) * PyOps.ToLong(b);
                if (nums) return PyOps.ToDouble(a) * PyOps.ToDouble(b);
                if (a is string s1 && b is long or bool) return Repeat(s1, PyOps.ToLong(b));
                if (b is string s2 && a is long or bool) return Repeat(s2, PyOps.ToLong(a));
                if (a is List<object?> l1 && b is long or bool) return RepeatList(l1, PyOps.ToLong(b));
                if (b is List<object?> l2 && a is long or bool) return RepeatList(l2, PyOps.ToLong(a));
                throw Unsupported("*", a, b);
            case "/":
                if (!nums) throw Unsupported("/", a, b);
                if (PyOps.ToDouble(b) == 0) throw new TemplateRuntimeError("division by zero");
                return PyOps.ToDouble(a) / PyOps.ToDouble(b);
            case "//":
                if (!nums) throw Unsupported("//", a, b);
                if (PyOps.ToDouble(b) == 0) throw new TemplateRuntimeError("integer division or modulo by zero");
                if (ints) return FloorDiv(PyOps.ToLong(a), PyOps.ToLong(b));
                return Math.Floor(PyOps.ToDouble(a) / PyOps.ToDouble(b));
            case "%":
                if (a is string fmt) return PercentFormat(fmt, b);
                if (!nums) throw Unsupported("%", a, b);
                if (PyOps.ToDouble(b) == 0) throw new TemplateRuntimeError("integer division or modulo by zero");
                if (ints) { long x = PyOps.ToLong(a), y = PyOps.ToLong(b); return x - y * FloorDiv(x, y); }
                double fx = PyOps.ToDouble(a), fy = PyOps.ToDouble(b);
                double r = fx % fy;
                if (r != 0 && (r < 0) != (fy < 0)) r += fy;
                return r;
            case "**":
                if (ints && PyOps.ToLong(b) >= 0)
                {
                    long bas = PyOps.ToLong(a), e = PyOps.ToLong(b), res = 1;
                    try
                    {
                        // By squaring: 1 ** 10**18 must not loop 10**18 times.
                        for (long x = bas, k = e; k > 0; k >>= 1)
                        {
                            if ((k & 1) != 0) res = checked(res * x);
                            if (k > 1) x = checked(x * x);
                        }
                        return res;
                    }
                    catch (OverflowException)
                    {
                        return Math.Pow(bas, e); // Python would keep an exact big int
                    }
                }
                if (nums) return Math.Pow(PyOps.ToDouble(a), PyOps.ToDouble(b));
                throw Unsupported("** or pow()", a, b);
        }
        throw new TemplateRuntimeError($"unknown operator {op}");
    }

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }

    private static string Concat(string a, string b)
    {
        CheckSize((long)a.Length + b.Length, "string");
        return a + b;
    }

    /// <summary>Python's sep.join(parts), its size checked before it is built.</summary>
    internal static string Join(string separator, IReadOnlyList<string> parts)
    {
        CheckSize(parts.Sum(p => (double)p.Length) + (double)separator.Length * Math.Max(0, parts.Count - 1), "string");
        return string.Join(separator, parts);
    }

    /// <summary>A string or list of <paramref name="size"/> characters or items is within <see cref="JinjaLimits.MaxSequenceLength"/>.</summary>
    internal static void CheckSize(double size, string what)
    {
        if (size > JinjaLimits.MaxSequenceLength)
            throw new TemplateRuntimeError($"the {what} would hold {size:N0} {(what == "string" ? "characters" : "items")}, more than the limit of {JinjaLimits.MaxSequenceLength:N0}");
        if (what == "string") Built(size);
    }

    // Characters built by the render running on this thread (see JinjaLimits.MaxCharsBuilt); null outside a render.
    [ThreadStatic] static double? t_built;

    /// <summary>Counts characters a render builds against <see cref="JinjaLimits.MaxCharsBuilt"/>.</summary>
    internal static void Built(double chars)
    {
        if (t_built is not { } built) return;
        t_built = built + chars;
        if (t_built > JinjaLimits.MaxCharsBuilt)
            throw new TemplateRuntimeError($"the template builds more than {JinjaLimits.MaxCharsBuilt:N0} characters in all");
    }

    /// <summary>Starts counting for one render on this thread; disposing stops (and restores an enclosing render's count).</summary>
    internal static IDisposable CountBuilt()
    {
        var outer = t_built;
        t_built = 0;
        return new Restore(() => t_built = outer);
    }

    sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }

    private static string Repeat(string s, long n)
    {
        if (n <= 0 || s.Length == 0) return "";
        CheckSize((double)s.Length * n, "string");
        return new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();
    }

    private static List<object?> RepeatList(List<object?> l, long n)
    {
        if (n > 0) CheckSize((double)l.Count * n, "list");
        var r = new List<object?>();
        for (long i = 0; i < n; i++) r.AddRange(l);
        return r;
    }

    /// <summary>printf-style "%s" formatting (the %s, %d, %r and %% conversions).</summary>
    private static string PercentFormat(string fmt, object? args)
    {
        var values = args is PyTuple t ? t.Items.ToList() : [args];
        var sb = new StringBuilder();
        int k = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            if (c == '%') { sb.Append('%'); continue; }
            if (k >= values.Count) throw new TemplateRuntimeError("not enough arguments for format string");
            var v = values[k++];
            var piece = c switch
            {
                's' => PyOps.Str(v),
                'r' => PyOps.Repr(v),
                'd' or 'i' => PyOps.Str(v is double d ? (long)d : v),
                _ => throw new TemplateRuntimeError($"unsupported format character '{c}'"),
            };
            CheckSize((double)sb.Length + piece.Length, "string");
            sb.Append(piece);
        }
        return sb.ToString();
    }

    public static bool Compare(string op, object? a, object? b) => op switch
    {
        "==" => PyOps.Eq(a, b),
        "!=" => !PyOps.Eq(a, b),
        "<" => PyOps.Compare(a, b, "<") < 0,
        "<=" => PyOps.Compare(a, b, "<=") <= 0,
        ">" => PyOps.Compare(a, b, ">") > 0,
        ">=" => PyOps.Compare(a, b, ">=") >= 0,
        "in" => PyOps.Contains(b, a),
        "notin" => !PyOps.Contains(b, a),
        _ => throw new TemplateRuntimeError($"unknown comparison {op}"),
    };
}
