namespace PostTrain.Tokenization.Jinja;

/// <summary>A node of the template's syntax tree, with its 1-based line and column.</summary>
public abstract record Node
{
    public int Line { get; init; }
    public int Column { get; init; }
}

// ---- Statements ----
public sealed record TextStmt(string Text) : Node;
public sealed record PrintStmt(Expr Value) : Node;
public sealed record IfStmt(List<(Expr Test, List<Node> Body)> Branches, List<Node>? Else) : Node;
public sealed record ForStmt(Expr Target, Expr Iter, Expr? Filter, List<Node> Body, List<Node>? Else, bool Recursive) : Node;
public sealed record SetStmt(Expr Target, Expr Value) : Node;
public sealed record SetBlockStmt(Expr Target, List<FilterExpr> Filters, List<Node> Body) : Node;
public sealed record MacroStmt(string Name, List<string> Params, List<Expr?> Defaults, List<Node> Body) : Node;
public sealed record CallBlockStmt(CallExpr Call, List<string> Params, List<Expr?> Defaults, List<Node> Body) : Node;
public sealed record FilterBlockStmt(List<FilterExpr> Filters, List<Node> Body) : Node;
public sealed record WithStmt(List<(Expr Target, Expr Value)> Assignments, List<Node> Body) : Node;
public sealed record GenerationStmt(List<Node> Body) : Node;
public sealed record BreakStmt : Node;
public sealed record ContinueStmt : Node;

// ---- Expressions ----
public abstract record Expr : Node;
public sealed record ConstExpr(object? Value) : Expr;
public sealed record NameExpr(string Name) : Expr;
public sealed record ListExpr(List<Expr> Items) : Expr;
public sealed record TupleExpr(List<Expr> Items) : Expr;
public sealed record DictExpr(List<(Expr Key, Expr Value)> Items) : Expr;
public sealed record GetAttrExpr(Expr Target, string Name) : Expr;
public sealed record GetItemExpr(Expr Target, Expr Key) : Expr;
public sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step) : Expr;
public sealed record CallExpr(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
public sealed record FilterExpr(Expr? Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr;
public sealed record TestExpr(Expr Target, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, bool Negated) : Expr;
public sealed record UnaryExpr(string Op, Expr Operand) : Expr;
public sealed record BinaryExpr(string Op, Expr Left, Expr Right) : Expr;
public sealed record CompareExpr(Expr First, List<(string Op, Expr Right)> Rest) : Expr;
public sealed record CondExpr(Expr Test, Expr Then, Expr? Else) : Expr;
