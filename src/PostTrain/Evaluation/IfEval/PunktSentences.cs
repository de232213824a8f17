using System.Text.Json;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation.IfEval;

/// <summary>
/// Sentence splitting as nltk's <c>sent_tokenize</c> does it for English (the Punkt algorithm of Kiss and
/// Strunk, in nltk's implementation): lm-eval's <c>count_sentences</c> counts its sentences, and
/// <c>word_tokenize</c> runs the Treebank word rules on each of them.
///
/// A Punkt model has four tables. The English model's abbreviations, collocations and frequent
/// sentence starters are in <c>PunktEnglish.json</c>. Its fourth table, <c>ortho_context</c> (for some 27,000
/// words from its training corpus: whether each was seen capitalised or lower-case, sentence-initially
/// or inside a sentence), is not included, and every word is treated as never seen. nltk consults that
/// table in one place only: deciding whether a token that ends in a period AND is a known abbreviation,
/// an initial ("J."), a number ("1.", "2024.") or an ellipsis ends the sentence, given the word after
/// it. There we can differ from nltk:
/// <list type="bullet">
/// <item>abbreviation or ellipsis, then a capitalised word that is not one of the 39 frequent sentence
/// starters ("He", "The", "It", ...): we never split ("Dr. Smith"); nltk splits if the word was seen in
/// lower case and never capitalised inside a sentence ("... ok. Let me ...").</item>
/// <item>initial, then a capitalised word: we never split ("J. Bach"); nltk splits if the word was seen in
/// lower case ("... plan B. Then ...").</item>
/// <item>number or initial, then a lower-case word: we never split; nltk splits if the word was seen in lower
/// case at a sentence start and never capitalised (rare).</item>
/// </list>
/// Everything else (periods, ?, ! and their runs, quotes and brackets after them, the abbreviation
/// list, collocations such as "1. Who", sentence starters after an abbreviation, "e.g." ending a
/// sentence) follows nltk exactly; the goldens check it against nltk on texts whose answer does not
/// depend on the missing table.
/// </summary>
internal static class PunktSentences
{
    const int OrthoBegUc = 1 << 1, OrthoMidUc = 1 << 2, OrthoUncUc = 1 << 3;
    const int OrthoBegLc = 1 << 4, OrthoMidLc = 1 << 5, OrthoUncLc = 1 << 6;
    const int OrthoUc = OrthoBegUc | OrthoMidUc | OrthoUncUc;
    const int OrthoLc = OrthoBegLc | OrthoMidLc | OrthoUncLc;

    static readonly HashSet<string> Abbreviations;
    static readonly HashSet<(string, string)> Collocations;
    static readonly HashSet<string> SentenceStarters;
    static readonly Dictionary<string, int> OrthoContext = new();

    static PunktSentences()
    {
        using var stream = typeof(PunktSentences).Assembly.GetManifestResourceStream("PostTrain.Evaluation.IfEval.PunktEnglish.json")
            ?? throw new InvalidOperationException("PunktEnglish.json is not embedded");
        using var json = JsonDocument.Parse(stream);
        var root = json.RootElement;
        Abbreviations = root.GetProperty("abbrev_types").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        Collocations = root.GetProperty("collocations").EnumerateArray()
            .Select(e => (e[0].GetString()!, e[1].GetString()!)).ToHashSet();
        SentenceStarters = root.GetProperty("sent_starters").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
    }

    // Characters that cannot be inside a word: ) " ; } ] * : @ ' ( { [ ? !
    const string NonWord = @"(?:[)"";}\]*:@'({\[?!])";
    const string MultiChar = @"(?:-{2,}|\.{2,}|(?:\." + PyText.Space + "){2,}\\.)";
    const string WordStart = @"[^(""`{\[:;&#*@)}\]\-,]";

    static readonly Regex WordRe = new(
        MultiChar
        + "|(?=" + WordStart + ")" + PyText.NotSpace + "+?"
        + "(?=" + PyText.Space + "|$|" + NonWord + "|" + MultiChar
        + "|,(?=$|" + PyText.Space + "|" + NonWord + "|" + MultiChar + "))"
        + "|" + PyText.NotSpace,
        RegexOptions.CultureInvariant);

    static readonly Regex PeriodContextRe = new(
        @"[.?!](?=(?<after>" + NonWord + "|" + PyText.Space + "+(?<next>" + PyText.NotSpace + "+)))",
        RegexOptions.CultureInvariant);

    static readonly Regex RealignRe = new(@"\A[""')\]}]+?(?:" + PyText.Space + "+|(?=--)|$)", RegexOptions.Multiline | RegexOptions.CultureInvariant);
    static readonly Regex NumericRe = new(@"^-?[.,]?\d[\d,.-]*\.?$", RegexOptions.CultureInvariant);

    sealed class Token
    {
        public readonly string Text;
        public readonly string Type;
        public bool SentBreak, Abbr, Ellipsis;

        public Token(string text)
        {
            Text = text;
            var lower = PyString.Lower(text);
            Type = NumericRe.IsMatch(lower) ? "##number##" : lower;
        }

        public bool PeriodFinal => Text.EndsWith('.');
        public string TypeNoPeriod => Type.Length > 1 && Type[^1] == '.' ? Type[..^1] : Type;
        public string TypeNoSentPeriod => SentBreak ? TypeNoPeriod : Type;
        public bool FirstUpper => PyText.IsUpper(PyText.FirstCodePoint(Text));
        public bool FirstLower => PyText.IsLower(PyText.FirstCodePoint(Text));
        public bool IsEllipsis => Text.Length >= 2 && Text.All(c => c == '.');
        public bool IsInitial => IsInitialToken(Text);
    }

    // [^\W\d]\. : one word character that is not a decimal digit (a letter, a non-decimal number or
    // '_'), then a period.
    static bool IsInitialToken(string t)
    {
        if (t.Length < 2 || t[^1] != '.') return false;
        var first = System.Text.Rune.GetRuneAt(t, 0);
        if (first.Utf16SequenceLength != t.Length - 1) return false;
        var cat = System.Text.Rune.GetUnicodeCategory(first);
        return first.Value == '_' || cat is System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber
            || cat <= System.Globalization.UnicodeCategory.OtherLetter;
    }

    /// <summary>The sentences of <paramref name="text"/>, as nltk's English <c>sent_tokenize</c> returns them.</summary>
    public static List<string> Split(string text)
    {
        var slices = Realign(text, Slices(text));
        var result = new List<string>(slices.Count);
        foreach (var (a, b) in slices) result.Add(text.Substring(a, b - a));
        return result;
    }

    public static int Count(string text) => Split(text).Count;

    static IEnumerable<string> WordTokens(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            if (PyString.Strip(line).Length == 0) continue;
            foreach (Match m in WordRe.Matches(line)) yield return m.Value;
        }
    }

    // Candidate sentence ends and, for each, the text punkt decides on: the word before it, the
    // punctuation and what follows.
    static IEnumerable<(Match Match, string Context)> EndContexts(string text)
    {
        int prevStart = 0, prevStop = 0;
        Match? prev = null;
        foreach (Match m in PeriodContextRe.Matches(text))
        {
            int lastSpace = LastAsciiWhitespace(text, prevStop, m.Index);
            int wordStart = lastSpace > 0 ? lastSpace + prevStop + 1 : prevStart;
            if (prev is not null && prevStop <= wordStart)
                yield return (prev, Sub(text, prevStart, prevStop) + prev.Value + prev.Groups["after"].Value);
            prev = m;
            prevStart = wordStart;
            prevStop = m.Index;
        }
        if (prev is not null)
            yield return (prev, Sub(text, prevStart, prevStop) + prev.Value + prev.Groups["after"].Value);
    }

    // Index (relative to from) of the last of " \t\n\r\v\f" in text[from..to], or 0 when there is none.
    static int LastAsciiWhitespace(string text, int from, int to)
    {
        for (int i = to - 1; i >= from; i--)
            if (text[i] is ' ' or '\t' or '\n' or '\r' or '\v' or '\f') return i - from;
        return 0;
    }

    static string Sub(string text, int a, int b) => a < b ? text[a..b] : "";

    static List<(int, int)> Slices(string text)
    {
        var slices = new List<(int, int)>();
        int lastBreak = 0;
        foreach (var (m, context) in EndContexts(text))
        {
            if (!ContainsSentenceBreak(context)) continue;
            slices.Add((lastBreak, m.Index + m.Length));
            var next = m.Groups["next"];
            lastBreak = next.Success ? next.Index : m.Index + m.Length;
        }
        slices.Add((lastBreak, PyText.RStrip(text).Length));
        return slices;
    }

    static List<(int, int)> Realign(string text, List<(int Start, int Stop)> slices)
    {
        var result = new List<(int, int)>();
        int realign = 0;
        for (int i = 0; i < slices.Count; i++)
        {
            var s1 = (Start: slices[i].Start + realign, slices[i].Stop);
            bool nonEmpty = s1.Start < s1.Stop;
            if (i + 1 == slices.Count)
            {
                if (nonEmpty) result.Add(s1);
                continue;
            }
            var s2 = slices[i + 1];
            var m = RealignRe.Match(Sub(text, s2.Start, s2.Stop));
            if (m.Success)
            {
                result.Add((s1.Start, s2.Start + PyText.RStrip(m.Value).Length));
                realign = m.Index + m.Length;
            }
            else
            {
                realign = 0;
                if (nonEmpty) result.Add(s1);
            }
        }
        return result;
    }

    static bool ContainsSentenceBreak(string context)
    {
        var tokens = WordTokens(context).Select(t => new Token(t)).ToList();
        foreach (var t in tokens) FirstPass(t);
        for (int i = 0; i + 1 < tokens.Count; i++)
        {
            SecondPass(tokens[i], tokens[i + 1]);
            if (tokens[i].SentBreak) return true;
        }
        return false;
    }

    static void FirstPass(Token t)
    {
        var tok = t.Text;
        if (tok is "." or "?" or "!") t.SentBreak = true;
        else if (t.IsEllipsis) t.Ellipsis = true;
        else if (t.PeriodFinal && !tok.EndsWith(".."))
        {
            var stem = PyString.Lower(tok[..^1]);
            if (Abbreviations.Contains(stem) || Abbreviations.Contains(stem.Split('-')[^1])) t.Abbr = true;
            else t.SentBreak = true;
        }
    }

    static int Ortho(string type) => OrthoContext.GetValueOrDefault(type);

    static void SecondPass(Token t1, Token t2)
    {
        if (!t1.PeriodFinal) return;
        var type = t1.TypeNoPeriod;
        var nextType = t2.TypeNoSentPeriod;
        bool initial = t1.IsInitial;

        if (Collocations.Contains((type, nextType)))
        {
            t1.SentBreak = false;
            t1.Abbr = true;
            return;
        }
        if ((t1.Abbr || t1.Ellipsis) && !initial)
        {
            if (OrthoHeuristic(t2) == true || (t2.FirstUpper && SentenceStarters.Contains(nextType)))
            {
                t1.SentBreak = true;
                return;
            }
        }
        if (initial || type == "##number##")
        {
            var starter = OrthoHeuristic(t2);
            if (starter == false)
            {
                t1.SentBreak = false;
                t1.Abbr = true;
                return;
            }
            if (starter is null && initial && t2.FirstUpper && (Ortho(nextType) & OrthoLc) == 0)
            {
                t1.SentBreak = false;
                t1.Abbr = true;
            }
        }
    }

    /// <summary>Whether the token starts a sentence: true, false, or null for "unknown".</summary>
    static bool? OrthoHeuristic(Token t)
    {
        if (t.Text is ";" or ":" or "," or "." or "!" or "?") return false;
        int ortho = Ortho(t.TypeNoSentPeriod);
        if (t.FirstUpper && (ortho & OrthoLc) != 0 && (ortho & OrthoMidUc) == 0) return true;
        if (t.FirstLower && ((ortho & OrthoUc) != 0 || (ortho & OrthoBegLc) == 0)) return false;
        return null;
    }
}
