using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace PostTrain.Rewards;

/// <summary>
/// Math answer correctness ("math"): 1.0 when the completion's final answer equals the row's
/// reference answer, else 0.0 (also when the completion states no final answer). The final
/// answer is the last of "#### X", "\boxed{X}", "&lt;answer&gt;X&lt;/answer&gt;" and "the answer
/// is X" / "answer: X" in the completion. The reference is the row's <c>answer</c> field (see
/// <see cref="RewardSettings.AnswerField"/>): a bare number or string, or a GSM8K solution ending
/// in "#### X", or text with a \boxed{X}. Both are compared as numbers when both parse (thousands
/// commas, signs, decimals, fractions, \frac, percentages, surrounding $...$, ** and units
/// dropped), else as normalised strings. A reference that is empty scores null (not applicable),
/// as TRL's accuracy_reward does for a gold answer it cannot parse.
/// </summary>
public sealed class MathAnswer : IRewardFunction
{
    readonly string answerField;

    public MathAnswer(string answerField = "answer")
    {
        if (string.IsNullOrEmpty(answerField)) throw new InputError("--answer-field: must not be empty");
        this.answerField = answerField;
    }

    public string Name => "math";

    public double?[] Score(IReadOnlyList<RewardSample> samples)
    {
        var scores = new double?[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            var reference = ReferenceText(samples[i].Row, answerField);
            var gold = ReferenceAnswer(reference);
            if (string.IsNullOrWhiteSpace(gold)) { scores[i] = null; continue; }
            var answer = ExtractFinalAnswer(samples[i].Completion);
            scores[i] = answer is not null && Equivalent(answer, gold) ? 1.0 : 0.0;
        }
        return scores;
    }

    static string ReferenceText(JsonObject row, string field)
    {
        if (!row.TryGetPropertyValue(field, out var node))
            throw new InputError($"math reward: the row has no '{field}' field (the reference answer; choose the field with --answer-field)");
        if (node is null)
            throw new InputError($"math reward: field '{field}' is null (expected the reference answer)");
        if (node is JsonValue v)
        {
            if (v.TryGetValue<string>(out var s)) return s;
            if (v.GetValueKind() == JsonValueKind.Number) return v.ToJsonString();
        }
        throw new InputError($"math reward: field '{field}' must be a string or a number, not {node.GetValueKind().ToString().ToLowerInvariant()}");
    }

    /// <summary>The reference answer of a dataset's answer field: after the last "####", else the last \boxed{}, else the whole text.</summary>
    public static string ReferenceAnswer(string reference)
    {
        int hashes = reference.LastIndexOf("####", StringComparison.Ordinal);
        if (hashes >= 0) return FirstLine(reference[(hashes + 4)..]);
        var boxed = LastBoxed(reference);
        if (boxed is not null) return boxed.Value.Content;
        return reference.Trim();
    }

    static readonly Regex AnswerIs = new(@"\banswer\s*(?:is\s*:?|:)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
    static readonly Regex AnswerTag = new(@"<answer>(.*?)</answer>", RegexOptions.Singleline | RegexOptions.CultureInvariant);

    /// <summary>
    /// The completion's final answer: the last (by position) of "#### X" (to the end of its line),
    /// "\boxed{X}" (braces nested), "&lt;answer&gt;X&lt;/answer&gt;" and "answer is X" / "answer: X"
    /// (to the end of the sentence); null when there is none.
    /// </summary>
    public static string? ExtractFinalAnswer(string completion)
    {
        int best = -1;
        string? answer = null;
        void Consider(int position, string text)
        {
            if (position > best) { best = position; answer = text; }
        }

        int hashes = completion.LastIndexOf("####", StringComparison.Ordinal);
        if (hashes >= 0) Consider(hashes, FirstLine(completion[(hashes + 4)..]));
        if (LastBoxed(completion) is { } boxed) Consider(boxed.Position, boxed.Content);
        var tags = AnswerTag.Matches(completion);
        if (tags.Count > 0) Consider(tags[^1].Index, tags[^1].Groups[1].Value);
        var phrases = AnswerIs.Matches(completion);
        if (phrases.Count > 0)
        {
            var last = phrases[^1];
            Consider(last.Index, Sentence(completion[(last.Index + last.Length)..]));
        }
        return answer;
    }

    static string FirstLine(string text)
    {
        text = text.TrimStart();
        int end = text.IndexOfAny(['\n', '\r']);
        return (end >= 0 ? text[..end] : text).Trim();
    }

    // The rest of a sentence: up to a line end, a tag, or a period that ends a sentence (not a
    // decimal point), keeping $...$ math whole.
    static string Sentence(string text)
    {
        text = text.TrimStart();
        bool inMath = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == '$') inMath = !inMath;
            else if (c is '\n' or '\r' || (c == '<' && !inMath)) return text[..i].Trim();
            else if (c == '.' && !inMath && (i + 1 == text.Length || char.IsWhiteSpace(text[i + 1]))) return text[..i].Trim();
        }
        return text.Trim();
    }

    /// <summary>The content of the last \boxed{...} (or \fbox{...}) with nested braces, and where it starts.</summary>
    static (int Position, string Content)? LastBoxed(string text)
    {
        foreach (var command in new[] { "\\boxed", "\\fbox" })
        {
            int at = text.Length;
            while (at > 0 && (at = text.LastIndexOf(command, at - 1, StringComparison.Ordinal)) >= 0)
            {
                int i = at + command.Length;
                while (i < text.Length && text[i] == ' ') i++;
                if (i < text.Length && text[i] == '{')
                {
                    int depth = 0;
                    for (int j = i; j < text.Length; j++)
                    {
                        if (text[j] == '{') depth++;
                        else if (text[j] == '}' && --depth == 0) return (at, text[(i + 1)..j]);
                    }
                }
                else if (i > at + command.Length && i < text.Length)
                {
                    // "\boxed 5": the next token.
                    int j = i;
                    while (j < text.Length && !char.IsWhiteSpace(text[j]) && text[j] != '$') j++;
                    return (at, text[i..j]);
                }
                if (at == 0) break;
            }
        }
        return null;
    }

    /// <summary>Whether two answers are the same: numerically when both parse as numbers, else as normalised text.</summary>
    public static bool Equivalent(string answer, string reference)
    {
        var a = Normalize(answer);
        var b = Normalize(reference);
        if (a.Length == 0 || b.Length == 0) return false;
        var x = ParseNumber(a);
        var y = ParseNumber(b);
        if (x is not null && y is not null)
        {
            if (Close(x.Value.Value, y.Value.Value)) return true;
            // "50%" against 0.5 (or the other way): a percentage may be given as a fraction.
            if (x.Value.Percent != y.Value.Percent)
                return x.Value.Percent ? Close(x.Value.Value / 100, y.Value.Value) : Close(x.Value.Value, y.Value.Value / 100);
            return false;
        }
        return string.Equals(StripForText(a), StripForText(b), StringComparison.OrdinalIgnoreCase);
    }

    static bool Close(double a, double b) =>
        a == b || Math.Abs(a - b) <= 1e-9 * Math.Max(1.0, Math.Max(Math.Abs(a), Math.Abs(b)));

    static string StripForText(string s) => Regex.Replace(s, @"[\s{}()]", "");

    static readonly Regex TextCommand = new(@"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}", RegexOptions.CultureInvariant);
    static readonly Regex FracShort = new(@"\\frac\s*(\d)\s*(\d)", RegexOptions.CultureInvariant);
    static readonly Regex ThousandsComma = new(@"(?<=\d),(?=\d{3}(?!\d))", RegexOptions.CultureInvariant);

    /// <summary>Strips the markup around an answer: math delimiters, bold, simple LaTeX, a trailing period, "x =".</summary>
    public static string Normalize(string text)
    {
        var s = text.Trim();
        s = s.Replace("\\left", "").Replace("\\right", "").Replace("\\displaystyle", "")
             .Replace("\\!", "").Replace("\\,", "").Replace("\\;", "").Replace("\\:", "").Replace("\\ ", " ")
             .Replace("\\dfrac", "\\frac").Replace("\\tfrac", "\\frac")
             .Replace("\\$", "$").Replace("\\%", "%").Replace("\\cdot", "*").Replace("\\times", "*")
             .Replace("^\\circ", "").Replace("^{\\circ}", "").Replace("\\(", "").Replace("\\)", "")
             .Replace("\\[", "").Replace("\\]", "").Replace("−", "-");
        // \text{...} and friends: keep the content (repeat for nesting).
        for (int i = 0; i < 4; i++)
        {
            var next = TextCommand.Replace(s, "$1");
            if (next == s) break;
            s = next;
        }
        s = s.Replace("$", "").Replace("**", "").Replace("`", "");
        s = FracShort.Replace(s, "\\frac{$1}{$2}");
        s = ThousandsComma.Replace(s, "");
        s = s.Trim().TrimEnd('.', '!', ',', ';', ':').Trim();
        // "x = 5", "n=5": the value after the last '=' (not for inequalities).
        int eq = s.LastIndexOf('=');
        if (eq >= 0 && eq + 1 < s.Length && !s.Contains('<') && !s.Contains('>') && !s.Contains("\\le") && !s.Contains("\\ge"))
            s = s[(eq + 1)..].Trim();
        return s;
    }

    /// <summary>
    /// A number from a normalised answer: an arithmetic expression of decimals, fractions and
    /// \frac{a}{b} (with + - * / and parentheses), optionally followed by % and by unit words
    /// ("18 dollars"), or preceded by a currency sign. Null when it is not one.
    /// </summary>
    public static (double Value, bool Percent)? ParseNumber(string normalized)
    {
        var s = normalized.Trim();
        if (s.StartsWith('£') || s.StartsWith('€')) s = s[1..];
        bool percent = false;
        // Unit words after the number: "18 dollars", "5 cm^2"; dropped when what precedes is a number.
        var unit = Regex.Match(s, @"^(.*?[\d)}%])\s*(?:[A-Za-z][A-Za-z\s.^{}\d]*)$", RegexOptions.CultureInvariant);
        if (unit.Success && ExpressionParser.TryParse(unit.Groups[1].Value.TrimEnd('%'), out _))
            s = unit.Groups[1].Value;
        s = s.Trim();
        if (s.EndsWith('%'))
        {
            percent = true;
            s = s[..^1].Trim();
        }
        return ExpressionParser.TryParse(s, out var value) ? (value, percent) : null;
    }

    /// <summary>Recursive descent over + - * / ( ) { }, decimals and \frac{a}{b}.</summary>
    sealed class ExpressionParser
    {
        readonly string s;
        int i;

        ExpressionParser(string s) { this.s = s; }

        public static bool TryParse(string text, out double value)
        {
            value = 0;
            if (string.IsNullOrWhiteSpace(text)) return false;
            var p = new ExpressionParser(text);
            if (!p.Sum(out value)) return false;
            p.SkipSpaces();
            return p.i == p.s.Length && double.IsFinite(value);
        }

        void SkipSpaces() { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

        bool Peek(char c) { SkipSpaces(); return i < s.Length && s[i] == c; }

        bool Sum(out double value)
        {
            if (!Product(out value)) return false;
            while (Peek('+') || Peek('-'))
            {
                char op = s[i++];
                if (!Product(out var rhs)) return false;
                value = op == '+' ? value + rhs : value - rhs;
            }
            return true;
        }

        bool Product(out double value)
        {
            if (!Unary(out value)) return false;
            while (Peek('*') || Peek('/'))
            {
                char op = s[i++];
                if (!Unary(out var rhs)) return false;
                if (op == '/' && rhs == 0) return false;
                value = op == '*' ? value * rhs : value / rhs;
            }
            return true;
        }

        bool Unary(out double value)
        {
            if (Peek('-')) { i++; bool ok = Unary(out value); value = -value; return ok; }
            if (Peek('+')) { i++; return Unary(out value); }
            return Atom(out value);
        }

        bool Atom(out double value)
        {
            value = 0;
            SkipSpaces();
            if (i >= s.Length) return false;
            if (s[i] is '(' or '{')
            {
                char close = s[i] == '(' ? ')' : '}';
                i++;
                if (!Sum(out value) || !Peek(close)) return false;
                i++;
                return true;
            }
            if (string.CompareOrdinal(s, i, "\\frac", 0, 5) == 0)
            {
                i += 5;
                if (!Peek('{')) return false;
                if (!Atom(out var numerator) || !Peek('{') || !Atom(out var denominator) || denominator == 0) return false;
                value = numerator / denominator;
                return true;
            }
            int start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            var digits = s[start..i];
            if (digits.Length == 0 || digits == "." || digits.Count(c => c == '.') > 1) return false;
            return double.TryParse(digits, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out value);
        }
    }
}
