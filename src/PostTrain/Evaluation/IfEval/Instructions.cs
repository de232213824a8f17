using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation.IfEval;

/// <summary>One instruction of an IFEval prompt, built from its kwargs; tells whether a response follows it.</summary>
internal abstract class Instruction
{
    public abstract bool Follows(string response);

    protected static bool Compare(long count, string relation, long threshold) =>
        relation == Relations.LessThan ? count < threshold : count >= threshold;
}

internal static class Relations
{
    public const string LessThan = "less than";
    public const string AtLeast = "at least";
}

/// <summary>
/// The kwargs of one instruction as lm-eval passes them: keys whose value is falsy in Python (null, 0,
/// "", false, [] or {}) are dropped, any other key must be an argument of that instruction. An argument
/// that lm-eval would replace with a random draw when it is missing (every one except the options of
/// the argument-free instructions) is required here.
/// </summary>
internal sealed class Kwargs
{
    readonly Dictionary<string, JsonNode> given = new();
    readonly string where;
    readonly string field;

    public Kwargs(JsonObject? kwargs, string[] accepted, string id, string where, string field)
    {
        this.where = where;
        this.field = field;
        if (kwargs is null) return;
        foreach (var (key, value) in kwargs)
        {
            if (!IsTruthy(value)) continue;
            if (!accepted.Contains(key))
                throw Error(key, accepted.Length == 0
                    ? $"{id} takes no arguments, got a value"
                    : $"not an argument of {id} (it takes {string.Join(", ", accepted)})");
            given[key] = value!;
        }
    }

    static bool IsTruthy(JsonNode? v) => v switch
    {
        null => false,
        JsonArray a => a.Count > 0,
        JsonObject o => o.Count > 0,
        _ => v.GetValueKind() switch
        {
            JsonValueKind.False or JsonValueKind.Null => false,
            JsonValueKind.String => v.GetValue<string>().Length > 0,
            JsonValueKind.Number => Number(v) != 0,
            _ => true,
        },
    };

    // Works for parsed values and for ones built in code (JsonValue.Create(5L)) alike.
    static double Number(JsonNode v) => double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture);

    public InputError Error(string key, string message) => new($"{where}: {field}.{key}: {message}");

    JsonNode Required(string key, string what) =>
        given.TryGetValue(key, out var v) ? v
            : throw Error(key, $"missing (needs {what}; lm-eval would draw a random value)");

    public string String(string key)
    {
        var v = Required(key, "a non-empty string");
        return v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw Error(key, $"must be a string, got {v.ToJsonString()}");
    }

    public long Integer(string key, long min = long.MinValue)
    {
        var v = Required(key, "a non-zero integer");
        double d = v.GetValueKind() == JsonValueKind.Number ? Number(v) : double.NaN;
        if (double.IsNaN(d) || d != Math.Floor(d) || Math.Abs(d) > 1e15)
            throw Error(key, $"must be an integer, got {v.ToJsonString()}");
        if (d < min) throw Error(key, $"must be at least {min}, got {d} (lm-eval would draw a random value)");
        return (long)d;
    }

    public string Relation(string key)
    {
        var r = String(key);
        return r is Relations.LessThan or Relations.AtLeast ? r
            : throw Error(key, $"must be \"{Relations.LessThan}\" or \"{Relations.AtLeast}\", got \"{r}\"");
    }

    public List<string> Strings(string key)
    {
        var v = Required(key, "a non-empty list of strings");
        if (v is not JsonArray a) throw Error(key, $"must be a list of strings, got {v.ToJsonString()}");
        var list = new List<string>();
        foreach (var e in a)
            list.Add(e?.GetValueKind() == JsonValueKind.String ? e.GetValue<string>() : throw Error(key, $"must be a list of strings, got {v.ToJsonString()}"));
        return list;
    }

    public Regex Pattern(string key, string pythonPattern, RegexOptions options)
    {
        try { return new Regex(new PythonRegex(pythonPattern).DotNetPattern, options | RegexOptions.CultureInvariant, PythonRegex.DefaultTimeout); }
        catch (ArgumentException e) { throw Error(key, $"is used as a regular expression and \"{pythonPattern}\" is not one ({e.Message.Split('\n')[0]})"); }
    }
}

internal static class InstructionRegistry
{
    /// <summary>ISO 639-1 codes lm-eval accepts for language:response_language.</summary>
    public static readonly HashSet<string> Languages = new()
    {
        "en", "es", "pt", "ar", "hi", "fr", "ru", "de", "ja", "it", "bn", "uk", "th", "ur", "ta", "te", "bg", "ko",
        "pl", "he", "fa", "vi", "ne", "sw", "kn", "mr", "gu", "pa", "ml", "fi",
    };

    static readonly Dictionary<string, (string[] Args, Func<Kwargs, Instruction> Build)> Table = new()
    {
        ["keywords:existence"] = (new[] { "keywords" }, k => new KeywordExistence(k)),
        ["keywords:frequency"] = (new[] { "keyword", "frequency", "relation" }, k => new KeywordFrequency(k)),
        ["keywords:forbidden_words"] = (new[] { "forbidden_words" }, k => new ForbiddenWords(k)),
        ["keywords:letter_frequency"] = (new[] { "letter", "let_frequency", "let_relation" }, k => new LetterFrequency(k)),
        ["language:response_language"] = (new[] { "language" }, k => new ResponseLanguage(k)),
        ["length_constraints:number_sentences"] = (new[] { "num_sentences", "relation" }, k => new NumberOfSentences(k)),
        ["length_constraints:number_paragraphs"] = (new[] { "num_paragraphs" }, k => new NumberOfParagraphs(k)),
        ["length_constraints:number_words"] = (new[] { "num_words", "relation" }, k => new NumberOfWords(k)),
        ["length_constraints:nth_paragraph_first_word"] = (new[] { "num_paragraphs", "nth_paragraph", "first_word" }, k => new NthParagraphFirstWord(k)),
        ["detectable_content:number_placeholders"] = (new[] { "num_placeholders" }, k => new Placeholders(k)),
        ["detectable_content:postscript"] = (new[] { "postscript_marker" }, k => new Postscript(k)),
        ["detectable_format:number_bullet_lists"] = (new[] { "num_bullets" }, k => new BulletLists(k)),
        ["detectable_format:constrained_response"] = (Array.Empty<string>(), _ => new ConstrainedResponse()),
        ["detectable_format:number_highlighted_sections"] = (new[] { "num_highlights" }, k => new HighlightedSections(k)),
        ["detectable_format:multiple_sections"] = (new[] { "section_spliter", "num_sections" }, k => new Sections(k)),
        ["detectable_format:json_format"] = (Array.Empty<string>(), _ => new JsonFormat()),
        ["detectable_format:title"] = (Array.Empty<string>(), _ => new Title()),
        ["combination:two_responses"] = (Array.Empty<string>(), _ => new TwoResponses()),
        ["combination:repeat_prompt"] = (new[] { "prompt_to_repeat" }, k => new RepeatPrompt(k)),
        ["startend:end_checker"] = (new[] { "end_phrase" }, k => new EndPhrase(k)),
        ["change_case:capital_word_frequency"] = (new[] { "capital_frequency", "capital_relation" }, k => new CapitalWordFrequency(k)),
        ["change_case:english_capital"] = (Array.Empty<string>(), _ => new EnglishCapital()),
        ["change_case:english_lowercase"] = (Array.Empty<string>(), _ => new EnglishLowercase()),
        ["punctuation:no_comma"] = (Array.Empty<string>(), _ => new NoComma()),
        ["startend:quotation"] = (Array.Empty<string>(), _ => new Quotation()),
    };

    public static IReadOnlyCollection<string> Ids => Table.Keys;

    public static bool IsKnown(string id) => Table.ContainsKey(id);

    public static Instruction Build(string id, JsonObject? kwargs, string where, string field)
    {
        var (args, build) = Table[id];
        return build(new Kwargs(kwargs, args, id, where, field));
    }
}

sealed class KeywordExistence(Kwargs k) : Instruction
{
    readonly Regex[] keywords = k.Strings("keywords").Select(w => k.Pattern("keywords", w, RegexOptions.IgnoreCase)).ToArray();
    public override bool Follows(string r) => keywords.All(re => re.IsMatch(PyText.ForPattern(r)));
}

sealed class KeywordFrequency : Instruction
{
    readonly Regex keyword;
    readonly long frequency;
    readonly string relation;

    public KeywordFrequency(Kwargs k)
    {
        keyword = k.Pattern("keyword", PyString.Strip(k.String("keyword")), RegexOptions.IgnoreCase);
        frequency = k.Integer("frequency", 0);
        relation = k.Relation("relation");
    }

    public override bool Follows(string r) => Compare(keyword.Matches(PyText.ForPattern(r)).Count, relation, frequency);
}

sealed class ForbiddenWords(Kwargs k) : Instruction
{
    readonly Regex[] words = k.Strings("forbidden_words").Distinct()
        .Select(w => k.Pattern("forbidden_words", @"\b" + w + @"\b", RegexOptions.IgnoreCase)).ToArray();
    public override bool Follows(string r) => !words.Any(re => re.IsMatch(PyText.ForPattern(r)));
}

sealed class LetterFrequency : Instruction
{
    readonly char letter;
    readonly long frequency;
    readonly string relation;

    public LetterFrequency(Kwargs k)
    {
        var given = k.String("letter");
        var lower = PyString.Lower(given);
        if (given.Length != 1 || lower.Length != 1 || lower[0] < 'a' || lower[0] > 'z')
            throw k.Error("letter", $"must be one letter a-z or A-Z, got \"{given}\" (lm-eval would draw a random letter)");
        letter = lower[0];
        frequency = k.Integer("let_frequency", 0);
        relation = k.Relation("let_relation");
    }

    public override bool Follows(string r) => Compare(PyString.Lower(r).Count(c => c == letter), relation, frequency);
}

sealed class ResponseLanguage : Instruction
{
    readonly string language;

    public ResponseLanguage(Kwargs k)
    {
        language = k.String("language");
        if (!InstructionRegistry.Languages.Contains(language))
            throw k.Error("language", $"\"{language}\" is not one of lm-eval's languages ({string.Join(", ", InstructionRegistry.Languages)})");
    }

    public override bool Follows(string r) => LanguageDetector.Detect(r) is not { } detected || detected == language;
}

sealed class NumberOfSentences(Kwargs k) : Instruction
{
    readonly long threshold = k.Integer("num_sentences", 0);
    readonly string relation = k.Relation("relation");
    public override bool Follows(string r) => Compare(PunktSentences.Count(r), relation, threshold);
}

sealed class NumberOfParagraphs(Kwargs k) : Instruction
{
    static readonly Regex Divider = new(PyText.Space + @"?\*\*\*" + PyText.Space + "?", RegexOptions.CultureInvariant);
    readonly long expected = k.Integer("num_paragraphs", 0);

    public override bool Follows(string r)
    {
        var paragraphs = Divider.Split(r);
        long count = paragraphs.Length;
        for (int i = 0; i < paragraphs.Length; i++)
        {
            if (PyString.Strip(paragraphs[i]).Length > 0) continue;
            if (i == 0 || i == paragraphs.Length - 1) count--;
            else return false;
        }
        return count == expected;
    }
}

sealed class NumberOfWords(Kwargs k) : Instruction
{
    readonly long threshold = k.Integer("num_words", 0);
    readonly string relation = k.Relation("relation");

    public override bool Follows(string r) => Compare(CountWords(r), relation, threshold);

    /// <summary>nltk's RegexpTokenizer(r"\w+"): runs of letters, numbers and '_' (by code point).</summary>
    public static int CountWords(string text)
    {
        int count = 0;
        bool inWord = false;
        foreach (var rune in text.EnumerateRunes())
        {
            var cat = System.Text.Rune.GetUnicodeCategory(rune);
            bool word = rune.Value == '_' || cat <= System.Globalization.UnicodeCategory.OtherLetter
                || cat is System.Globalization.UnicodeCategory.DecimalDigitNumber or System.Globalization.UnicodeCategory.LetterNumber
                    or System.Globalization.UnicodeCategory.OtherNumber;
            if (word && !inWord) count++;
            inWord = word;
        }
        return count;
    }
}

sealed class NthParagraphFirstWord : Instruction
{
    static readonly HashSet<string> Stops = new() { ".", ",", "?", "!", "'", "\"" };
    readonly long expected, nth;
    readonly string firstWord;

    public NthParagraphFirstWord(Kwargs k)
    {
        expected = k.Integer("num_paragraphs", 0);
        nth = k.Integer("nth_paragraph", 1);
        if (nth > expected)
            throw k.Error("nth_paragraph", $"must be at most num_paragraphs ({expected}), got {nth} (lm-eval would draw a random value)");
        firstWord = PyString.Lower(k.String("first_word"));
    }

    public override bool Follows(string r)
    {
        var paragraphs = r.Split("\n\n");
        long count = paragraphs.Count(p => PyString.Strip(p).Length > 0);
        if (nth > count) return false;
        var paragraph = PyString.Strip(paragraphs[nth - 1]);
        if (paragraph.Length == 0) return false;
        var word = PyString.Strip(PyText.SplitWhitespace(paragraph)[0]).TrimStart('\'').TrimStart('"');
        var first = new System.Text.StringBuilder();
        foreach (var rune in word.EnumerateRunes())
        {
            var letter = rune.ToString();
            if (Stops.Contains(letter)) break;
            first.Append(PyString.Lower(letter));
        }
        return count == expected && first.ToString() == firstWord;
    }
}

sealed class Placeholders(Kwargs k) : Instruction
{
    static readonly Regex Placeholder = new(@"\[.*?\]", RegexOptions.CultureInvariant);
    readonly long minimum = k.Integer("num_placeholders", 0);
    public override bool Follows(string r) => Placeholder.Matches(r).Count >= minimum;
}

sealed class Postscript : Instruction
{
    readonly Regex pattern;

    public Postscript(Kwargs k)
    {
        var marker = PyString.Strip(k.String("postscript_marker"));
        var s = PyText.Space;
        pattern = marker switch
        {
            "P.P.S" => new Regex(s + @"*p\." + s + @"?p\." + s + "?s.*$", RegexOptions.Multiline | RegexOptions.CultureInvariant),
            "P.S." => new Regex(s + @"*p\." + s + @"?s\..*$", RegexOptions.Multiline | RegexOptions.CultureInvariant),
            _ => k.Pattern("postscript_marker", @"\s*" + PyString.Lower(marker) + ".*$", RegexOptions.Multiline),
        };
    }

    public override bool Follows(string r) => pattern.IsMatch(PyText.ForPattern(PyString.Lower(r)));
}

sealed class BulletLists(Kwargs k) : Instruction
{
    static readonly Regex Star = new("^" + PyText.Space + @"*\*[^*].*$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
    static readonly Regex Dash = new("^" + PyText.Space + "*-.*$", RegexOptions.Multiline | RegexOptions.CultureInvariant);
    readonly long expected = k.Integer("num_bullets", 0);
    public override bool Follows(string r) => Star.Matches(r).Count + Dash.Matches(r).Count == expected;
}

sealed class ConstrainedResponse : Instruction
{
    static readonly string[] Options = { "My answer is yes.", "My answer is no.", "My answer is maybe." };

    public override bool Follows(string r)
    {
        var v = PyString.Strip(r);
        return Options.Any(o => v.Contains(o, StringComparison.Ordinal));
    }
}

sealed class HighlightedSections(Kwargs k) : Instruction
{
    static readonly Regex Single = new(@"\*[^\n*]*\*", RegexOptions.CultureInvariant);
    static readonly Regex Double = new(@"\*\*[^\n*]*\*\*", RegexOptions.CultureInvariant);
    readonly long minimum = k.Integer("num_highlights", 0);

    public override bool Follows(string r)
    {
        int n = Single.Matches(r).Count(m => PyString.Strip(m.Value.Trim('*')).Length > 0)
            + Double.Matches(r).Count(m => PyString.Strip(m.Value[2..^2]).Length > 0);
        return n >= minimum;
    }
}

sealed class Sections : Instruction
{
    readonly Regex splitter;
    readonly long minimum;

    public Sections(Kwargs k)
    {
        var spliter = PyString.Strip(k.String("section_spliter"));
        splitter = k.Pattern("section_spliter", @"\s?" + spliter + @"\s?\d+\s?", RegexOptions.None);
        minimum = k.Integer("num_sections", 0);
    }

    // re.split returns the pieces between matches and, after each match, every group of the pattern.
    public override bool Follows(string r) =>
        (long)splitter.Matches(PyText.ForPattern(r)).Count * splitter.GetGroupNumbers().Length >= minimum;
}

sealed class JsonFormat : Instruction
{
    public override bool Follows(string r)
    {
        var v = PyString.Strip(r);
        foreach (var fence in new[] { "```json", "```Json", "```JSON", "```" })
            if (v.StartsWith(fence, StringComparison.Ordinal)) v = v[fence.Length..];
        if (v.EndsWith("```", StringComparison.Ordinal)) v = v[..^3];
        return PyJson.IsValid(PyString.Strip(v));
    }
}

sealed class Title : Instruction
{
    static readonly Regex Pattern = new(@"<<[^\n]+>>", RegexOptions.CultureInvariant);
    public override bool Follows(string r) =>
        Pattern.Matches(r).Any(m => PyString.Strip(m.Value.TrimStart('<').TrimEnd('>')).Length > 0);
}

sealed class TwoResponses : Instruction
{
    public override bool Follows(string r)
    {
        var parts = r.Split("******");
        var valid = new List<string>();
        for (int i = 0; i < parts.Length; i++)
        {
            if (PyString.Strip(parts[i]).Length > 0) valid.Add(parts[i]);
            else if (i != 0 && i != parts.Length - 1) return false;
        }
        return valid.Count == 2 && PyString.Strip(valid[0]) != PyString.Strip(valid[1]);
    }
}

sealed class RepeatPrompt(Kwargs k) : Instruction
{
    readonly string prompt = PyString.Lower(PyString.Strip(k.String("prompt_to_repeat")));
    public override bool Follows(string r) => PyString.Lower(PyString.Strip(r)).StartsWith(prompt, StringComparison.Ordinal);
}

sealed class EndPhrase(Kwargs k) : Instruction
{
    readonly string phrase = PyString.Lower(PyString.Strip(k.String("end_phrase")));
    public override bool Follows(string r) => PyString.Lower(PyString.Strip(r).Trim('"')).EndsWith(phrase, StringComparison.Ordinal);
}

sealed class CapitalWordFrequency(Kwargs k) : Instruction
{
    readonly long threshold = k.Integer("capital_frequency");
    readonly string relation = k.Relation("capital_relation");
    public override bool Follows(string r) => Compare(TreebankWords.Tokenize(r).Count(PyText.IsUpper), relation, threshold);
}

sealed class EnglishCapital : Instruction
{
    public override bool Follows(string r) => PyText.IsUpper(r) && LanguageDetector.Detect(r) is null or "en";
}

sealed class EnglishLowercase : Instruction
{
    public override bool Follows(string r) => PyText.IsLower(r) && LanguageDetector.Detect(r) is null or "en";
}

sealed class NoComma : Instruction
{
    public override bool Follows(string r) => !r.Contains(',');
}

sealed class Quotation : Instruction
{
    public override bool Follows(string r)
    {
        var v = PyString.Strip(r);
        return v.Length > 1 && v[0] == '"' && v[^1] == '"';
    }
}
