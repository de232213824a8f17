namespace PostTrain.Tokenization.Jinja;

/// <summary>Recursive-descent parser over the lexer's tokens, following jinja2's grammar and precedence.</summary>
public sealed class Parser
{
    private readonly List<Token> _t;
    private readonly string _name;
    private int _i;
    // Inside an if block or an inline if, jinja2 defers unknown filter/test errors to runtime.
    private int _soft;

    private readonly JinjaDialect _dialect;

    private Parser(List<Token> tokens, string name, JinjaDialect dialect) { _t = tokens; _name = name; _dialect = dialect; }

    public static List<Node> Parse(string source, string name, JinjaDialect? dialect = null)
    {
        dialect ??= JinjaDialect.Transformers;
        var p = new Parser(Lexer.Tokenize(source, name, dialect), name, dialect);
        var body = p.ParseBody([]);
        if (p.Cur.Kind != TokenKind.Eof) throw p.Error(p.Cur, $"unexpected {p.Cur}");
        return body;
    }

    private Token Cur => _t[_i];
    private Token Peek(int k = 1) => _t[Math.Min(_i + k, _t.Count - 1)];
    private Token Next() => _t[_i++];

    private TemplateSyntaxError Error(Token at, string message) => new(_name, at.Line, at.Column, message);

    private int _depth;

    // Nesting (of parentheses, brackets, unary operators, blocks) is limited, so that a deep
    // template is a syntax error rather than a stack overflow that ends the process.
    private void Enter()
    {
        if (++_depth > JinjaLimits.MaxDepth || !System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw Error(Cur, $"expressions or blocks nest more than {JinjaLimits.MaxDepth} deep");
    }

    private T At<T>(T node, Token tok) where T : Node => node with { Line = tok.Line, Column = tok.Column };

    private Token Expect(string op)
    {
        if (!Cur.Is(op)) throw Error(Cur, $"expected '{op}', got {Cur}");
        return Next();
    }

    private string ExpectName()
    {
        if (Cur.Kind != TokenKind.Name) throw Error(Cur, $"expected a name, got {Cur}");
        return Next().Text;
    }

    private void ExpectBlockEnd()
    {
        if (Cur.Kind != TokenKind.BlockEnd) throw Error(Cur, $"expected end of statement block, got {Cur}");
        Next();
    }

    /// <summary>Parses nodes until a block tag whose keyword is in <paramref name="endTags"/> (left unconsumed, after "{%").</summary>
    private List<Node> ParseBody(string[] endTags)
    {
        var body = new List<Node>();
        while (true)
        {
            var tok = Cur;
            switch (tok.Kind)
            {
                case TokenKind.Eof:
                    if (endTags.Length > 0) throw Error(tok, $"unexpected end of template; expected '{string.Join("' or '", endTags)}'");
                    return body;
                case TokenKind.Data:
                    Next();
                    body.Add(At(new TextStmt(tok.Text), tok));
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    var e = ParseTuple(allowEmpty: false);
                    if (Cur.Kind != TokenKind.VariableEnd) throw Error(Cur, $"expected end of print statement, got {Cur}");
                    Next();
                    body.Add(At(new PrintStmt(e), tok));
                    break;
                case TokenKind.BlockBegin:
                    var kw = Peek();
                    if (kw.Kind == TokenKind.Name && endTags.Contains(kw.Text)) { Next(); return body; }
                    Next();
                    body.Add(ParseStatement());
                    break;
                default:
                    throw Error(tok, $"unexpected {tok}");
            }
        }
    }

    private Node ParseStatement()
    {
        Enter();
        try { return ParseStatementCore(); }
        finally { _depth--; }
    }

    private Node ParseStatementCore()
    {
        var tok = Cur;
        if (tok.Kind != TokenKind.Name) throw Error(tok, "tag name expected");
        switch (tok.Text)
        {
            case "if": return ParseIf();
            case "for": return ParseFor();
            case "set": return ParseSet();
            case "macro": return ParseMacro();
            case "call": return ParseCallBlock();
            case "filter": return ParseFilterBlock();
            case "with": return ParseWith();
            case "generation":
                Next(); ExpectBlockEnd();
                var gbody = ParseBody(["endgeneration"]);
                Next(); ExpectBlockEnd();
                return At(new GenerationStmt(gbody), tok);
            case "break": Next(); ExpectBlockEnd(); return At(new BreakStmt(), tok);
            case "continue": Next(); ExpectBlockEnd(); return At(new ContinueStmt(), tok);
            default:
                throw Error(tok, $"Encountered unknown tag '{tok.Text}'.");
        }
    }

    private Node ParseIf()
    {
        var tok = Next();
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var test = ParseTuple(allowEmpty: false);
        ExpectBlockEnd();
        while (true)
        {
            _soft++;
            var body = ParseBody(["elif", "else", "endif"]);
            _soft--;
            branches.Add((test, body));
            var kw = Next();
            if (kw.Text == "elif") { test = ParseTuple(allowEmpty: false); ExpectBlockEnd(); continue; }
            if (kw.Text == "else")
            {
                ExpectBlockEnd();
                _soft++;
                elseBody = ParseBody(["endif"]);
                _soft--;
                Next();
            }
            ExpectBlockEnd();
            break;
        }
        return At(new IfStmt(branches, elseBody), tok);
    }

    private Node ParseFor()
    {
        var tok = Next();
        var target = ParseAssignTarget();
        if (!Cur.IsName("in")) throw Error(Cur, $"expected 'in', got {Cur}");
        Next();
        var iter = ParseTuple(allowEmpty: false, withCondExpr: false);
        Expr? filter = null;
        if (Cur.IsName("if")) { Next(); filter = ParseExpression(); }
        bool recursive = false;
        if (Cur.IsName("recursive")) { Next(); recursive = true; }
        ExpectBlockEnd();
        var body = ParseBody(["endfor", "else"]);
        List<Node>? elseBody = null;
        if (Next().Text == "else")
        {
            ExpectBlockEnd();
            elseBody = ParseBody(["endfor"]);
            Next();
        }
        ExpectBlockEnd();
        return At(new ForStmt(target, iter, filter, body, elseBody, recursive), tok);
    }

    private Expr ParseAssignTarget()
    {
        var first = Cur;
        Expr one()
        {
            var t = Cur;
            var name = ExpectName();
            if (Cur.Is(".") && Peek().Kind == TokenKind.Name)
            {
                Next();
                var attr = Next().Text;
                return At(new GetAttrExpr(At(new NameExpr(name), t), attr), t);
            }
            return At(new NameExpr(name), t);
        }
        var items = new List<Expr> { one() };
        bool tuple = false;
        while (Cur.Is(",")) { Next(); tuple = true; if (Cur.Kind != TokenKind.Name) break; items.Add(one()); }
        return tuple ? At(new TupleExpr(items), first) : items[0];
    }

    private Node ParseSet()
    {
        var tok = Next();
        var target = ParseAssignTarget();
        if (Cur.Is("="))
        {
            Next();
            var value = ParseTuple(allowEmpty: false);
            ExpectBlockEnd();
            return At(new SetStmt(target, value), tok);
        }
        var filters = ParseFilterChain();
        ExpectBlockEnd();
        var body = ParseBody(["endset"]);
        Next(); ExpectBlockEnd();
        return At(new SetBlockStmt(target, filters, body), tok);
    }

    private List<FilterExpr> ParseFilterChain()
    {
        var filters = new List<FilterExpr>();
        while (Cur.Is("|")) { Next(); filters.Add(ParseFilterCall(null)); }
        return filters;
    }

    private FilterExpr ParseFilterCall(Expr? target)
    {
        var tok = Cur;
        var name = ExpectName();
        while (Cur.Is(".")) { Next(); name += "." + ExpectName(); }
        if (_soft == 0 && !Filters.JinjaNames.Contains(name) && !_dialect.Filters.ContainsKey(name)) throw new TemplateError(_name, tok.Line, tok.Column, $"No filter named '{name}'.");
        List<Expr> args = [];
        List<(string, Expr)> kwargs = [];
        if (Cur.Is("(")) (args, kwargs) = ParseCallArgs();
        return At(new FilterExpr(target, name, args, kwargs), tok);
    }

    private Node ParseFilterBlock()
    {
        var tok = Next();
        var filters = new List<FilterExpr> { ParseFilterCall(null) };
        filters.AddRange(ParseFilterChain());
        ExpectBlockEnd();
        var body = ParseBody(["endfilter"]);
        Next(); ExpectBlockEnd();
        return At(new FilterBlockStmt(filters, body), tok);
    }

    private Node ParseWith()
    {
        var tok = Next();
        var assignments = new List<(Expr, Expr)>();
        while (Cur.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0) Expect(",");
            var target = ParseAssignTarget();
            Expect("=");
            assignments.Add((target, ParseExpression()));
        }
        ExpectBlockEnd();
        var body = ParseBody(["endwith"]);
        Next(); ExpectBlockEnd();
        return At(new WithStmt(assignments, body), tok);
    }

    private (List<string>, List<Expr?>) ParseSignature()
    {
        var names = new List<string>();
        var defaults = new List<Expr?>();
        Expect("(");
        while (!Cur.Is(")"))
        {
            if (names.Count > 0) Expect(",");
            if (Cur.Is(")")) break;
            names.Add(ExpectName());
            if (Cur.Is("=")) { Next(); defaults.Add(ParseExpression()); }
            else defaults.Add(null);
        }
        Next();
        return (names, defaults);
    }

    private Node ParseMacro()
    {
        var tok = Next();
        var name = ExpectName();
        var (names, defaults) = ParseSignature();
        ExpectBlockEnd();
        var body = ParseBody(["endmacro"]);
        Next(); ExpectBlockEnd();
        return At(new MacroStmt(name, names, defaults, body), tok);
    }

    private Node ParseCallBlock()
    {
        var tok = Next();
        List<string> names = [];
        List<Expr?> defaults = [];
        if (Cur.Is("(")) (names, defaults) = ParseSignature();
        var call = ParseExpression();
        if (call is not CallExpr ce) throw Error(tok, "expected call");
        ExpectBlockEnd();
        var body = ParseBody(["endcall"]);
        Next(); ExpectBlockEnd();
        return At(new CallBlockStmt(ce, names, defaults, body), tok);
    }

    // ---- Expressions (jinja2 precedence) ----

    private Expr ParseTuple(bool allowEmpty, bool withCondExpr = true)
    {
        var tok = Cur;
        var items = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0) Expect(",");
            if (IsTupleEnd()) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
            if (Cur.Is(",")) isTuple = true; else break;
        }
        if (!isTuple)
        {
            if (items.Count == 1) return items[0];
            if (!allowEmpty) throw Error(Cur, $"Expected an expression, got {Cur}");
        }
        return At(new TupleExpr(items), tok);
    }

    private bool IsTupleEnd() => Cur.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.Eof
        || Cur.Is(")") || Cur.IsName("in") || Cur.IsName("if") || Cur.IsName("recursive");

    public Expr ParseExpression()
    {
        Enter();
        try { return ParseExpressionCore(); }
        finally { _depth--; }
    }

    private Expr ParseExpressionCore()
    {
        var tok = Cur;
        int mark = _i, soft = _soft;
        var expr = ParseOr();
        if (Cur.IsName("if") && soft == _soft)
        {
            // Re-parse the value of an inline if as a soft (conditional) branch.
            _i = mark;
            _soft++;
            try { expr = ParseOr(); } finally { _soft--; }
        }
        while (Cur.IsName("if"))
        {
            Next();
            var test = ParseOr();
            Expr? otherwise = null;
            if (Cur.IsName("else")) { Next(); _soft++; try { otherwise = ParseExpression(); } finally { _soft--; } }
            expr = At(new CondExpr(test, expr, otherwise), tok);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Cur.IsName("or")) { var t = Next(); left = At(new BinaryExpr("or", left, ParseAnd()), t); }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Cur.IsName("and")) { var t = Next(); left = At(new BinaryExpr("and", left, ParseNot()), t); }
        return left;
    }

    private Expr ParseNot()
    {
        if (Cur.IsName("not"))
        {
            var t = Next();
            Enter();
            try { return At(new UnaryExpr("not", ParseNot()), t); }
            finally { _depth--; }
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var tok = Cur;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Cur.Kind == TokenKind.Operator && Cur.Text is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                var op = Next().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (Cur.IsName("in")) { Next(); rest.Add(("in", ParseMath1())); }
            else if (Cur.IsName("not") && Peek().IsName("in")) { Next(); Next(); rest.Add(("notin", ParseMath1())); }
            else break;
        }
        return rest.Count == 0 ? first : At(new CompareExpr(first, rest), tok);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Cur.Is("+") || Cur.Is("-")) { var t = Next(); left = At(new BinaryExpr(t.Text, left, ParseConcat()), t); }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Cur.Is("~")) { var t = Next(); left = At(new BinaryExpr("~", left, ParseMath2()), t); }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Cur.Is("*") || Cur.Is("/") || Cur.Is("//") || Cur.Is("%")) { var t = Next(); left = At(new BinaryExpr(t.Text, left, ParsePow()), t); }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(true);
        while (Cur.Is("**")) { var t = Next(); left = At(new BinaryExpr("**", left, ParseUnary(true)), t); }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Enter();
        try { return ParseUnaryCore(withFilter); }
        finally { _depth--; }
    }

    private Expr ParseUnaryCore(bool withFilter)
    {
        var tok = Cur;
        Expr node;
        if (Cur.Is("-")) { Next(); node = At(new UnaryExpr("-", ParseUnary(false)), tok); }
        else if (Cur.Is("+")) { Next(); node = At(new UnaryExpr("+", ParseUnary(false)), tok); }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var tok = Cur;
        switch (tok.Kind)
        {
            case TokenKind.Name:
                Next();
                return tok.Text switch
                {
                    "true" or "True" => At(new ConstExpr(true), tok),
                    "false" or "False" => At(new ConstExpr(false), tok),
                    "none" or "None" => At(new ConstExpr(null), tok),
                    _ => At(new NameExpr(tok.Text), tok),
                };
            case TokenKind.String:
                Next();
                var s = (string)tok.Value!;
                while (Cur.Kind == TokenKind.String) s += (string)Next().Value!;
                return At(new ConstExpr(s), tok);
            case TokenKind.Integer:
            case TokenKind.Float:
                Next();
                return At(new ConstExpr(tok.Value), tok);
            case TokenKind.Operator when tok.Text == "(":
                Next();
                var inner = ParseTuple(allowEmpty: true);
                Expect(")");
                return inner;
            case TokenKind.Operator when tok.Text == "[":
                Next();
                var items = new List<Expr>();
                while (!Cur.Is("]"))
                {
                    if (items.Count > 0) Expect(",");
                    if (Cur.Is("]")) break;
                    items.Add(ParseExpression());
                }
                Next();
                return At(new ListExpr(items), tok);
            case TokenKind.Operator when tok.Text == "{":
                Next();
                var pairs = new List<(Expr, Expr)>();
                while (!Cur.Is("}"))
                {
                    if (pairs.Count > 0) Expect(",");
                    if (Cur.Is("}")) break;
                    var k = ParseExpression();
                    Expect(":");
                    pairs.Add((k, ParseExpression()));
                }
                Next();
                return At(new DictExpr(pairs), tok);
            default:
                throw Error(tok, $"unexpected {tok}");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var tok = Cur;
            if (tok.Is("."))
            {
                Next();
                var attr = Cur;
                if (attr.Kind == TokenKind.Name) { Next(); node = At(new GetAttrExpr(node, attr.Text), tok); }
                else if (attr.Kind == TokenKind.Integer) { Next(); node = At(new GetItemExpr(node, At(new ConstExpr(attr.Value), attr)), tok); }
                else throw Error(attr, "expected name or number");
            }
            else if (tok.Is("["))
            {
                Next();
                var args = new List<Expr>();
                while (!Cur.Is("]"))
                {
                    if (args.Count > 0) Expect(",");
                    args.Add(ParseSubscribed());
                }
                Next();
                node = At(new GetItemExpr(node, args.Count == 1 ? args[0] : At(new TupleExpr(args), tok)), tok);
            }
            else if (tok.Is("("))
            {
                var (args, kwargs) = ParseCallArgs();
                node = At(new CallExpr(node, args, kwargs), tok);
            }
            else return node;
        }
    }

    private Expr ParseSubscribed()
    {
        var tok = Cur;
        Expr? start = null, stop = null, step = null;
        if (!Cur.Is(":"))
        {
            var e = ParseExpression();
            if (!Cur.Is(":")) return e;
            start = e;
        }
        Next();
        if (!Cur.Is("]") && !Cur.Is(",") && !Cur.Is(":")) stop = ParseExpression();
        if (Cur.Is(":"))
        {
            Next();
            if (!Cur.Is("]") && !Cur.Is(",")) step = ParseExpression();
        }
        return At(new SliceExpr(start, stop, step), tok);
    }

    private (List<Expr>, List<(string, Expr)>) ParseCallArgs()
    {
        Expect("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        bool first = true;
        while (!Cur.Is(")"))
        {
            if (!first) Expect(",");
            first = false;
            if (Cur.Is(")")) break;
            if (Cur.Kind == TokenKind.Name && Peek().Is("="))
            {
                var key = Next().Text;
                Next();
                kwargs.Add((key, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Cur, "invalid syntax for function call expression");
                args.Add(ParseExpression());
            }
        }
        Next();
        return (args, kwargs);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Cur.Is("|")) { Next(); node = ParseFilterCall(node); }
            else if (Cur.IsName("is")) node = ParseTest(node);
            else if (Cur.Is("(")) node = ParsePostfix(node);
            else return node;
        }
    }

    private Expr ParseTest(Expr node)
    {
        var tok = Next();
        bool negated = false;
        if (Cur.IsName("not")) { Next(); negated = true; }
        var nameTok = Cur;
        var name = ExpectName();
        while (Cur.Is(".")) { Next(); name += "." + ExpectName(); }
        if (_soft == 0 && !Tests.JinjaNames.Contains(name)) throw new TemplateError(_name, nameTok.Line, nameTok.Column, $"No test named '{name}'.");
        List<Expr> args = [];
        List<(string, Expr)> kwargs = [];
        if (Cur.Is("(")) (args, kwargs) = ParseCallArgs();
        else if ((Cur.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float || Cur.Is("(") || Cur.Is("[") || Cur.Is("{"))
                 && !(Cur.Kind == TokenKind.Name && Cur.Text is "else" or "or" or "and"))
        {
            if (Cur.IsName("is")) throw Error(Cur, "You cannot chain multiple tests with is");
            var arg = ParsePrimary();
            args = [ParsePostfix(arg)];
        }
        return At(new TestExpr(node, name, args, kwargs, negated), tok);
    }
}
