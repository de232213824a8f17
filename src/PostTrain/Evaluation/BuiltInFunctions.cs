using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PostTrain.Data;
using PostTrain.Evaluation.IfEval;

namespace PostTrain.Evaluation;

/// <summary>
/// The `!function` hooks of lm-eval's task files that PostTrain implements, keyed by task and
/// function name as the shipped YAMLs spell them: hellaswag's process_docs and ifeval's
/// process_results (with its agg_inst_level_acc aggregation). Other hooks are Python code
/// that cannot run here, and a task naming one is rejected when it is read.
/// </summary>
public static class BuiltInFunctions
{
    public static readonly IReadOnlyDictionary<(string Task, string Function), Func<DataRecord, JsonObject>> ProcessDocs =
        new Dictionary<(string, string), Func<DataRecord, JsonObject>>
        {
            [("hellaswag", "utils.process_docs")] = HellaswagDoc,
        };

    public static readonly IReadOnlySet<(string Task, string Function)> ProcessResultsNames =
        new HashSet<(string, string)> { ("ifeval", "utils.process_results") };

    static readonly string[] IfEvalMetrics = ["prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"];

    public static IReadOnlyList<string> MetricsOf(string task, string function) =>
        (task, function) == ("ifeval", "utils.process_results") ? IfEvalMetrics : [];

    public static string Describe() => "hellaswag: utils.process_docs; ifeval: utils.process_results, utils.agg_inst_level_acc";

    /// <summary>
    /// A metric value of one document: a number, or (IFEval's instruction-level metrics) a list
    /// of 0/1 values that the aggregation flattens over documents.
    /// </summary>
    public static Dictionary<string, JsonNode> ProcessResults(string task, string function, EvalDoc doc, string response)
    {
        if ((task, function) != ("ifeval", "utils.process_results")) throw new InvalidOperationException($"no built-in {function} for {task}");
        var r = IfEvalScorer.Score(doc.Doc, response, doc.Where);
        static JsonNode List(bool[] xs) => new JsonArray(xs.Select(x => (JsonNode)JsonValue.Create(x)).ToArray());
        return new Dictionary<string, JsonNode>
        {
            ["prompt_level_strict_acc"] = JsonValue.Create(r.PromptLevelStrict),
            ["inst_level_strict_acc"] = List(r.InstLevelStrict),
            ["prompt_level_loose_acc"] = JsonValue.Create(r.PromptLevelLoose),
            ["inst_level_loose_acc"] = List(r.InstLevelLoose),
        };
    }

    /// <summary>hellaswag's process_docs: the query from the activity label and context, cleaned endings, the gold label.</summary>
    static JsonObject HellaswagDoc(DataRecord record)
    {
        var doc = (JsonObject)record.Value.DeepClone();
        string Text(string field) => doc[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw record.Error(field, "missing or not text (hellaswag needs activity_label, ctx_a, ctx_b, endings, label)");
        var ctxB = Text("ctx_b");
        var ctx = Text("ctx_a") + " " + (ctxB.Length == 0 ? "" : char.ToUpperInvariant(ctxB[0]) + ctxB[1..].ToLowerInvariant());
        if (doc["endings"] is not JsonArray endings) throw record.Error("endings", "missing or not a list");
        var label = doc["label"] switch
        {
            JsonValue v when v.TryGetValue<long>(out var l) => l,
            JsonValue v when v.TryGetValue<string>(out var s) && long.TryParse(s, out var l) => l,
            _ => throw record.Error("label", "missing or not an integer"),
        };
        doc["query"] = Preprocess(Text("activity_label") + ": " + ctx);
        doc["choices"] = new JsonArray(endings.Select((e, i) => (JsonNode)JsonValue.Create(Preprocess(
            e is JsonValue ev && ev.TryGetValue<string>(out var es) ? es : throw record.Error($"endings[{i}]", "expected text")))).ToArray());
        doc["gold"] = label;
        return doc;
    }

    static string Preprocess(string text)
    {
        text = text.Trim();
        text = text.Replace(" [title]", ". ");
        text = Regex.Replace(text, @"\[.*?\]", "");
        return text.Replace("  ", " ");
    }
}
