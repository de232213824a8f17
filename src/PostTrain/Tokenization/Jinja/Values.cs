using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Tokenization.Jinja;

// The value model. Template values are plain .NET objects:
//   null            Python None
//   bool            True / False
//   long            int
//   double          float
//   string          str
//   List<object?>   list
//   PyTuple         tuple (dict items, dictsort, batch)
//   PyDict          dict (insertion ordered)
//   Namespace       namespace()
//   Undefined       jinja2's default Undefined
//   Callable/Macro  functions, bound methods and macros

/// <summary>jinja2's default Undefined: prints as "", is falsy, iterates as empty; most other uses raise.</summary>
public sealed class Undefined
{
    public string? Name { get; }
    public object? Owner { get; }
    public bool HasOwner { get; }
    public object? Key { get; }

    public Undefined(string name) { Name = name; }
    public Undefined(object? owner, object? key) { Owner = owner; HasOwner = true; Key = key; Name = key as string; }

    /// <summary>The message jinja2 would put in its UndefinedError.</summary>
    public string Message()
    {
        if (!HasOwner) return $"'{Name}' is undefined";
        if (Key is not string s) return $"{PyOps.TypeRepr(Owner)} has no element {PyOps.Repr(Key)}";
        return $"'{PyOps.TypeRepr(Owner)}' has no attribute '{s}'";
    }
}

/// <summary>An immutable Python tuple.</summary>
public sealed class PyTuple(object?[] items)
{
    public object?[] Items { get; } = items;
}

/// <summary>Python-style equality on dictionary keys (1 == 1.0 == True).</summary>
public sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();
    public new bool Equals(object? x, object? y) => PyOps.Eq(x, y);
    public int GetHashCode(object obj) => obj switch
    {
        string s => s.GetHashCode(),
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d => d == Math.Floor(d) && Math.Abs(d) < 9e18 ? ((long)d).GetHashCode() : d.GetHashCode(),
        _ => 0,
    };
}

/// <summary>A Python dict: insertion ordered.</summary>
public sealed class PyDict : OrderedDictionary<object, object?>
{
    public PyDict() : base(PyKeyComparer.Instance) { }
}

/// <summary>The object namespace() returns; the only value templates may assign attributes on.</summary>
public sealed class Namespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>A built-in function or bound method.</summary>
public sealed class Callable(string name, Func<Interpreter, List<object?>, PyDict, object?> body)
{
    public string Name { get; } = name;
    public Func<Interpreter, List<object?>, PyDict, object?> Body { get; } = body;
}

/// <summary>A value converted from System.Text.Json or plain .NET values.</summary>
public static class ValueConverter
{
    public static object? From(object? value) => value switch
    {
        null => null,
        Undefined or PyDict or PyTuple or Namespace or Callable or Macro => value,
        string or bool or long or double => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        uint u => (long)u,
        float f => (double)f,
        decimal m => (double)m,
        JsonNode node => FromNode(node),
        JsonElement element => FromElement(element),
        List<object?> list when list.TrueForAll(x => x is null or string or bool or long or double) => list,
        System.Collections.IDictionary dict => FromDictionary(dict),
        System.Collections.IEnumerable seq => FromSequence(seq),
        _ => value.ToString(),
    };

    private static PyDict FromDictionary(System.Collections.IDictionary dict)
    {
        var result = new PyDict();
        foreach (System.Collections.DictionaryEntry e in dict) result[From(e.Key)!] = From(e.Value);
        return result;
    }

    private static List<object?> FromSequence(System.Collections.IEnumerable seq)
    {
        var list = new List<object?>();
        foreach (var x in seq) list.Add(From(x));
        return list;
    }

    public static object? FromNode(JsonNode? node)
    {
        switch (node)
        {
            case null: return null;
            case JsonObject obj:
                var dict = new PyDict();
                foreach (var (k, v) in obj) dict[k] = FromNode(v);
                return dict;
            case JsonArray arr:
                var list = new List<object?>(arr.Count);
                foreach (var v in arr) list.Add(FromNode(v));
                return list;
            default:
                var value = node.AsValue();
                if (value.TryGetValue<JsonElement>(out var element)) return FromElement(element);
                switch (value.GetValueKind())
                {
                    case JsonValueKind.String: return value.GetValue<string>();
                    case JsonValueKind.True: return true;
                    case JsonValueKind.False: return false;
                    case JsonValueKind.Number:
                        if (value.TryGetValue<long>(out var l)) return l;
                        if (value.TryGetValue<int>(out var i)) return (long)i;
                        if (value.TryGetValue<double>(out var d)) return d;
                        if (value.TryGetValue<float>(out var f)) return (double)f;
                        if (value.TryGetValue<decimal>(out var m)) return (double)m;
                        return FromElement(JsonSerializer.SerializeToElement(value));
                    default: return FromElement(JsonSerializer.SerializeToElement(value));
                }
        }
    }

    public static object? FromElement(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined: return null;
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number:
                var raw = e.GetRawText();
                if (raw.IndexOfAny(['.', 'e', 'E']) < 0 && e.TryGetInt64(out var l)) return l;
                return e.GetDouble();
            case JsonValueKind.Array:
                var list = new List<object?>();
                foreach (var x in e.EnumerateArray()) list.Add(FromElement(x));
                return list;
            default:
                var dict = new PyDict();
                foreach (var p in e.EnumerateObject()) dict[p.Name] = FromElement(p.Value);
                return dict;
        }
    }
}

/// <summary>Python semantics of values: truthiness, str(), repr(), equality, ordering.</summary>
public static class PyOps
{
    public static bool Truthy(object? v) => v switch
    {
        null => false,
        Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        PyDict dict => dict.Count > 0,
        PyTuple t => t.Items.Length > 0,
        _ => true,
    };

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        PyDict => "dict",
        PyTuple => "tuple",
        Undefined => "Undefined",
        Namespace => "Namespace",
        Macro => "Macro",
        _ => "function",
    };

    /// <summary>jinja2's object_type_repr: "None" or "dict object".</summary>
    public static string TypeRepr(object? v) => v is null ? "None" : $"{TypeName(v)} object";

    /// <summary>Python str().</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        _ => Repr(v),
    };

    /// <summary>Python repr().</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case string s: return StringRepr(s);
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case PyTuple t: return t.Items.Length == 1 ? "(" + Repr(t.Items[0]) + ",)" : "(" + string.Join(", ", t.Items.Select(Repr)) + ")";
            case PyDict d: return "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case Namespace ns: return "<Namespace " + Repr(ns.Attributes) + ">";
            case Undefined: return "Undefined";
            case Macro m: return $"<Macro '{m.Name}'>";
            case Callable c: return $"<built-in function {c.Name}>";
            default: return Str(v);
        }
    }

    public static string StringRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder();
        sb.Append(quote);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == quote || c == '\\') sb.Append('\\').Append(c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2"));
            else if (c >= 0x80 && c <= 0xa0) sb.Append("\\x").Append(((int)c).ToString("x2"));
            else sb.Append(c);
        }
        sb.Append(quote);
        return sb.ToString();
    }

    /// <summary>Python repr() of a float: shortest round-trip digits, scientific outside [1e-4, 1e16).</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Find the shortest representation that round-trips.
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        bool neg = shortest.StartsWith('-');
        if (neg) shortest = shortest[1..];
        string mantissa = shortest;
        int exp = 0;
        int ePos = shortest.IndexOfAny(['E', 'e']);
        if (ePos >= 0)
        {
            mantissa = shortest[..ePos];
            exp = int.Parse(shortest[(ePos + 1)..], CultureInfo.InvariantCulture);
        }
        int dot = mantissa.IndexOf('.');
        string digits = dot >= 0 ? mantissa.Remove(dot, 1) : mantissa;
        int pointPos = (dot >= 0 ? dot : mantissa.Length) + exp; // position of decimal point within digits
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int decExp = pointPos - 1; // scientific exponent
        string body;
        if (decExp < -4 || decExp >= 16)
        {
            body = digits[..1] + (digits.Length > 1 ? "." + digits[1..] : "") + "e" + (decExp < 0 ? "-" : "+") + Math.Abs(decExp).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (pointPos <= 0)
        {
            body = "0." + new string('0', -pointPos) + digits;
        }
        else if (pointPos >= digits.Length)
        {
            body = digits + new string('0', pointPos - digits.Length) + ".0";
        }
        else
        {
            body = digits[..pointPos] + "." + digits[pointPos..];
        }
        return neg ? "-" + body : body;
    }

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidOperationException("not a number"),
    };

    public static bool Eq(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case List<object?> la:
                if (b is not List<object?> lb || la.Count != lb.Count) return false;
                for (int i = 0; i < la.Count; i++) if (!Eq(la[i], lb[i])) return false;
                return true;
            case PyTuple ta:
                if (b is not PyTuple tb || ta.Items.Length != tb.Items.Length) return false;
                for (int i = 0; i < ta.Items.Length; i++) if (!Eq(ta.Items[i], tb.Items[i])) return false;
                return true;
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count) return false;
                foreach (var (k, v) in da) if (!db.TryGetValue(k, out var w) || !Eq(v, w)) return false;
                return true;
            case Undefined: return b is Undefined;
            default: return ReferenceEquals(a, b);
        }
    }

    public static long ToLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d => (long)d,
        _ => throw new InvalidOperationException("not an integer"),
    };

    /// <summary>Python ordering (&lt;); throws a TypeError message for mismatched types.</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb) return CompareCodepoints(sa, sb);
        if (a is List<object?> la && b is List<object?> lb) return CompareSeq(la, lb, op);
        if (a is PyTuple ta && b is PyTuple tb) return CompareSeq(ta.Items, tb.Items, op);
        throw new TemplateRuntimeError($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static int CompareSeq(IReadOnlyList<object?> a, IReadOnlyList<object?> b, string op)
    {
        for (int i = 0; i < Math.Min(a.Count, b.Count); i++)
        {
            if (Eq(a[i], b[i])) continue;
            return Compare(a[i], b[i], op);
        }
        return a.Count.CompareTo(b.Count);
    }

    public static int CompareCodepoints(string a, string b)
    {
        int i = 0, j = 0;
        while (i < a.Length && j < b.Length)
        {
            int ca = CodepointAt(a, i), cb = CodepointAt(b, j);
            if (ca != cb) return ca.CompareTo(cb);
            i += ca > 0xffff ? 2 : 1;
            j += cb > 0xffff ? 2 : 1;
        }
        return (a.Length - i).CompareTo(b.Length - j);
    }

    private static int CodepointAt(string s, int i) =>
        char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? char.ConvertToUtf32(s[i], s[i + 1]) : s[i];

    /// <summary>Python len().</summary>
    public static long Length(object? v) => v switch
    {
        string s => CodepointLength(s),
        List<object?> l => l.Count,
        PyDict d => d.Count,
        PyTuple t => t.Items.Length,
        Undefined => 0,
        Namespace ns => ns.Attributes.Count,
        _ => throw new TemplateRuntimeError($"object of type '{TypeName(v)}' has no len()"),
    };

    public static int CodepointLength(string s)
    {
        int n = s.Length;
        foreach (var c in s) if (char.IsLowSurrogate(c)) n--;
        return n;
    }

    /// <summary>The code points of a string, as strings (a surrogate pair stays together).</summary>
    public static List<string> Codepoints(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { result.Add(s.Substring(i, 2)); i++; }
            else result.Add(s[i].ToString());
        }
        return result;
    }

    /// <summary>Python iter(): the items a for loop sees.</summary>
    public static List<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        PyTuple t => [.. t.Items],
        PyDict d => [.. d.Keys],
        string s => [.. Codepoints(s)],
        Undefined => [],
        Namespace ns => [.. ns.Attributes.Keys],
        _ => throw new TemplateRuntimeError($"'{TypeName(v)}' object is not iterable"),
    };

    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub) throw new TemplateRuntimeError($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return s.Contains(sub, StringComparison.Ordinal);
            case PyDict d: return item is not null && !(item is List<object?> or PyDict) && d.ContainsKey(item);
            case Undefined: return false;
            default:
                foreach (var x in Iterate(container)) if (Eq(x, item)) return true;
                return false;
        }
    }
}
