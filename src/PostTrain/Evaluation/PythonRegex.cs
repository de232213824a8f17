using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace PostTrain.Evaluation;

/// <summary>A pattern that Python's <c>re</c> rejects (or that this translation cannot express). The message
/// reads like Python's <c>re.error</c>, e.g. "missing ), unterminated subpattern at position 0".</summary>
public sealed class PythonRegexException(string message) : ArgumentException(message);

/// <summary>
/// A Python 3 <c>re</c> pattern (str pattern, Unicode mode) run on .NET's engine with Python's results: the
/// pattern is parsed with <c>re/_parser.py</c>'s rules and errors and rewritten into an equivalent .NET pattern.
/// What the rewrite takes care of:
/// <list type="bullet">
/// <item>groups: <c>(?P&lt;name&gt;…)</c> becomes a plain numbered group, so groups are numbered left to right as in
/// Python (.NET numbers named groups after all unnamed ones); <c>(?P=name)</c> and <c>\N</c> become <c>\k&lt;N&gt;</c>,
/// <c>(?(name)…)</c> becomes <c>(?(N)…)</c>;</item>
/// <item>classes: <c>\w</c> is <c>[\p{L}\p{N}_]</c> (Python's <c>str.isalnum()</c> or "_"; .NET's own <c>\w</c> also takes
/// Mn and Pc and leaves out No/Nl such as "²"), <c>\s</c> adds U+001C–U+001F to .NET's <c>\s</c>, <c>\b</c>/<c>\B</c>
/// are written with that <c>\w</c>; <c>(?a)</c> makes <c>\d \w \s \b</c> ASCII;</item>
/// <item>anchors: Python's <c>\Z</c> is .NET's <c>\z</c> (.NET's <c>\Z</c> also matches before a final newline);
/// <c>$</c> and <c>^</c> (with and without <c>(?m)</c>) already agree;</item>
/// <item>quantifiers: <c>{,n}</c> is <c>{0,n}</c>, <c>{,}</c> is <c>*</c>, <c>{}</c> and other braces that do not form a
/// quantifier are literal; possessive <c>*+ ++ ?+ {m,n}+</c> become atomic groups;</item>
/// <item>escapes: octal (<c>\0</c>, <c>\101</c>), <c>\x</c>, <c>\u</c>, <c>\U</c>; unknown letter escapes are errors;
/// <c>(?x)</c> whitespace and comments and <c>(?#…)</c> are dropped here;</item>
/// <item>code points: .NET strings are UTF-16 and Python's are code points, so <c>.</c>, negated classes and
/// <c>\D \W \S</c> consume a surrogate pair as one character, astral literals and class ranges match whole pairs,
/// and no match starts between the two halves of a pair;</item>
/// <item>findall/sub: after an empty match Python tries again at the same position for a non-empty match (3.7+);
/// .NET moves one character on. <see cref="FindAll"/> and <see cref="RemoveAll"/> do it Python's way.</item>
/// </list>
/// Not reproduced: characters beyond U+FFFF are never <c>\d \w \s</c> (right for emoji, wrong for e.g. the
/// mathematical alphanumerics); <c>(?i)</c> uses .NET's invariant case equivalences (Python's simple case folding
/// has a few more, e.g. "İ" ~ "i"), and <c>(?ai)</c> is not limited to ASCII; lookbehind may be variable-width
/// (Python rejects that); <c>\N{name}</c> is rejected.
/// </summary>
public sealed class PythonRegex
{
    /// <summary>How long one match attempt may run before <see cref="RegexMatchTimeoutException"/>.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    public string Pattern { get; }
    /// <summary>Python's <c>re.compile(pattern).groups</c>: the number of capturing groups.</summary>
    public int GroupCount { get; }
    /// <summary>The .NET pattern it was rewritten to.</summary>
    public string DotNetPattern { get; }

    readonly Regex _regex;
    readonly Regex _nonEmptyAtStart; // the same, refusing an empty match at the position it starts from

    public PythonRegex(string pattern, TimeSpan? timeout = null)
    {
        Pattern = pattern;
        var t = new Translator(pattern);
        var body = t.Translate();
        GroupCount = t.GroupCount;
        // A match never starts between the halves of a surrogate pair (a position Python's strings do not have).
        const string notMidPair = @"(?!(?<=[\uD800-\uDBFF])[\uDC00-\uDFFF])";
        DotNetPattern = t.GlobalFlags + notMidPair + "(?:" + body + ")";
        var options = RegexOptions.CultureInvariant;
        var limit = timeout ?? DefaultTimeout;
        try
        {
            _regex = new Regex(DotNetPattern, options, limit);
            // \G is where the scan started; (?!\G) after the match refuses one that ends where it started.
            _nonEmptyAtStart = new Regex(DotNetPattern + @"(?!\G)", options, limit);
        }
        catch (RegexParseException e)
        {
            // Python's parser accepted it, but the rewrite is not valid .NET (a gap in this translation).
            throw new PythonRegexException($"cannot be run on .NET ({e.Error} at offset {e.Offset} of the rewritten pattern)");
        }
    }

    /// <summary>Python's <c>re.findall</c>: one entry per match; each is the whole match when the pattern has no
    /// groups, else the groups' values ("" for a group that did not take part), so a tuple when
    /// <see cref="GroupCount"/> &gt; 1.</summary>
    public List<string[]> FindAll(string input)
    {
        var found = new List<string[]>();
        foreach (var m in Matches(input))
        {
            if (GroupCount == 0) found.Add([m.Value]);
            else
            {
                var g = new string[GroupCount];
                for (int i = 0; i < GroupCount; i++) g[i] = m.Groups[i + 1].Value;
                found.Add(g);
            }
        }
        return found;
    }

    /// <summary>Python's <c>re.sub(pattern, "", input)</c>.</summary>
    public string RemoveAll(string input)
    {
        var sb = new StringBuilder();
        int copied = 0;
        foreach (var m in Matches(input))
        {
            sb.Append(input, copied, m.Index - copied);
            copied = m.Index + m.Length;
        }
        sb.Append(input, copied, input.Length - copied);
        return sb.ToString();
    }

    IEnumerable<Match> Matches(string input)
    {
        int pos = 0;
        bool lastEmpty = false;
        while (pos <= input.Length)
        {
            var m = (lastEmpty ? _nonEmptyAtStart : _regex).Match(input, pos);
            if (!m.Success) yield break;
            yield return m;
            pos = m.Index + m.Length;
            lastEmpty = m.Length == 0;
        }
    }

    /// <summary>Python's <c>re.escape</c> (3.7+): a backslash before each of <c>()[]{}?*+-|^$\.&amp;~#</c> and
    /// whitespace <c>\t\n\r\v\f</c> and space.</summary>
    public static string Escape(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            if ("()[]{}?*+-|^$\\.&~# \t\n\r\v\f".Contains(c)) sb.Append('\\');
            sb.Append(c);
        }
        return sb.ToString();
    }

    // ------------------------------------------------------------------------------------------------------
    // Pattern translation, following re/_parser.py (Python 3.11): the same tokens, checks and error texts.

    sealed class Translator(string src)
    {
        readonly string _src = src;
        int _pos;
        readonly StringBuilder _out = new();
        readonly Dictionary<string, int> _names = new();
        readonly HashSet<int> _closed = new();
        readonly List<(int group, int at)> _condRefs = new();
        public int GroupCount { get; private set; }
        public string GlobalFlags { get; private set; } = "";
        readonly HashSet<char> _globalFlagSet = new();

        const string Pair = @"[\uD800-\uDBFF][\uDC00-\uDFFF]";
        // One code point outside the BMP, or a lone high surrogate, taken as a unit.
        const string HighUnit = @"(?>[\uD800-\uDBFF][\uDC00-\uDFFF]?)";

        enum Last { None, Anchor, Repeat, Atom, Assertion }

        // The flags this translation tracks itself (i and m are left to .NET, written inline).
        struct Flags
        {
            public bool Verbose, Ascii, DotAll;
        }

        public string Translate()
        {
            var flags = new Flags();
            ParseAlternation(ref flags, nested: 0);
            if (_pos < _src.Length)
            {
                // only ')' stops the top level early
                throw Error("unbalanced parenthesis", _pos);
            }
            foreach (var (g, at) in _condRefs)
                if (g > GroupCount) throw Error($"invalid group reference {g}", at);
            return _out.ToString();
        }

        PythonRegexException Error(string message, int at) => new($"{message} at position {at}");

        bool AtEnd => _pos >= _src.Length;
        char? Next => _pos < _src.Length ? _src[_pos] : null;

        bool Match(char c)
        {
            if (_pos < _src.Length && _src[_pos] == c) { _pos++; return true; }
            return false;
        }

        void ParseAlternation(ref Flags flags, int nested)
        {
            bool first = true;
            while (true)
            {
                ParseSequence(ref flags, nested, first: nested == 0 && first);
                first = false;
                if (!Match('|')) break;
                _out.Append('|');
            }
        }

        // One branch: items until '|', ')' or the end.
        void ParseSequence(ref Flags flags, int nested, bool first)
        {
            int lastStart = -1;
            var last = Last.None;
            bool anyItem = false; // Python's "subpattern" is non-empty
            while (!AtEnd)
            {
                char c = _src[_pos];
                if (c == '|' || c == ')') break;
                int tokenStart = _pos;
                _pos++;
                if (flags.Verbose)
                {
                    if (" \t\n\r\v\f".Contains(c)) continue;
                    if (c == '#')
                    {
                        while (!AtEnd && _src[_pos++] != '\n') { }
                        continue;
                    }
                }
                int itemStart = _out.Length;
                Last kind;
                switch (c)
                {
                    case '\\':
                        kind = ParseEscape(tokenStart, flags);
                        break;
                    case '[':
                        ParseClass(tokenStart, flags);
                        kind = Last.Atom;
                        break;
                    case '.':
                        _out.Append(flags.DotAll ? @"(?:[^\uD800-\uDBFF]|" : @"(?:[^\n\uD800-\uDBFF]|")
                            .Append(HighUnit).Append(')');
                        kind = Last.Atom;
                        break;
                    case '^':
                        _out.Append('^');
                        kind = Last.Anchor;
                        break;
                    case '$':
                        _out.Append('$');
                        kind = Last.Anchor;
                        break;
                    case '*' or '+' or '?' or '{':
                        {
                            int min, max; // max -1: unbounded
                            if (c == '{')
                            {
                                if (Next == '}') { AppendLiteral('{'); kind = Last.Atom; break; }
                                int save = _pos;
                                string lo = ReadDigits(), hi;
                                if (Match(',')) hi = ReadDigits(); else hi = lo;
                                if (!Match('}'))
                                {
                                    _pos = save;
                                    AppendLiteral('{');
                                    kind = Last.Atom;
                                    break;
                                }
                                min = lo.Length > 0 ? ParseCount(lo) : 0;
                                max = hi.Length > 0 ? ParseCount(hi) : -1;
                                if (max >= 0 && max < min)
                                    throw Error("min repeat greater than max repeat", save);
                            }
                            else
                            {
                                (min, max) = c == '*' ? (0, -1) : c == '+' ? (1, -1) : (0, 1);
                            }
                            if (!anyItem || last == Last.Anchor)
                                throw Error("nothing to repeat", tokenStart);
                            if (last == Last.Repeat)
                                throw Error("multiple repeat", tokenStart);
                            if (last == Last.Assertion)
                            {
                                _out.Insert(lastStart, "(?:");
                                _out.Append(')');
                            }
                            string q = max == -1
                                ? (min == 0 ? "*" : min == 1 ? "+" : $"{{{min},}}")
                                : min == 0 && max == 1 ? "?" : min == max ? $"{{{min}}}" : $"{{{min},{max}}}";
                            if (Match('?')) _out.Append(q).Append('?');
                            else if (Match('+'))
                            {
                                _out.Insert(lastStart, "(?>");
                                _out.Append(q).Append(')');
                            }
                            else _out.Append(q);
                            last = Last.Repeat;
                            continue; // the repeated item keeps its start
                        }
                    case '(':
                        {
                            var k = ParseGroup(tokenStart, ref flags, nested, first && !anyItem);
                            if (k is null) continue; // flags or comment: no item
                            kind = k.Value;
                            break;
                        }
                    default:
                        if (char.IsHighSurrogate(c) && !AtEnd && char.IsLowSurrogate(_src[_pos]))
                            AppendLiteral(char.ConvertToUtf32(c, _src[_pos++]));
                        else AppendLiteral(c);
                        kind = Last.Atom;
                        break;
                }
                lastStart = itemStart;
                last = kind;
                anyItem = true;
            }
        }

        string ReadDigits()
        {
            int s = _pos;
            while (!AtEnd && _src[_pos] is >= '0' and <= '9') _pos++;
            return _src[s.._pos];
        }

        int ParseCount(string digits)
        {
            if (!int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var v))
                throw new PythonRegexException("the repetition number is too large");
            return v;
        }

        // After '(' . Returns null when the group adds no item (global flags, comment).
        Last? ParseGroup(int start, ref Flags flags, int nested, bool canSetGlobal)
        {
            bool capture = true;
            string? name = null;
            var sub = flags;
            string open = "(";
            if (Match('?'))
            {
                if (AtEnd) throw Error("unexpected end of pattern", _pos);
                char ch = _src[_pos++];
                if (ch == 'P')
                {
                    if (Match('<'))
                    {
                        name = ReadUntil('>', "group name");
                        CheckGroupName(name, _pos - name.Length - 1);
                    }
                    else if (Match('='))
                    {
                        var refName = ReadUntil(')', "group name");
                        CheckGroupName(refName, _pos - refName.Length - 1);
                        if (!_names.TryGetValue(refName, out var gid))
                            throw Error($"unknown group name '{refName}'", _pos - refName.Length - 1);
                        if (!_closed.Contains(gid))
                            throw Error("cannot refer to an open group", _pos - refName.Length - 1);
                        _out.Append(@"\k<").Append(gid).Append('>');
                        return Last.Atom;
                    }
                    else
                    {
                        if (AtEnd) throw Error("unexpected end of pattern", _pos);
                        throw Error($"unknown extension ?P{_src[_pos]}", _pos - 2);
                    }
                }
                else if (ch == ':') { capture = false; open = "(?:"; }
                else if (ch == '#')
                {
                    while (true)
                    {
                        if (AtEnd) throw Error("missing ), unterminated comment", start);
                        if (_src[_pos++] == ')') break;
                    }
                    return null;
                }
                else if (ch is '=' or '!' or '<')
                {
                    string look;
                    if (ch == '<')
                    {
                        if (AtEnd) throw Error("unexpected end of pattern", _pos);
                        char d = _src[_pos++];
                        if (d is not ('=' or '!')) throw Error($"unknown extension ?<{d}", _pos - 3);
                        look = "(?<" + d;
                    }
                    else look = "(?" + ch;
                    _out.Append(look);
                    var inner = flags;
                    ParseAlternation(ref inner, nested + 1);
                    if (!Match(')')) throw Error("missing ), unterminated subpattern", start);
                    _out.Append(')');
                    return Last.Assertion;
                }
                else if (ch == '(')
                {
                    int at = _pos;
                    var cond = ReadUntil(')', "group name");
                    int gid;
                    if (IsIdentifier(cond))
                    {
                        if (!_names.TryGetValue(cond, out gid)) throw Error($"unknown group name '{cond}'", at);
                    }
                    else
                    {
                        if (cond.Length == 0 || !cond.All(char.IsAsciiDigit) ||
                            !int.TryParse(cond, NumberStyles.None, CultureInfo.InvariantCulture, out gid))
                            throw Error($"bad character in group name '{cond}'", at);
                        if (gid == 0) throw Error("bad group number", at);
                        _condRefs.Add((gid, at));
                    }
                    _out.Append("(?(").Append(gid).Append(')');
                    var inner = flags;
                    ParseSequence(ref inner, nested + 1, first: false);
                    if (Match('|'))
                    {
                        _out.Append('|');
                        ParseSequence(ref inner, nested + 1, first: false);
                        if (Next == '|') throw Error("conditional backref with more than two branches", _pos);
                    }
                    if (!Match(')')) throw Error("missing ), unterminated subpattern", start);
                    _out.Append(')');
                    return Last.Atom;
                }
                else if (ch == '>') { capture = false; open = "(?>"; }
                else if ("iLmsxatu-".Contains(ch))
                {
                    var (add, del, global) = ParseFlags(ch);
                    if (global)
                    {
                        if (!canSetGlobal)
                            throw Error("global flags not at the start of the expression", start);
                        foreach (var f in add) _globalFlagSet.Add(f);
                        if (_globalFlagSet.Contains('a') && _globalFlagSet.Contains('u'))
                            throw new PythonRegexException("ASCII and UNICODE flags are incompatible");
                        var dotnet = _globalFlagSet.Where(f => f is 'i' or 'm' or 's').Order().ToArray();
                        GlobalFlags = dotnet.Length == 0 ? "" : "(?" + new string(dotnet) + ")";
                        if (add.Contains('x')) flags.Verbose = true;
                        if (add.Contains('a')) flags.Ascii = true;
                        if (add.Contains('s')) flags.DotAll = true;
                        return null;
                    }
                    capture = false;
                    if (add.Contains('x')) sub.Verbose = true;
                    if (del.Contains('x')) sub.Verbose = false;
                    if (add.Contains('a')) sub.Ascii = true;
                    if (add.Contains('u')) sub.Ascii = false;
                    if (add.Contains('s')) sub.DotAll = true;
                    if (del.Contains('s')) sub.DotAll = false;
                    string a = new(add.Where(f => f is 'i' or 'm' or 's').ToArray());
                    string d = new(del.Where(f => f is 'i' or 'm' or 's').ToArray());
                    open = a.Length + d.Length == 0 ? "(?:" : "(?" + a + (d.Length > 0 ? "-" + d : "") + ":";
                }
                else throw Error($"unknown extension ?{ch}", _pos - 2);
            }
            int gidOpen = 0;
            if (capture)
            {
                gidOpen = ++GroupCount;
                if (name is not null)
                {
                    if (_names.TryGetValue(name, out var old))
                        throw Error($"redefinition of group name '{name}' as group {gidOpen}; was group {old}", start);
                    _names[name] = gidOpen;
                }
            }
            _out.Append(open);
            ParseAlternation(ref sub, nested + 1);
            if (!Match(')')) throw Error("missing ), unterminated subpattern", start);
            _out.Append(')');
            if (capture) _closed.Add(gidOpen);
            return Last.Atom;
        }

        // _parse_flags: after "(?" and its first flag character. Global: "(?flags)".
        (string add, string del, bool global) ParseFlags(char ch)
        {
            var add = new StringBuilder();
            var del = new StringBuilder();
            if (ch != '-')
            {
                while (true)
                {
                    if (ch == 'L') throw Error("bad inline flags: cannot use 'L' flag with a str pattern", _pos);
                    if (ch == 't') throw Error("the TEMPLATE flag (?t) is not supported", _pos);
                    add.Append(ch);
                    if (add.ToString().Contains('a') && add.ToString().Contains('u'))
                        throw Error("bad inline flags: flags 'a', 'u' and 'L' are incompatible", _pos);
                    if (AtEnd) throw Error("missing -, : or )", _pos);
                    ch = _src[_pos++];
                    if (ch is ')' or '-' or ':') break;
                    if (!"iLmsxatu".Contains(ch))
                        throw Error(char.IsLetter(ch) ? "unknown flag" : "missing -, : or )", _pos - 1);
                }
            }
            if (ch == ')') return (add.ToString(), "", true);
            if (ch == '-')
            {
                if (AtEnd) throw Error("missing flag", _pos);
                ch = _src[_pos++];
                if (!"iLmsxatu".Contains(ch)) throw Error(char.IsLetter(ch) ? "unknown flag" : "missing flag", _pos - 1);
                while (true)
                {
                    if (ch is 'a' or 'u' or 'L')
                        throw Error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'", _pos);
                    if (ch == 't') throw Error("bad inline flags: cannot turn off global flag", _pos);
                    del.Append(ch);
                    if (AtEnd) throw Error("missing :", _pos);
                    ch = _src[_pos++];
                    if (ch == ':') break;
                    if (!"iLmsxatu".Contains(ch)) throw Error(char.IsLetter(ch) ? "unknown flag" : "missing :", _pos - 1);
                }
            }
            foreach (var f in add.ToString())
                if (del.ToString().Contains(f)) throw Error("bad inline flags: flag turned on and off", _pos);
            return (add.ToString(), del.ToString(), false);
        }

        string ReadUntil(char terminator, string what)
        {
            int s = _pos;
            while (true)
            {
                if (AtEnd)
                {
                    if (_pos == s) throw Error($"missing {what}", s);
                    throw Error($"missing {terminator}, unterminated name", s);
                }
                if (_src[_pos] == terminator)
                {
                    if (_pos == s) throw Error($"missing {what}", s);
                    var r = _src[s.._pos];
                    _pos++;
                    return r;
                }
                _pos++;
            }
        }

        void CheckGroupName(string name, int at)
        {
            if (!IsIdentifier(name)) throw Error($"bad character in group name '{name}'", at);
        }

        // str.isidentifier for ordinary names: a letter or "_", then letters, digits, marks or "_".
        static bool IsIdentifier(string s)
        {
            if (s.Length == 0) return false;
            for (int i = 0; i < s.Length; i++)
            {
                var cat = CharUnicodeInfo.GetUnicodeCategory(s[i]);
                bool letter = char.IsLetter(s[i]) || s[i] == '_' || cat == UnicodeCategory.LetterNumber;
                if (i == 0 ? !letter
                    : !(letter || cat is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.NonSpacingMark
                        or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.ConnectorPunctuation))
                    return false;
            }
            return true;
        }

        // ---- escapes outside a class (_escape) ----
        Last ParseEscape(int start, Flags flags)
        {
            if (AtEnd) throw Error("bad escape (end of pattern)", start);
            char c = _src[_pos++];
            switch (c)
            {
                case 'A': _out.Append(@"\A"); return Last.Anchor;
                case 'Z': _out.Append(@"\z"); return Last.Anchor;
                case 'b': _out.Append(Boundary(flags.Ascii, negate: false)); return Last.Anchor;
                case 'B': _out.Append(Boundary(flags.Ascii, negate: true)); return Last.Anchor;
                case 'd' or 's' or 'w':
                    _out.Append('[').Append(CategorySet(c, flags.Ascii)).Append(']');
                    return Last.Atom;
                case 'D' or 'S' or 'W':
                    _out.Append(NotIn(CategorySet(char.ToLowerInvariant(c), flags.Ascii)));
                    return Last.Atom;
            }
            if (SimpleEscape(c) is int lit) { AppendLiteral(lit); return Last.Atom; }
            if (c is 'x' or 'u' or 'U') { AppendLiteral(HexEscape(c, start)); return Last.Atom; }
            if (c == 'N') throw Error(@"named character escapes \N{...} are not supported", start);
            if (c == '0')
            {
                int v = 0, n = 0;
                while (n < 2 && !AtEnd && _src[_pos] is >= '0' and <= '7') { v = v * 8 + (_src[_pos++] - '0'); n++; }
                AppendLiteral(v);
                return Last.Atom;
            }
            if (c is >= '1' and <= '9')
            {
                string esc = c.ToString();
                if (!AtEnd && char.IsAsciiDigit(_src[_pos]))
                {
                    esc += _src[_pos++];
                    if (esc[0] <= '7' && esc[1] <= '7' && !AtEnd && _src[_pos] is >= '0' and <= '7')
                    {
                        esc += _src[_pos++];
                        int v = Convert.ToInt32(esc, 8);
                        if (v > 255) throw Error($"octal escape value \\{esc} outside of range 0-0o377", start);
                        AppendLiteral(v);
                        return Last.Atom;
                    }
                }
                int group = int.Parse(esc, CultureInfo.InvariantCulture);
                if (group <= GroupCount)
                {
                    if (!_closed.Contains(group)) throw Error("cannot refer to an open group", start);
                    _out.Append(@"\k<").Append(group).Append('>');
                    return Last.Atom;
                }
                throw Error($"invalid group reference {group}", start + 1);
            }
            if (char.IsAsciiLetter(c)) throw Error($"bad escape \\{c}", start);
            if (char.IsHighSurrogate(c) && !AtEnd && char.IsLowSurrogate(_src[_pos]))
                AppendLiteral(char.ConvertToUtf32(c, _src[_pos++]));
            else AppendLiteral(c);
            return Last.Atom;
        }

        static int? SimpleEscape(char c) => c switch
        {
            'a' => 7, 'f' => 12, 'n' => 10, 'r' => 13, 't' => 9, 'v' => 11, '\\' => '\\', _ => null,
        };

        int HexEscape(char kind, int start)
        {
            int digits = kind == 'x' ? 2 : kind == 'u' ? 4 : 8;
            int s = _pos;
            while (_pos - s < digits && !AtEnd && char.IsAsciiHexDigit(_src[_pos])) _pos++;
            var hex = _src[s.._pos];
            if (hex.Length != digits) throw Error($"incomplete escape \\{kind}{hex}", start);
            long v = long.Parse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            if (v > 0x10FFFF) throw Error($"bad escape \\{kind}{hex}", start);
            return (int)v;
        }

        // The members of \d, \s, \w as .NET class text (without brackets).
        static string CategorySet(char c, bool ascii) => c switch
        {
            'd' => ascii ? "0-9" : @"\d",
            's' => ascii ? @" \t\n\r\f\v" : @"\s\u001C-\u001F",
            'w' => ascii ? "a-zA-Z0-9_" : @"\p{L}\p{N}_",
            _ => throw new InvalidOperationException(),
        };

        static string Boundary(bool ascii, bool negate)
        {
            var w = "[" + CategorySet('w', ascii) + "]";
            return negate
                ? $@"(?:(?<={w})(?={w})|(?<!{w})(?!{w})(?!\A\z))"  // Python's \B never matches in an empty string
                : $"(?:(?<={w})(?!{w})|(?<!{w})(?={w}))";
        }

        // One code point not in the BMP class text `set` (surrogates excluded from it): a BMP character outside the
        // set, or a whole surrogate pair.
        static string NotIn(string set) => @"(?:[^" + set + @"\uD800-\uDBFF]|" + HighUnit + ")";

        // ---- character classes ----
        void ParseClass(int start, Flags flags)
        {
            var ranges = new List<(int lo, int hi)>();
            var sets = new List<string>();     // \d \s \w
            var notSets = new List<string>();  // \D \S \W
            bool negate = Match('^');
            bool any = false;
            while (true)
            {
                if (AtEnd) throw Error("unterminated character set", start);
                int tokStart = _pos;
                char c = _src[_pos++];
                if (c == ']' && any) break;
                any = true;
                // item 1
                (int kind, int value, string? set) item1 = ClassItem(c, tokStart, flags);
                if (Match('-'))
                {
                    if (AtEnd) throw Error("unterminated character set", start);
                    int thatStart = _pos;
                    char d = _src[_pos++];
                    if (d == ']')
                    {
                        AddItem(item1);
                        ranges.Add(('-', '-'));
                        break;
                    }
                    var item2 = ClassItem(d, thatStart, flags);
                    if (item1.kind != 0 || item2.kind != 0)
                        throw Error($"bad character range {_src[tokStart..(thatStart - 1)]}-{_src[thatStart.._pos]}", tokStart);
                    if (item2.value < item1.value)
                        throw Error($"bad character range {_src[tokStart..(thatStart - 1)]}-{_src[thatStart.._pos]}", tokStart);
                    ranges.Add((item1.value, item2.value));
                }
                else AddItem(item1);
            }
            _out.Append(ClassExpression(ranges, sets, notSets, negate));

            void AddItem((int kind, int value, string? set) it)
            {
                if (it.kind == 0) ranges.Add((it.value, it.value));
                else if (it.kind == 1) sets.Add(it.set!);
                else notSets.Add(it.set!);
            }
        }

        // kind 0: literal code point, 1: category set, 2: negated category set.
        (int kind, int value, string? set) ClassItem(char c, int start, Flags flags)
        {
            if (c != '\\')
            {
                if (char.IsHighSurrogate(c) && !AtEnd && char.IsLowSurrogate(_src[_pos]))
                    return (0, char.ConvertToUtf32(c, _src[_pos++]), null);
                return (0, c, null);
            }
            if (AtEnd) throw Error("unterminated character set", start);
            char e = _src[_pos++];
            switch (e)
            {
                case 'd' or 's' or 'w': return (1, 0, CategorySet(e, flags.Ascii));
                case 'D' or 'S' or 'W': return (2, 0, CategorySet(char.ToLowerInvariant(e), flags.Ascii));
                case 'b': return (0, 8, null);
            }
            if (SimpleEscape(e) is int lit) return (0, lit, null);
            if (e is 'x' or 'u' or 'U') return (0, HexEscape(e, start), null);
            if (e == 'N') throw Error(@"named character escapes \N{...} are not supported", start);
            if (e is >= '0' and <= '7')
            {
                int v = e - '0', n = 0;
                while (n < 2 && !AtEnd && _src[_pos] is >= '0' and <= '7') { v = v * 8 + (_src[_pos++] - '0'); n++; }
                if (v > 255) throw Error($"octal escape value {_src[start.._pos]} outside of range 0-0o377", start);
                return (0, v, null);
            }
            if (char.IsAsciiDigit(e) || char.IsAsciiLetter(e)) throw Error($"bad escape \\{e}", start);
            if (char.IsHighSurrogate(e) && !AtEnd && char.IsLowSurrogate(_src[_pos]))
                return (0, char.ConvertToUtf32(e, _src[_pos++]), null);
            return (0, e, null);
        }

        // A Python class as a .NET expression matching one code point: the BMP members as one .NET class (surrogates
        // taken out, since a surrogate in .NET's string is half of a code point), astral ranges as surrogate-pair
        // alternatives, negated categories as alternatives of their own.
        static string ClassExpression(List<(int lo, int hi)> ranges, List<string> sets, List<string> notSets, bool negate)
        {
            var bmp = new StringBuilder();
            var alternatives = new List<string>();
            bool touchesSurrogates = false;
            foreach (var (lo, hi) in ranges)
            {
                if (lo <= 0xFFFF)
                {
                    int top = Math.Min(hi, 0xFFFF);
                    bmp.Append(Esc(lo));
                    if (top > lo) bmp.Append('-').Append(Esc(top));
                    if (lo <= 0xDFFF && top >= 0xD800) touchesSurrogates = true;
                }
                if (hi > 0xFFFF) alternatives.Add(AstralRange(Math.Max(lo, 0x10000), hi));
            }
            foreach (var s in sets) bmp.Append(s);
            bool astral = alternatives.Count > 0;
            if (bmp.Length > 0)
                alternatives.Insert(0, "[" + bmp + (touchesSurrogates ? @"-[\uD800-\uDFFF]]" : "]"));
            foreach (var s in notSets) alternatives.Add(NotIn(s));

            if (negate && !astral && !touchesSurrogates && notSets.Count == 0)
                return NotIn(bmp.ToString()); // the common [^...]
            var positive = alternatives.Count == 1 ? alternatives[0] : "(?:" + string.Join("|", alternatives) + ")";
            return negate ? @"(?:(?!" + positive + @")(?:[^\uD800-\uDBFF]|" + HighUnit + "))" : positive;
        }

        // Code points lo..hi (all above U+FFFF) as UTF-16 surrogate sequences.
        static string AstralRange(int lo, int hi)
        {
            static (int h, int l) Split(int cp) => (0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF));
            var (h1, l1) = Split(lo);
            var (h2, l2) = Split(hi);
            string R(int a, int b) => a == b ? Esc(a) : "[" + Esc(a) + "-" + Esc(b) + "]";
            if (h1 == h2) return "(?:" + Esc(h1) + R(l1, l2) + ")";
            var parts = new List<string> { Esc(h1) + R(l1, 0xDFFF) };
            if (h2 > h1 + 1) parts.Add(R(h1 + 1, h2 - 1) + R(0xDC00, 0xDFFF));
            parts.Add(Esc(h2) + R(0xDC00, l2));
            return "(?:" + string.Join("|", parts) + ")";
        }

        static string Esc(int cp) =>
            cp < 128 && char.IsAsciiLetterOrDigit((char)cp) ? ((char)cp).ToString() : $@"\u{cp:X4}";

        void AppendLiteral(int cp)
        {
            if (cp <= 0xFFFF) _out.Append(Esc(cp));
            else
            {
                var s = char.ConvertFromUtf32(cp);
                _out.Append("(?:").Append(Esc(s[0])).Append(Esc(s[1])).Append(')');
            }
        }
    }
}
