using System.Text.RegularExpressions;

namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// nltk's <c>word_tokenize</c> for English: the text is split into sentences (<see cref="PunktSentences"/>),
/// then each sentence goes through nltk's improved Treebank rules (<c>NLTKWordTokenizer</c>): quotes become
/// `` and '', punctuation and brackets are split off, a period only at the end of the sentence,
/// and contractions are split ("don't" -> "do", "n't"; "cannot" -> "can", "not").
/// </summary>
internal static class TreebankWords
{
    const RegexOptions Opt = RegexOptions.CultureInvariant;
    const RegexOptions Ci = RegexOptions.CultureInvariant | RegexOptions.IgnoreCase;
    static readonly string W = PyText.Word, B = PyText.Boundary, S = PyText.Space;

    static readonly (Regex, string)[] StartingQuotes =
    {
        (new Regex("([«“‘„]|[`]+)", Opt), " $1 "),
        (new Regex("^\"", Opt), "``"),
        (new Regex("(``)", Opt), " $1 "),
        (new Regex("([ (\\[{<])(\"|'{2})", Opt), "$1 `` "),
        (new Regex("(')(?!re|ve|ll|m|t|s|d|n)(" + W + ")" + B, Ci), "$1 $2"),
    };

    static readonly (Regex, string)[] Punctuation =
    {
        (new Regex("([^.])(\\.)([\\])}>\"'»”’ ]*)" + S + "*$", Opt), "$1 $2 $3 "),
        (new Regex("([:,])([^\\d])", Opt), " $1 $2"),
        (new Regex("([:,])$", Opt), " $1 "),
        (new Regex("\\.{2,}", Opt), " $0 "),
        (new Regex("[;@#$%&]", Opt), " $0 "),
        (new Regex("([^.])(\\.)([\\])}>\"']*)" + S + "*$", Opt), "$1 $2$3 "),
        (new Regex("[?!]", Opt), " $0 "),
        (new Regex("([^'])' ", Opt), "$1 ' "),
        (new Regex("[*]", Opt), " $0 "),
    };

    static readonly (Regex, string) ParensBrackets = (new Regex("[\\][(){}<>]", Opt), " $0 ");
    static readonly (Regex, string) DoubleDashes = (new Regex("--", Opt), " -- ");

    static readonly (Regex, string)[] EndingQuotes =
    {
        (new Regex("([»”’])", Opt), " $1 "),
        (new Regex("''", Opt), " '' "),
        (new Regex("\"", Opt), " '' "),
        (new Regex("([^' ])('[sS]|'[mM]|'[dD]|') ", Opt), "$1 $2 "),
        (new Regex("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", Opt), "$1 $2 "),
    };

    static readonly Regex[] Contractions =
    {
        new(B + "(can)(not)" + B, Ci),
        new(B + "(d)('ye)" + B, Ci),
        new(B + "(gim)(me)" + B, Ci),
        new(B + "(gon)(na)" + B, Ci),
        new(B + "(got)(ta)" + B, Ci),
        new(B + "(lem)(me)" + B, Ci),
        new(B + "(more)('n)" + B, Ci),
        new(B + "(wan)(na)(?=" + S + ")", Ci),
        new(" ('t)(is)" + B, Ci),
        new(" ('t)(was)" + B, Ci),
    };

    /// <summary>The tokens of one sentence.</summary>
    public static List<string> TokenizeSentence(string text)
    {
        // .NET regexes see a letter or digit outside the BMP as two surrogates, which are not \w; Python sees
        // one word character. Such characters are swapped for a BMP letter (or digit) that is not in the
        // text, and put back in order afterwards: the rules never reorder characters.
        var masked = Mask(text, out var letter, out var digit, out var originals);
        var tokens = Rules(masked);
        if (originals.Count == 0) return tokens;
        int next = 0;
        for (int i = 0; i < tokens.Count; i++)
        {
            if (tokens[i].IndexOf(letter) < 0 && tokens[i].IndexOf(digit) < 0) continue;
            var sb = new System.Text.StringBuilder();
            foreach (char c in tokens[i]) sb.Append(c == letter || c == digit ? originals[next++] : c.ToString());
            tokens[i] = sb.ToString();
        }
        return tokens;
    }

    static readonly char[] LetterStandIns = { '\uA4D0', '\uA4D1', '\uA4D2', '\uA4D3' };
    static readonly char[] DigitStandIns = { '\u1810', '\u1811', '\u1812', '\u1813' };

    static string Mask(string text, out char letter, out char digit, out List<string> originals)
    {
        originals = new List<string>();
        letter = LetterStandIns.First(c => text.IndexOf(c) < 0);
        digit = DigitStandIns.First(c => text.IndexOf(c) < 0);
        if (!text.Any(char.IsSurrogate)) return text;
        var sb = new System.Text.StringBuilder(text.Length);
        foreach (var r in text.EnumerateRunes())
        {
            var cat = System.Text.Rune.GetUnicodeCategory(r);
            bool isDigit = cat == System.Globalization.UnicodeCategory.DecimalDigitNumber;
            bool isWord = isDigit || cat <= System.Globalization.UnicodeCategory.OtherLetter
                || cat is System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber;
            if (r.IsBmp || !isWord) { sb.Append(r.ToString()); continue; }
            originals.Add(r.ToString());
            sb.Append(isDigit ? digit : letter);
        }
        return sb.ToString();
    }

    static List<string> Rules(string text)
    {
        foreach (var (re, to) in StartingQuotes) text = re.Replace(text, to);
        foreach (var (re, to) in Punctuation) text = re.Replace(text, to);
        text = ParensBrackets.Item1.Replace(text, ParensBrackets.Item2);
        text = DoubleDashes.Item1.Replace(text, DoubleDashes.Item2);
        text = " " + text + " ";
        foreach (var (re, to) in EndingQuotes) text = re.Replace(text, to);
        foreach (var re in Contractions) text = re.Replace(text, " $1 $2 ");
        return PyText.SplitWhitespace(text);
    }

    /// <summary><c>nltk.word_tokenize(text)</c>.</summary>
    public static List<string> Tokenize(string text)
    {
        var tokens = new List<string>();
        foreach (var sentence in PunktSentences.Split(text)) tokens.AddRange(TokenizeSentence(sentence));
        return tokens;
    }
}
