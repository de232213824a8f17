using System.Globalization;
using System.Text;

namespace PostTrain.Tokenization.Jinja;

public enum TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

public readonly record struct Token(TokenKind Kind, string Text, int Line, int Column, object? Value = null)
{
    public bool Is(string op) => Kind == TokenKind.Operator && Text == op;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;
    public override string ToString() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.Data => "template data",
        _ => $"'{Text}'",
    };
}

/// <summary>
/// Splits template source into tokens, configured as transformers configures jinja2:
/// trim_blocks (the first newline after a block or comment tag is removed), lstrip_blocks
/// (spaces and tabs before a block or comment tag at the start of a line are removed; "{%+"
/// turns it off), "-" on either side of a tag strips all whitespace on that side, and a
/// single trailing newline of the source is dropped (keep_trailing_newline=False). Other
/// environments (lm-evaluation-harness's) turn these off through <see cref="JinjaDialect"/>.
/// </summary>
public sealed class Lexer
{
    private readonly string _src;
    private readonly string _name;
    private readonly JinjaDialect _dialect;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private readonly int[] _lineStarts;

    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"];

    private Lexer(string source, string name, JinjaDialect dialect)
    {
        _dialect = dialect;
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (!dialect.KeepTrailingNewline && source.EndsWith('\n')) source = source[..^1];
        _src = source;
        _name = name;
        var starts = new List<int> { 0 };
        for (int i = 0; i < source.Length; i++) if (source[i] == '\n') starts.Add(i + 1);
        _lineStarts = [.. starts];
    }

    public static List<Token> Tokenize(string source, string name, JinjaDialect? dialect = null)
    {
        var lexer = new Lexer(source, name, dialect ?? JinjaDialect.Transformers);
        lexer.Run();
        return lexer._tokens;
    }

    private (int Line, int Col) LineCol(int pos)
    {
        int idx = Array.BinarySearch(_lineStarts, pos);
        if (idx < 0) idx = ~idx - 1;
        return (idx + 1, pos - _lineStarts[idx] + 1);
    }

    private TemplateSyntaxError Error(int pos, string message)
    {
        var (l, c) = LineCol(pos);
        return new TemplateSyntaxError(_name, l, c, message);
    }

    private void Add(TokenKind kind, string text, int pos, object? value = null)
    {
        var (l, c) = LineCol(pos);
        _tokens.Add(new Token(kind, text, l, c, value));
    }

    private void Run()
    {
        bool stripNextData = false; // set by "-%}", "-}}", "-#}"
        while (_pos <= _src.Length)
        {
            int tagStart = FindTagStart(_pos);
            int dataEnd = tagStart < 0 ? _src.Length : tagStart;
            string data = _src[_pos..dataEnd];
            int dataStart = _pos;
            if (stripNextData) { data = data.TrimStart(); dataStart = dataEnd - data.Length; stripNextData = false; }
            if (tagStart < 0)
            {
                if (data.Length > 0) Add(TokenKind.Data, data, dataStart);
                break;
            }
            char kind = _src[tagStart + 1];
            char sign = tagStart + 2 < _src.Length ? _src[tagStart + 2] : '\0';
            if (sign == '-')
            {
                data = data.TrimEnd();
            }
            else if (sign != '+' && kind != '{' && _dialect.LstripBlocks)
            {
                // lstrip_blocks: whitespace between the last newline (or a line start) and the tag goes.
                int lpos = data.LastIndexOf('\n') + 1;
                bool lineStarting = dataStart == 0 || _src[dataStart - 1] == '\n';
                if ((lpos > 0 || lineStarting) && data.Length > lpos && data.AsSpan(lpos).Trim().Length == 0)
                    data = data[..lpos];
            }
            if (data.Length > 0) Add(TokenKind.Data, data, dataStart);
            int inner = tagStart + 2 + (sign is '-' or '+' ? 1 : 0);
            if (kind == '#')
            {
                int end = _src.IndexOf("#}", inner, StringComparison.Ordinal);
                if (end < 0) throw Error(tagStart, "missing end of comment tag");
                _pos = end + 2;
                if (_src[end - 1] == '-' && end - 1 >= inner) stripNextData = true;
                else if (_src[end - 1] != '+' && _dialect.TrimBlocks && _pos < _src.Length && _src[_pos] == '\n') _pos++;
                continue;
            }
            if (kind == '%' && TryRaw(tagStart, inner, ref stripNextData)) continue;
            Add(kind == '{' ? TokenKind.VariableBegin : TokenKind.BlockBegin, kind == '{' ? "{{" : "{%", tagStart);
            _pos = inner;
            LexExpression(kind == '{' ? "}}" : "%}", tagStart, ref stripNextData);
        }
        Add(TokenKind.Eof, "", _src.Length);
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i < _src.Length - 1; i++)
        {
            if (_src[i] == '{' && (_src[i + 1] == '{' || _src[i + 1] == '%' || _src[i + 1] == '#')) return i;
        }
        return -1;
    }

    /// <summary>{% raw %}...{% endraw %}: the body is data, untouched.</summary>
    private bool TryRaw(int tagStart, int inner, ref bool stripNextData)
    {
        int i = inner;
        while (i < _src.Length && char.IsWhiteSpace(_src[i])) i++;
        if (string.CompareOrdinal(_src, i, "raw", 0, 3) != 0) return false;
        int j = i + 3;
        while (j < _src.Length && char.IsWhiteSpace(_src[j])) j++;
        bool stripAfterOpen = false;
        if (j < _src.Length && _src[j] == '-') { stripAfterOpen = true; j++; }
        if (string.CompareOrdinal(_src, j, "%}", 0, 2) != 0) return false;
        int bodyStart = j + 2;
        var m = System.Text.RegularExpressions.Regex.Match(_src[bodyStart..], @"\{%([-+]?)\s*endraw\s*([-+]?)%\}");
        if (!m.Success) throw Error(tagStart, "missing end of raw directive");
        string body = _src.Substring(bodyStart, m.Index);
        if (stripAfterOpen) body = body.TrimStart();
        else if (_dialect.TrimBlocks && body.StartsWith('\n')) body = body[1..];
        if (m.Groups[1].Value == "-") body = body.TrimEnd();
        if (body.Length > 0) Add(TokenKind.Data, body, bodyStart);
        _pos = bodyStart + m.Index + m.Length;
        if (m.Groups[2].Value == "-") stripNextData = true;
        else if (m.Groups[2].Value != "+" && _dialect.TrimBlocks && _pos < _src.Length && _src[_pos] == '\n') _pos++;
        return true;
    }

    private void LexExpression(string end, int tagStart, ref bool stripNextData)
    {
        var brackets = new Stack<char>();
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) _pos++;
            if (_pos >= _src.Length) throw Error(tagStart, end == "}}" ? "unexpected end of template, expected '}}'" : "unexpected end of template, expected '%}'");
            if (brackets.Count == 0)
            {
                if (_src[_pos] == '-' && string.CompareOrdinal(_src, _pos + 1, end, 0, 2) == 0)
                {
                    Add(end == "}}" ? TokenKind.VariableEnd : TokenKind.BlockEnd, end, _pos);
                    _pos += 3;
                    stripNextData = true;
                    return;
                }
                if (_src[_pos] == '+' && end == "%}" && string.CompareOrdinal(_src, _pos + 1, end, 0, 2) == 0)
                {
                    Add(TokenKind.BlockEnd, end, _pos);
                    _pos += 3;
                    return;
                }
                if (string.CompareOrdinal(_src, _pos, end, 0, 2) == 0)
                {
                    Add(end == "}}" ? TokenKind.VariableEnd : TokenKind.BlockEnd, end, _pos);
                    _pos += 2;
                    if (end == "%}" && _dialect.TrimBlocks && _pos < _src.Length && _src[_pos] == '\n') _pos++; // trim_blocks
                    return;
                }
            }
            char c = _src[_pos];
            int start = _pos;
            if (char.IsLetter(c) || c == '_')
            {
                while (_pos < _src.Length && (char.IsLetterOrDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
                Add(TokenKind.Name, _src[start.._pos], start);
            }
            else if (char.IsAsciiDigit(c))
            {
                LexNumber();
            }
            else if (c == '"' || c == '\'')
            {
                Add(TokenKind.String, _src[start..(LexStringEnd(c) + 1)], start, Unescape(_src[(start + 1)..(_pos - 1)]));
            }
            else
            {
                string? op = null;
                foreach (var o in Operators) if (string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0) { op = o; break; }
                if (op is null) throw Error(_pos, $"unexpected char '{c}' at {_pos}");
                if (op is "(" or "[" or "{") brackets.Push(op[0]);
                else if (op is ")" or "]" or "}")
                {
                    char open = op == ")" ? '(' : op == "]" ? '[' : '{';
                    if (brackets.Count == 0 || brackets.Peek() != open) throw Error(_pos, $"unexpected '{op}'");
                    brackets.Pop();
                }
                _pos += op.Length;
                Add(TokenKind.Operator, op, start);
            }
        }
    }

    private void LexNumber()
    {
        int start = _pos;
        while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
        bool isFloat = false;
        if (_pos + 1 < _src.Length && _src[_pos] == '.' && char.IsAsciiDigit(_src[_pos + 1]))
        {
            isFloat = true;
            _pos++;
            while (_pos < _src.Length && (char.IsAsciiDigit(_src[_pos]) || _src[_pos] == '_')) _pos++;
        }
        if (_pos < _src.Length && (_src[_pos] == 'e' || _src[_pos] == 'E'))
        {
            int save = _pos;
            _pos++;
            if (_pos < _src.Length && (_src[_pos] == '+' || _src[_pos] == '-')) _pos++;
            if (_pos < _src.Length && char.IsAsciiDigit(_src[_pos]))
            {
                isFloat = true;
                while (_pos < _src.Length && char.IsAsciiDigit(_src[_pos])) _pos++;
            }
            else _pos = save;
        }
        string text = _src[start.._pos].Replace("_", "");
        if (isFloat) Add(TokenKind.Float, text, start, double.Parse(text, CultureInfo.InvariantCulture));
        else Add(TokenKind.Integer, text, start, long.Parse(text, CultureInfo.InvariantCulture));
    }

    private int LexStringEnd(char quote)
    {
        int start = _pos;
        _pos++;
        while (_pos < _src.Length && _src[_pos] != quote)
        {
            if (_src[_pos] == '\\') _pos++;
            _pos++;
        }
        if (_pos >= _src.Length) throw Error(start, "unexpected end of string");
        _pos++;
        return _pos - 1;
    }

    /// <summary>Python's unicode-escape decoding of a string literal's body.</summary>
    private static string Unescape(string s)
    {
        if (!s.Contains('\\')) return s;
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\' || i + 1 >= s.Length) { sb.Append(c); continue; }
            char n = s[++i];
            switch (n)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x' when i + 2 < s.Length + 0 && IsHex(s, i + 1, 2):
                    sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 2), 16)); i += 2; break;
                case 'u' when IsHex(s, i + 1, 4):
                    sb.Append((char)Convert.ToInt32(s.Substring(i + 1, 4), 16)); i += 4; break;
                case 'U' when IsHex(s, i + 1, 8):
                    sb.Append(char.ConvertFromUtf32(Convert.ToInt32(s.Substring(i + 1, 8), 16))); i += 8; break;
                case >= '0' and <= '7':
                    int v = 0, k = 0;
                    while (k < 3 && i < s.Length && s[i] >= '0' && s[i] <= '7') { v = v * 8 + (s[i] - '0'); i++; k++; }
                    i--;
                    sb.Append((char)v);
                    break;
                default: sb.Append('\\').Append(n); break;
            }
        }
        return sb.ToString();
    }

    private static bool IsHex(string s, int start, int count)
    {
        if (start + count > s.Length) return false;
        for (int i = start; i < start + count; i++) if (!char.IsAsciiHexDigit(s[i])) return false;
        return true;
    }
}
