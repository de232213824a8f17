using System.Text;

namespace PostTrain.Tokenization.Jinja;

/// <summary>A variable scope: the template's top level, one for-loop iteration, a macro call, a with block.</summary>
public sealed class Scope(Scope? parent)
{
    public Scope? Parent { get; } = parent;
    public Dictionary<string, object?> Vars { get; } = [];

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s.Vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }
}

/// <summary>A macro defined with {% macro %}; calling it renders its body to a string.</summary>
public sealed class Macro(MacroStmt def, Scope closure, Macro? caller = null)
{
    public string Name => Def.Name;
    public MacroStmt Def { get; } = def;
    public Scope Closure { get; } = closure;
    /// <summary>For the body of a {% call %} block: the macro it was passed to (unused), else null.</summary>
    public Macro? Caller { get; } = caller;
}

/// <summary>The `loop` variable inside a for loop.</summary>
public sealed class LoopInfo(List<object?> items, int index)
{
    public List<object?> Items { get; } = items;
    public int Index0 { get; set; } = index;

    public object? Get(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new Callable("cycle", (_, args, _) =>
            args.Count == 0 ? throw new TemplateRuntimeError("no items for cycling given") : args[Index0 % args.Count]),
        _ => new Undefined(this, name),
    };
}

/// <summary>
/// Walks the syntax tree and writes output. Runtime errors are reported with the template's
/// name and the line and column of the innermost expression or statement that failed.
/// </summary>
public sealed class Interpreter
{
    private enum Flow { Normal, Break, Continue }

    private readonly string _name;
    private readonly Stack<StringBuilder> _out = new();
    private readonly StringBuilder _root = new();

    /// <summary>The clock strftime_now reads.</summary>
    public Func<DateTime> Now { get; }

    /// <summary>Character [start, end) spans of {% generation %} blocks in the output.</summary>
    public List<(int Start, int End)> GenerationSpans { get; } = [];

    /// <summary>
    /// Values (by reference, e.g. the message dicts) whose for-loop iterations are tracked: for each,
    /// the output span of the last iteration over it that wrote to the result.
    /// </summary>
    public IReadOnlyList<object>? TrackedItems { get; set; }
    public Dictionary<int, (int Start, int End)> TrackedSpans { get; } = [];

    private readonly JinjaDialect _dialect;

    public Interpreter(string name, Func<DateTime> now, JinjaDialect? dialect = null)
    {
        _name = name;
        Now = now;
        _dialect = dialect ?? JinjaDialect.Transformers;
        _out.Push(_root);
    }

    public string Render(List<Node> body, IReadOnlyDictionary<string, object?> context)
    {
        var globals = new Scope(null);
        foreach (var (k, v) in Builtins.Globals) globals.Vars[k] = v;
        var top = new Scope(globals);
        foreach (var (k, v) in context) top.Vars[k] = v;
        using var counting = Operators.CountBuilt();
        Exec(body, top);
        return _root.ToString();
    }

    private StringBuilder Out => _out.Peek();

    private long _iterations;
    private int _macroDepth;

    private void Emit(string text)
    {
        if ((long)Out.Length + text.Length > JinjaLimits.MaxOutputChars)
            throw new TemplateRuntimeError($"the template's output would exceed {JinjaLimits.MaxOutputChars:N0} characters");
        Operators.Built(text.Length);
        Out.Append(text);
    }

    // A frame deep in nested expressions or blocks fails with an error before the stack runs out
    // (a stack overflow would end the process).
    private static void EnsureStack()
    {
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new TemplateRuntimeError("the template nests too deeply to render");
    }

    private void CountIteration()
    {
        if (++_iterations > JinjaLimits.MaxLoopIterations)
            throw new TemplateRuntimeError($"the template runs more than {JinjaLimits.MaxLoopIterations:N0} loop iterations");
    }

    private TemplateError Wrap(Exception e, Node at) => e as TemplateError
        ?? new TemplateError(_name, at.Line, at.Column, e.Message, e);

    private Flow Exec(List<Node> body, Scope scope)
    {
        foreach (var node in body)
        {
            var flow = ExecOne(node, scope);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow ExecOne(Node node, Scope scope)
    {
        try
        {
            EnsureStack();
            switch (node)
            {
                case TextStmt t: Emit(t.Text); return Flow.Normal;
                case PrintStmt p:
                    var printed = Eval(p.Value, scope);
                    if (printed is Undefined undefined && _dialect.StrictUndefined) throw new TemplateRuntimeError(undefined.Message());
                    Emit(PyOps.Str(printed));
                    return Flow.Normal;
                case IfStmt i:
                    foreach (var (test, branch) in i.Branches)
                        if (PyOps.Truthy(Eval(test, scope))) return Exec(branch, scope);
                    return i.Else is null ? Flow.Normal : Exec(i.Else, scope);
                case ForStmt f: ExecFor(f, scope); return Flow.Normal;
                case SetStmt s: Assign(s.Target, Eval(s.Value, scope), scope); return Flow.Normal;
                case SetBlockStmt sb:
                    object? captured = Capture(sb.Body, scope);
                    foreach (var f in sb.Filters) captured = ApplyFilter(f, captured, scope);
                    Assign(sb.Target, captured, scope);
                    return Flow.Normal;
                case MacroStmt m: scope.Vars[m.Name] = new Macro(m, scope); return Flow.Normal;
                case CallBlockStmt cb:
                    var callerDef = new MacroStmt("caller", cb.Params, cb.Defaults, cb.Body) { Line = cb.Line, Column = cb.Column };
                    var caller = new Macro(callerDef, scope);
                    Emit(PyOps.Str(EvalCall(cb.Call, scope, caller)));
                    return Flow.Normal;
                case FilterBlockStmt fb:
                    object? text = Capture(fb.Body, scope);
                    foreach (var f in fb.Filters) text = ApplyFilter(f, text, scope);
                    Emit(PyOps.Str(text));
                    return Flow.Normal;
                case WithStmt w:
                    var inner = new Scope(scope);
                    var values = w.Assignments.Select(a => Eval(a.Value, scope)).ToList();
                    for (int k = 0; k < values.Count; k++) Assign(w.Assignments[k].Target, values[k], inner);
                    return Exec(w.Body, inner);
                case GenerationStmt g:
                    // Spans are recorded only for output that lands directly in the result
                    // (not inside a macro, {% set %} block or filter block).
                    bool atRoot = _out.Count == 1;
                    int start = Out.Length;
                    // transformers compiles the tag to a call block: the body gets its own scope.
                    var flow = Exec(g.Body, new Scope(scope));
                    if (atRoot) GenerationSpans.Add((start, Out.Length));
                    return flow;
                case BreakStmt: return Flow.Break;
                case ContinueStmt: return Flow.Continue;
                default: throw new TemplateRuntimeError($"unsupported node {node.GetType().Name}");
            }
        }
        catch (Exception e) when (e is not TemplateError)
        {
            throw Wrap(e, node);
        }
    }

    private string Capture(List<Node> body, Scope scope)
    {
        _out.Push(new StringBuilder());
        try
        {
            Exec(body, scope);
            return _out.Peek().ToString();
        }
        finally { _out.Pop(); }
    }

    private void ExecFor(ForStmt f, Scope scope)
    {
        if (f.Recursive) throw new TemplateRuntimeError("recursive for loops are not supported");
        var iterable = Eval(f.Iter, scope);
        var source = PyOps.Iterate(iterable);
        List<object?> items;
        if (f.Filter is null) items = source;
        else
        {
            items = [];
            foreach (var item in source)
            {
                CountIteration();
                var probe = new Scope(scope);
                Assign(f.Target, item, probe);
                if (PyOps.Truthy(Eval(f.Filter, probe))) items.Add(item);
            }
        }
        if (items.Count == 0)
        {
            if (f.Else is not null) Exec(f.Else, scope);
            return;
        }
        var loop = new LoopInfo(items, 0);
        for (int i = 0; i < items.Count; i++)
        {
            CountIteration();
            var iter = new Scope(scope);
            loop = new LoopInfo(items, i);
            iter.Vars["loop"] = loop;
            Assign(f.Target, items[i], iter);
            int tracked = TrackedIndex(items[i]);
            int before = Out.Length;
            var flow = Exec(f.Body, iter);
            if (tracked >= 0 && _out.Count == 1 && Out.Length > before) TrackedSpans[tracked] = (before, Out.Length);
            if (flow == Flow.Break) break;
        }
    }

    private int TrackedIndex(object? item)
    {
        if (TrackedItems is null || item is null) return -1;
        for (int k = 0; k < TrackedItems.Count; k++) if (ReferenceEquals(TrackedItems[k], item)) return k;
        return -1;
    }

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr n:
                scope.Vars[n.Name] = value;
                break;
            case GetAttrExpr { Target: NameExpr owner } ga:
                var ns = Eval(owner, scope);
                if (ns is not Namespace space) throw new TemplateRuntimeError("cannot assign attribute on non-namespace object");
                space.Attributes[ga.Name] = value;
                break;
            case TupleExpr t:
                var items = PyOps.Iterate(value);
                if (items.Count != t.Items.Count)
                    throw new TemplateRuntimeError(items.Count > t.Items.Count
                        ? $"too many values to unpack (expected {t.Items.Count})"
                        : $"not enough values to unpack (expected {t.Items.Count}, got {items.Count})");
                for (int i = 0; i < items.Count; i++) Assign(t.Items[i], items[i], scope);
                break;
            default:
                throw new TemplateRuntimeError("can't assign to this expression");
        }
    }

    // ---- Expressions ----

    public object? Eval(Expr e, Scope scope)
    {
        try
        {
            EnsureStack();
            return EvalCore(e, scope);
        }
        catch (Exception ex) when (ex is not TemplateError)
        {
            throw Wrap(ex, e);
        }
    }

    private object? EvalCore(Expr e, Scope scope)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n: return scope.TryGet(n.Name, out var v) ? v : new Undefined(n.Name);
            case ListExpr l: return l.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr t: return new PyTuple([.. t.Items.Select(x => Eval(x, scope))]);
            case DictExpr d:
                var dict = new PyDict();
                foreach (var (k, val) in d.Items) dict[Eval(k, scope) ?? throw new TemplateRuntimeError("None keys are not supported")] = Eval(val, scope);
                return dict;
            case GetAttrExpr ga: return Builtins.GetAttr(Eval(ga.Target, scope), ga.Name);
            case GetItemExpr gi:
                var target = Eval(gi.Target, scope);
                if (gi.Key is SliceExpr s)
                {
                    if (target is Undefined u) throw new TemplateRuntimeError(u.Message());
                    return Builtins.Slice(target, EvalOpt(s.Start, scope), EvalOpt(s.Stop, scope), EvalOpt(s.Step, scope));
                }
                return Builtins.GetItem(target, Eval(gi.Key, scope));
            case CallExpr call: return EvalCall(call, scope, null);
            case FilterExpr f: return ApplyFilter(f, Eval(f.Target!, scope), scope);
            case TestExpr t:
                var (targs, tkw) = EvalArgs(t.Args, t.Kwargs, scope);
                bool result = Tests.Apply(this, t.Name, Eval(t.Target, scope), targs, tkw);
                return t.Negated ? !result : result;
            case UnaryExpr u:
                if (u.Op == "not") return !PyOps.Truthy(Eval(u.Operand, scope));
                return Operators.Unary(u.Op, Eval(u.Operand, scope));
            case BinaryExpr b:
                if (b.Op == "and") { var l = Eval(b.Left, scope); return PyOps.Truthy(l) ? Eval(b.Right, scope) : l; }
                if (b.Op == "or") { var l = Eval(b.Left, scope); return PyOps.Truthy(l) ? l : Eval(b.Right, scope); }
                return Operators.Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
            case CompareExpr c:
                var left = Eval(c.First, scope);
                foreach (var (op, rightExpr) in c.Rest)
                {
                    var right = Eval(rightExpr, scope);
                    if (!Operators.Compare(op, left, right)) return false;
                    left = right;
                }
                return true;
            case CondExpr ce:
                if (PyOps.Truthy(Eval(ce.Test, scope))) return Eval(ce.Then, scope);
                return ce.Else is null ? new Undefined("the inline if-expression evaluated to false and no else section was defined") : Eval(ce.Else, scope);
            case SliceExpr:
                throw new TemplateRuntimeError("slice outside of a subscript");
            default:
                throw new TemplateRuntimeError($"unsupported expression {e.GetType().Name}");
        }
    }

    private object? EvalOpt(Expr? e, Scope scope) => e is null ? null : Eval(e, scope);

    private (List<object?>, PyDict) EvalArgs(List<Expr> args, List<(string Name, Expr Value)> kwargs, Scope scope)
    {
        var a = new List<object?>(args.Count);
        foreach (var x in args) a.Add(Eval(x, scope));
        var kw = new PyDict();
        foreach (var (k, x) in kwargs) kw[k] = Eval(x, scope);
        return (a, kw);
    }

    private object? ApplyFilter(FilterExpr f, object? value, Scope scope)
    {
        var (args, kwargs) = EvalArgs(f.Args, f.Kwargs, scope);
        if (_dialect.Filters.TryGetValue(f.Name, out var extra)) return extra(value, args, kwargs);
        return Filters.Apply(this, f.Name, value, args, kwargs);
    }

    private object? EvalCall(CallExpr call, Scope scope, Macro? caller)
    {
        var callee = Eval(call.Callee, scope);
        var (args, kwargs) = EvalArgs(call.Args, call.Kwargs, scope);
        return Invoke(callee, args, kwargs, caller);
    }

    /// <summary>Calls a built-in, bound method or macro.</summary>
    public object? Invoke(object? callee, List<object?> args, PyDict kwargs, Macro? caller = null)
    {
        switch (callee)
        {
            case Callable c: return c.Body(this, args, kwargs);
            case Macro m: return CallMacro(m, args, kwargs, caller);
            case Undefined u: throw new TemplateRuntimeError(u.Message());
            default: throw new TemplateRuntimeError($"'{PyOps.TypeName(callee)}' object is not callable");
        }
    }

    private string CallMacro(Macro m, List<object?> args, PyDict kwargs, Macro? caller)
    {
        if (_macroDepth >= JinjaLimits.MaxDepth)
            throw new TemplateRuntimeError($"macro '{m.Def.Name}' calls nest more than {JinjaLimits.MaxDepth} deep (unbounded recursion?)");
        _macroDepth++;
        try { return CallMacroCore(m, args, kwargs, caller); }
        finally { _macroDepth--; }
    }

    private string CallMacroCore(Macro m, List<object?> args, PyDict kwargs, Macro? caller)
    {
        var scope = new Scope(m.Closure);
        var def = m.Def;
        var extra = new List<object?>();
        var kw = new PyDict();
        foreach (var (k, v) in kwargs) kw[k] = v;
        for (int i = 0; i < def.Params.Count; i++)
        {
            string p = def.Params[i];
            if (i < args.Count) scope.Vars[p] = args[i];
            else if (kw.Remove(p, out var kv)) scope.Vars[p] = kv;
            else if (def.Defaults[i] is { } d) scope.Vars[p] = Eval(d, scope);
            else scope.Vars[p] = new Undefined($"parameter '{p}' was not provided");
        }
        for (int i = def.Params.Count; i < args.Count; i++) extra.Add(args[i]);
        scope.Vars["varargs"] = new PyTuple([.. extra]);
        scope.Vars["kwargs"] = kw;
        if (caller is not null) scope.Vars["caller"] = caller;
        _out.Push(new StringBuilder());
        try
        {
            Exec(def.Body, scope);
            return _out.Peek().ToString();
        }
        finally { _out.Pop(); }
    }
}
