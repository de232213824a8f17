using System.Text;

namespace PostTrain.Tokenization.Jinja;

/// <summary>
/// The tojson filter as transformers defines it: Python's json.dumps(x, ensure_ascii=False,
/// indent=None, separators=None, sort_keys=False), not HTML-escaped.
/// </summary>
public static class Json
{
    public static string Dumps(object? value, bool ensureAscii = false, object? indent = null, PyTuple? separators = null, bool sortKeys = false)
    {
        string? ind = indent switch
        {
            null => null,
            string s => s,
            long n => new string(' ', (int)Math.Max(0, n)),
            bool b => new string(' ', b ? 1 : 0),
            _ => throw new TemplateRuntimeError("indent must be an int or a string"),
        };
        string itemSep = ind is null ? ", " : ",", keySep = ": ";
        if (separators is not null)
        {
            if (separators.Items.Length != 2) throw new TemplateRuntimeError("separators must be a pair");
            itemSep = PyOps.Str(separators.Items[0]);
            keySep = PyOps.Str(separators.Items[1]);
        }
        var sb = new StringBuilder();
        Write(sb, value, ensureAscii, ind, itemSep, keySep, sortKeys, 0);
        return sb.ToString();
    }

    private static void Newline(StringBuilder sb, string? ind, int level)
    {
        if (ind is null) return;
        sb.Append('\n');
        for (int i = 0; i < level; i++) sb.Append(ind);
    }

    private static void Write(StringBuilder sb, object? v, bool ascii, string? ind, string itemSep, string keySep, bool sort, int level)
    {
        // A list holding one long string many times would make a JSON text far longer than any of its parts.
        Operators.CheckSize(sb.Length, "string");
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(PyOps.Str(l)); break;
            case double d: sb.Append(Float(d)); break;
            case string s: WriteString(sb, s, ascii); break;
            case List<object?> or PyTuple:
                var items = v is PyTuple t ? t.Items.ToList() : (List<object?>)v;
                if (items.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    Newline(sb, ind, level + 1);
                    Write(sb, items[i], ascii, ind, itemSep, keySep, sort, level + 1);
                }
                Newline(sb, ind, level);
                sb.Append(']');
                break;
            case PyDict or Namespace:
                var dict = v is Namespace ns ? ns.Attributes : (PyDict)v;
                if (dict.Count == 0) { sb.Append("{}"); break; }
                IEnumerable<KeyValuePair<object, object?>> pairs = dict;
                if (sort) pairs = dict.OrderBy(kv => kv.Key, Comparer<object>.Create((a, b) => PyOps.Compare(a, b)));
                sb.Append('{');
                bool first = true;
                foreach (var (k, val) in pairs)
                {
                    if (!first) sb.Append(itemSep);
                    first = false;
                    Newline(sb, ind, level + 1);
                    string key = k switch
                    {
                        string ks => ks,
                        bool kb => kb ? "true" : "false",
                        long kl => PyOps.Str(kl),
                        double kd => Float(kd),
                        _ => throw new TemplateRuntimeError($"keys must be str, int, float, bool or None, not {PyOps.TypeName(k)}"),
                    };
                    WriteString(sb, key, ascii);
                    sb.Append(keySep);
                    Write(sb, val, ascii, ind, itemSep, keySep, sort, level + 1);
                }
                Newline(sb, ind, level);
                sb.Append('}');
                break;
            default:
                throw new TemplateRuntimeError($"Object of type {PyOps.TypeName(v)} is not JSON serializable");
        }
    }

    private static string Float(double d) =>
        double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyOps.FloatRepr(d);

    public static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7e)) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
