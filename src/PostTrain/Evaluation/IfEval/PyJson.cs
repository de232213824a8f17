namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// Whether Python's <c>json.loads</c> accepts a string. It is stricter than some parsers and looser than
/// others: NaN, Infinity and -Infinity are values; any JSON value may stand at the top level; only
/// " \t\n\r" count as whitespace; control characters below U+0020 may not appear raw inside strings;
/// \u escapes need four hex digits but may name lone surrogates; duplicate keys and numbers of any
/// size are fine; trailing commas, comments and single quotes are not. Nesting deeper than
/// <see cref="MaxDepth"/> counts as invalid (CPython would stop with a RecursionError near 1000).
/// </summary>
internal static class PyJson
{
    public const int MaxDepth = 900;

    public static bool IsValid(string s)
    {
        int i = SkipWs(s, 0);
        if (!Value(s, ref i, 0)) return false;
        return SkipWs(s, i) == s.Length;
    }

    static int SkipWs(string s, int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t' or '\n' or '\r') i++;
        return i;
    }

    static bool Value(string s, ref int i, int depth)
    {
        if (i >= s.Length || depth > MaxDepth) return false;
        char c = s[i];
        switch (c)
        {
            case '"': return String(s, ref i);
            case '{': return Object(s, ref i, depth + 1);
            case '[': return Array(s, ref i, depth + 1);
        }
        foreach (var word in new[] { "null", "true", "false", "NaN", "Infinity", "-Infinity" })
        {
            if (string.CompareOrdinal(s, i, word, 0, word.Length) == 0)
            {
                i += word.Length;
                return true;
            }
        }
        return Number(s, ref i);
    }

    static bool Number(string s, ref int i)
    {
        int j = i;
        if (j < s.Length && s[j] == '-') j++;
        if (j >= s.Length || !IsDigit(s[j])) return false;
        if (s[j] == '0') j++;
        else while (j < s.Length && IsDigit(s[j])) j++;
        if (j + 1 < s.Length && s[j] == '.' && IsDigit(s[j + 1]))
        {
            j += 2;
            while (j < s.Length && IsDigit(s[j])) j++;
        }
        if (j < s.Length && s[j] is 'e' or 'E')
        {
            int k = j + 1;
            if (k < s.Length && s[k] is '+' or '-') k++;
            if (k < s.Length && IsDigit(s[k]))
            {
                while (k < s.Length && IsDigit(s[k])) k++;
                j = k;
            }
        }
        i = j;
        return true;
    }

    static bool IsDigit(char c) => c is >= '0' and <= '9';

    static bool String(string s, ref int i)
    {
        i++;
        while (i < s.Length)
        {
            char c = s[i++];
            if (c == '"') return true;
            if (c < ' ') return false;
            if (c != '\\') continue;
            if (i >= s.Length) return false;
            char e = s[i++];
            if (e == 'u')
            {
                if (i + 4 > s.Length) return false;
                for (int k = 0; k < 4; k++) if (!Uri.IsHexDigit(s[i + k])) return false;
                i += 4;
            }
            else if (e is not ('"' or '\\' or '/' or 'b' or 'f' or 'n' or 'r' or 't')) return false;
        }
        return false;
    }

    static bool Object(string s, ref int i, int depth)
    {
        i = SkipWs(s, i + 1);
        if (i < s.Length && s[i] == '}') { i++; return true; }
        while (true)
        {
            if (i >= s.Length || s[i] != '"' || !String(s, ref i)) return false;
            i = SkipWs(s, i);
            if (i >= s.Length || s[i] != ':') return false;
            i = SkipWs(s, i + 1);
            if (!Value(s, ref i, depth)) return false;
            i = SkipWs(s, i);
            if (i >= s.Length) return false;
            if (s[i] == '}') { i++; return true; }
            if (s[i] != ',') return false;
            i = SkipWs(s, i + 1);
        }
    }

    static bool Array(string s, ref int i, int depth)
    {
        i = SkipWs(s, i + 1);
        if (i < s.Length && s[i] == ']') { i++; return true; }
        while (true)
        {
            if (!Value(s, ref i, depth)) return false;
            i = SkipWs(s, i);
            if (i >= s.Length) return false;
            if (s[i] == ']') { i++; return true; }
            if (s[i] != ',') return false;
            i = SkipWs(s, i + 1);
        }
    }
}
