using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// The Python 3 string and <c>re</c> semantics that IFEval's checkers need beyond <see cref="PyString"/>
/// (strip, lower, isspace) and <see cref="PythonRegex"/> (patterns): <c>\w</c>, <c>\s</c> and <c>\b</c> as
/// class bodies for the punkt and Treebank rules (Python: letters, numbers and underscore; .NET also takes
/// combining marks and connector punctuation and leaves out Nl/No), <c>str.split()</c>, and
/// <c>str.isupper()</c>/<c>islower()</c> (which use the Unicode Uppercase/Lowercase properties, not only
/// the Lu/Ll categories). The tables follow Python 3.11's Unicode 14 data; .NET's own Unicode data is
/// used for categories, so characters assigned after Unicode 14 may differ.
/// </summary>
internal static class PyText
{
    /// <summary>Python's <c>\w</c> as a .NET character-class body.</summary>
    public const string WordClassBody = @"\p{L}\p{N}_";
    public const string Word = "[" + WordClassBody + "]";
    public const string NotWord = "[^" + WordClassBody + "]";
    /// <summary>Python's <c>\s</c> as a .NET character-class body.</summary>
    public const string SpaceClassBody = @"\s\x1C-\x1F";
    public const string Space = "[" + SpaceClassBody + "]";
    public const string NotSpace = "[^" + SpaceClassBody + "]";
    public const string Boundary = "(?:(?<=" + Word + ")(?!" + Word + ")|(?<!" + Word + ")(?=" + Word + "))";
    public const string NotBoundary = "(?:(?<=" + Word + ")(?=" + Word + ")|(?<!" + Word + ")(?!" + Word + "))";

    /// <summary><c>str.rstrip()</c>.</summary>
    public static string RStrip(string s)
    {
        int b = s.Length;
        while (b > 0 && PyString.IsSpace(s[b - 1])) b--;
        return s.Substring(0, b);
    }

    /// <summary><c>str.split()</c> with no separator.</summary>
    public static List<string> SplitWhitespace(string s)
    {
        var parts = new List<string>();
        int i = 0;
        while (i < s.Length)
        {
            while (i < s.Length && PyString.IsSpace(s[i])) i++;
            int start = i;
            while (i < s.Length && !PyString.IsSpace(s[i])) i++;
            if (i > start) parts.Add(s.Substring(start, i - start));
        }
        return parts;
    }

    // Other_Uppercase and Other_Lowercase (Unicode 14), which Python's isupper/islower count too.
    static readonly (int, int)[] OtherUpper = { (0x2160, 0x216F), (0x24B6, 0x24CF), (0x1F130, 0x1F149), (0x1F150, 0x1F169), (0x1F170, 0x1F189) };
    static readonly (int, int)[] OtherLower =
    {
        (0xAA, 0xAA), (0xBA, 0xBA), (0x2B0, 0x2B8), (0x2C0, 0x2C1), (0x2E0, 0x2E4), (0x345, 0x345), (0x37A, 0x37A),
        (0x1D2C, 0x1D6A), (0x1D78, 0x1D78), (0x1D9B, 0x1DBF), (0x2071, 0x2071), (0x207F, 0x207F), (0x2090, 0x209C),
        (0x2170, 0x217F), (0x24D0, 0x24E9), (0x2C7C, 0x2C7D), (0xA69C, 0xA69D), (0xA770, 0xA770), (0xA7F8, 0xA7F9),
        (0xAB5C, 0xAB5F), (0x10780, 0x10780), (0x10783, 0x10785), (0x10787, 0x107B0), (0x107B2, 0x107BA),
    };

    static bool InRanges((int, int)[] ranges, int v)
    {
        foreach (var (a, b) in ranges) if (v >= a && v <= b) return true;
        return false;
    }

    static bool IsUpperProp(Rune r) => Rune.GetUnicodeCategory(r) == UnicodeCategory.UppercaseLetter || InRanges(OtherUpper, r.Value);
    static bool IsLowerProp(Rune r) => Rune.GetUnicodeCategory(r) == UnicodeCategory.LowercaseLetter || InRanges(OtherLower, r.Value);

    /// <summary><c>str.isupper()</c>: at least one cased character and none lower-case or title-case.</summary>
    public static bool IsUpper(string s)
    {
        bool cased = false;
        foreach (var r in s.EnumerateRunes())
        {
            if (IsLowerProp(r) || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter) return false;
            if (IsUpperProp(r)) cased = true;
        }
        return cased;
    }

    /// <summary><c>str.islower()</c>.</summary>
    public static bool IsLower(string s)
    {
        bool cased = false;
        foreach (var r in s.EnumerateRunes())
        {
            if (IsUpperProp(r) || Rune.GetUnicodeCategory(r) == UnicodeCategory.TitlecaseLetter) return false;
            if (IsLowerProp(r)) cased = true;
        }
        return cased;
    }

    /// <summary>The first code point of a non-empty string as its own string.</summary>
    public static string FirstCodePoint(string s) => Rune.GetRuneAt(s, 0).ToString();

    /// <summary>
    /// The text a translated pattern should search: .NET regexes see a character outside the BMP as
    /// two surrogates, which are neither <c>\w</c> nor <c>\d</c>, while Python sees one code point. So each
    /// such letter or number is replaced by a BMP stand-in of its kind (a decimal digit by U+0660, any
    /// other letter or number by U+A4D0), which keeps <c>\b</c>, <c>\w</c> and <c>\d</c> right next to it;
    /// other characters (emoji) stay as they are. Only counts and yes/no answers are taken from the
    /// result, never positions. A pattern that itself names such a character will not find it.
    /// </summary>
    public static string ForPattern(string text)
    {
        bool any = false;
        foreach (char c in text) if (char.IsSurrogate(c)) { any = true; break; }
        if (!any) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes())
        {
            if (r.IsBmp) { sb.Append((char)r.Value); continue; }
            var cat = Rune.GetUnicodeCategory(r);
            if (cat == UnicodeCategory.DecimalDigitNumber) sb.Append('\u0660');
            else if (cat <= UnicodeCategory.OtherLetter || cat is UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber) sb.Append('\uA4D0');
            else sb.Append(r.ToString());
        }
        return sb.ToString();
    }
}
