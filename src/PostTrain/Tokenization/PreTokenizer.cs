using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PostTrain.Tokenization;

/// <summary>A [Start, End) range of UTF-16 units.</summary>
internal readonly record struct Span(int Start, int End);

/// <summary>One pre-tokenizer step: splits [start, end) of a string into pieces appended to output.</summary>
internal abstract class Splitter
{
    public abstract void Split(string s, int start, int end, List<Span> output);
}

/// <summary>
/// Character classes as Unicode code points (not UTF-16 units) see them: a surrogate pair is one
/// code point, so astral letters such as U+1D400 are \p{L}, as in the Rust regex engines HF uses.
/// </summary>
internal static class CharClass
{
    public const byte L = 1, N = 2, WS = 4, CRLF = 8, Other = 16;
    static readonly byte[] Bmp = BuildBmp();

    static byte[] BuildBmp()
    {
        var t = new byte[65536];
        for (int c = 0; c < 65536; c++)
        {
            if (c is >= 0xD800 and <= 0xDFFF) { t[c] = Other; continue; }
            t[c] = Classify(c);
        }
        return t;
    }

    static byte Classify(int cp)
    {
        if (cp is '\r' or '\n') return WS | CRLF;
        if (cp < 0x10000 && char.IsWhiteSpace((char)cp)) return WS;
        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return L;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return N;
            default:
                return Other;
        }
    }

    /// <summary>Class of the code point at s[i]; len is its UTF-16 length (1 or 2).</summary>
    public static byte At(string s, int i, int end, out int len)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < end && char.IsLowSurrogate(s[i + 1]))
        {
            len = 2;
            return Classify(char.ConvertToUtf32(c, s[i + 1]));
        }
        len = 1;
        return Bmp[c];
    }
}

/// <summary>
/// Hand-written matcher for the split regexes of Qwen2/2.5/3, Llama 3 and GPT-2, with the
/// semantics of the Rust regex engines (leftmost-first alternation, greedy with backtracking,
/// code-point classes). Behavior "Isolated": matches and the gaps between them are all pieces.
/// <code>
/// Qwen:  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
/// Llama: same with \p{N}{1,3}
/// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
/// </code>
/// </summary>
internal sealed class KnownPatternSplitter : Splitter
{
    public const string QwenPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string LlamaPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    readonly bool _gpt2;
    readonly int _maxDigits;

    KnownPatternSplitter(bool gpt2, int maxDigits) { _gpt2 = gpt2; _maxDigits = maxDigits; }

    public static KnownPatternSplitter? TryCreate(string pattern) => pattern switch
    {
        QwenPattern => new KnownPatternSplitter(false, 1),
        LlamaPattern => new KnownPatternSplitter(false, 3),
        Gpt2Pattern => new KnownPatternSplitter(true, int.MaxValue),
        _ => null,
    };

    public override void Split(string s, int start, int end, List<Span> output)
    {
        int i = start;
        while (i < end)
        {
            int j = _gpt2 ? MatchGpt2(s, i, end) : MatchQwen(s, i, end);
            output.Add(new Span(i, j));
            i = j;
        }
    }

    static int Contraction(string s, int i, int end, bool ignoreCase)
    {
        if (s[i] != '\'' || i + 1 >= end) return -1;
        char a = s[i + 1];
        if (ignoreCase)
        {
            if (a == '\u017F') return i + 2; // LONG S case-folds to s
            a = (char)(a | 0x20);
            if (a is not ('s' or 't' or 'r' or 'v' or 'm' or 'l' or 'd') || s[i + 1] > 'z') return -1;
        }
        switch (a)
        {
            case 's' or 't' or 'm' or 'd': return i + 2;
            case 'r' or 'v' or 'l':
                if (i + 2 >= end) return -1;
                char b = s[i + 2];
                if (ignoreCase && b < 128) b = (char)(b | 0x20);
                char want = a == 'l' ? 'l' : 'e';
                return b == want ? i + 3 : -1;
            default: return -1;
        }
    }

    int MatchQwen(string s, int i, int end)
    {
        if (s[i] == '\'')
        {
            int c = Contraction(s, i, end, ignoreCase: true);
            if (c > 0) return c;
        }
        byte cls = CharClass.At(s, i, end, out int len);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if ((cls & CharClass.L) != 0) return LetterRun(s, i + len, end);
        if ((cls & (CharClass.CRLF | CharClass.N)) == 0 && i + len < end &&
            (CharClass.At(s, i + len, end, out int len2) & CharClass.L) != 0)
            return LetterRun(s, i + len + len2, end);
        // \p{N}{1,k}
        if ((cls & CharClass.N) != 0)
        {
            int j = i + len, n = 1;
            while (n < _maxDigits && j < end && (CharClass.At(s, j, end, out int l) & CharClass.N) != 0) { j += l; n++; }
            return j;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        int o = -1;
        if (cls == CharClass.Other) o = i;
        else if (s[i] == ' ' && i + 1 < end && CharClass.At(s, i + 1, end, out _) == CharClass.Other) o = i + 1;
        if (o >= 0)
        {
            int j = OtherRun(s, o, end);
            while (j < end && s[j] is '\r' or '\n') j++;
            return j;
        }
        // whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
        int w = i, lastNl = -1;
        while (w < end && (CharClass.At(s, w, end, out _) & CharClass.WS) != 0)
        {
            if (s[w] is '\r' or '\n') lastNl = w;
            w++;
        }
        if (lastNl >= 0) return lastNl + 1;
        return WhitespaceTail(i, w, end, len);
    }

    int MatchGpt2(string s, int i, int end)
    {
        if (s[i] == '\'')
        {
            int c = Contraction(s, i, end, ignoreCase: false);
            if (c > 0) return c;
        }
        int p = i;
        byte cls = CharClass.At(s, i, end, out int len);
        if (s[i] == ' ' && i + 1 < end)
        {
            byte next = CharClass.At(s, i + 1, end, out _);
            if ((next & (CharClass.WS)) == 0) { p = i + 1; cls = next; }
        }
        if ((cls & CharClass.L) != 0) return LetterRun(s, p, end);
        if ((cls & CharClass.N) != 0)
        {
            int j = p;
            while (j < end && (CharClass.At(s, j, end, out int l) & CharClass.N) != 0) j += l;
            return j;
        }
        if (cls == CharClass.Other) return OtherRun(s, p, end);
        int w = i;
        while (w < end && (CharClass.At(s, w, end, out _) & CharClass.WS) != 0) w++;
        return WhitespaceTail(i, w, end, len);
    }

    /// <summary>\s+(?!\S) then \s+, given the whitespace run [i, w).</summary>
    static int WhitespaceTail(int i, int w, int end, int len)
    {
        if (w == i) return i + len; // not reachable: every code point is L, N, whitespace or other
        if (w == end) return w;
        return w - i >= 2 ? w - 1 : w;
    }

    static int LetterRun(string s, int j, int end)
    {
        while (j < end && (CharClass.At(s, j, end, out int l) & CharClass.L) != 0) j += l;
        return j;
    }

    static int OtherRun(string s, int j, int end)
    {
        while (j < end && CharClass.At(s, j, end, out int l) == CharClass.Other) j += l;
        return j;
    }
}

/// <summary>
/// Fallback for split patterns we have no hand-written matcher for: .NET Regex, run over the
/// text after every astral code point was replaced by one private-use BMP stand-in of the same
/// class, so that one code point is one UTF-16 unit and \p{L} etc. see astral letters correctly.
/// </summary>
internal sealed class RegexSplitter : Splitter
{
    readonly Regex _regex;
    readonly bool _invert;

    public RegexSplitter(Regex regex, bool invert) { _regex = regex; _invert = invert; }

    public override void Split(string s, int start, int end, List<Span> output)
    {
        var sub = s.AsSpan(start, end - start);
        // Map astral code points to stand-ins; remember UTF-16 positions.
        var sb = new StringBuilder(sub.Length);
        var pos = new List<int>(sub.Length + 1);
        for (int i = 0; i < sub.Length;)
        {
            pos.Add(start + i);
            if (char.IsHighSurrogate(sub[i]) && i + 1 < sub.Length && char.IsLowSurrogate(sub[i + 1]))
            {
                int cp = char.ConvertToUtf32(sub[i], sub[i + 1]);
                sb.Append(StandIn(cp));
                i += 2;
            }
            else sb.Append(sub[i++]);
        }
        pos.Add(end);
        var text = sb.ToString();
        int last = 0;
        foreach (var m in _regex.EnumerateMatches(text))
        {
            if (m.Length == 0) continue;
            if (_invert)
            {
                output.Add(new Span(pos[m.Index], pos[m.Index + m.Length]));
                continue;
            }
            if (m.Index > last) output.Add(new Span(pos[last], pos[m.Index]));
            output.Add(new Span(pos[m.Index], pos[m.Index + m.Length]));
            last = m.Index + m.Length;
        }
        if (!_invert && last < text.Length) output.Add(new Span(pos[last], end));
    }

    static char StandIn(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp) switch
    {
        UnicodeCategory.UppercaseLetter => 'A',
        UnicodeCategory.LowercaseLetter => 'a',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.DecimalDigitNumber => '0',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.NonSpacingMark => '\u0301',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.MathSymbol => '+',
        UnicodeCategory.CurrencySymbol => '$',
        UnicodeCategory.ModifierSymbol => '^',
        UnicodeCategory.OtherSymbol => '\u00A9',
        UnicodeCategory.Format => '\u200B',
        _ => '\uE000',
    };
}

/// <summary>Split on a literal string, behavior Isolated.</summary>
internal sealed class LiteralSplitter(string literal) : Splitter
{
    public override void Split(string s, int start, int end, List<Span> output)
    {
        int i = start;
        while (i < end)
        {
            int k = s.AsSpan(i, end - i).IndexOf(literal, StringComparison.Ordinal);
            if (k < 0) break;
            if (k > 0) output.Add(new Span(i, i + k));
            output.Add(new Span(i + k, i + k + literal.Length));
            i += k + literal.Length;
        }
        if (i < end) output.Add(new Span(i, end));
    }
}
