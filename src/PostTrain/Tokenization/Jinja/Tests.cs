namespace PostTrain.Tokenization.Jinja;

/// <summary>jinja2's built-in tests: `x is defined`, `x is string`, `n is divisibleby 3`, ...</summary>
public static class Tests
{
    /// <summary>Every built-in test name of jinja2 3.1; others fail when the template is parsed, as in jinja2.</summary>
    public static readonly HashSet<string> JinjaNames =
    [
        "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter", "float", "ge",
        "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lt", "lessthan", "mapping", "ne", "none", "number",
        "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=",
    ];

    public static bool Apply(Interpreter interp, string name, object? v, List<object?> args, PyDict kwargs)
    {
        object? Arg(int i) => i < args.Count ? args[i] : kwargs.Values.Skip(i).FirstOrDefault();
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "string": return v is string;
            case "number": return v is long or double or bool;
            case "integer": return v is long;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "mapping": return v is PyDict;
            case "iterable": return v is string or List<object?> or PyDict or PyTuple or Undefined;
            case "sequence": return v is string or List<object?> or PyDict or PyTuple or Undefined;
            case "callable": return v is Callable or Macro;
            case "odd": return PyOps.ToLong(v) % 2 != 0;
            case "even": return PyOps.ToLong(v) % 2 == 0;
            case "divisibleby": return PyOps.ToLong(v) % PyOps.ToLong(Arg(0)) == 0;
            case "equalto" or "eq" or "==": return PyOps.Eq(v, Arg(0));
            case "ne" or "!=": return !PyOps.Eq(v, Arg(0));
            case "lt" or "lessthan" or "<": return PyOps.Compare(v, Arg(0)) < 0;
            case "le" or "<=": return PyOps.Compare(v, Arg(0)) <= 0;
            case "gt" or "greaterthan" or ">": return PyOps.Compare(v, Arg(0)) > 0;
            case "ge" or ">=": return PyOps.Compare(v, Arg(0)) >= 0;
            case "in": return PyOps.Contains(Arg(0), v);
            case "sameas": return ReferenceEquals(v, Arg(0)) || (v is null or bool && Equals(v, Arg(0)));
            case "lower": return v is string ls && ls == ls.ToLowerInvariant();
            case "upper": return v is string us && us == us.ToUpperInvariant();
            case "escaped": return false;
            default: throw new TemplateRuntimeError(JinjaNames.Contains(name) ? $"the '{name}' test is not supported by this engine" : $"No test named '{name}'.");
        }
    }
}
