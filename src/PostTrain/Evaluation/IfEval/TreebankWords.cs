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
