using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;

namespace PostTrain.Evaluation;

/// <summary>A metric under one filter, as lm-evaluation-harness keys its results: "METRIC,FILTER".</summary>
public readonly record struct MetricKey(string Metric, string Filter)
{
    public override string ToString() => $"{Metric},{Filter}";
}

/// <summary>
/// One document's value of a metric: the sum and count of its elements. A number x is (x, 1); a
/// list of booleans (IFEval's inst_level_* metrics, one per instruction) is (trues, length).
/// lm-eval aggregates both kinds as sum of sums over sum of counts: the mean of the numbers, or
/// the mean of all documents' lists flattened into one.
/// </summary>
public readonly record struct DocValue(double Sum, int Count, bool IsList);

/// <summary>A metric's per-document values from a samples file, by doc_id.</summary>
public sealed class MetricSamples
{
    public Dictionary<long, DocValue> Values { get; } = [];

    /// <summary>Why these values cannot be compared document by document (a value that is not a number or a list of booleans), with its line; null when they can.</summary>
    public string? Unsupported { get; internal set; }

    public bool IsList => Values.Values.Any(v => v.IsList);
}

/// <summary>A task's samples_TASK.jsonl: every metric's per-document values, per filter.</summary>
public sealed class TaskSamples
{
    public required string File { get; init; }
    public Dictionary<MetricKey, MetricSamples> Metrics { get; } = [];
    /// <summary>Every doc_id in the file, over all filters.</summary>
    public HashSet<long> DocIds { get; } = [];
}

/// <summary>One task of results.json: its metrics' values and standard errors.</summary>
public sealed class RunTask
{
    public required string Name { get; init; }
    /// <summary>The task's metrics in results.json's order.</summary>
    public List<MetricKey> Metrics { get; } = [];
    /// <summary>A metric's value; null where results.json has a string ("N/A") or null.</summary>
    public Dictionary<MetricKey, double?> Values { get; } = [];
    public Dictionary<MetricKey, double?> Stderrs { get; } = [];
    /// <summary>higher_is_better per metric name, where results.json says.</summary>
    public Dictionary<string, bool> HigherIsBetter { get; } = [];
    /// <summary>The task's samples file, or null when the run has none.</summary>
    public TaskSamples? Samples { get; internal set; }
}

/// <summary>
/// A run directory written by `posttrain eval`, in lm-evaluation-harness's layout: results.json
/// (aggregated metrics, "METRIC,FILTER" keys with "METRIC_stderr,FILTER" beside them) and one
/// samples_TASK.jsonl per task (one line per document and filter).
/// </summary>
public sealed class EvalRun
{
    public const string ResultsFile = "results.json";

    public required string Name { get; init; }
    public required string Directory { get; init; }
    /// <summary>The tasks in results.json's order.</summary>
    public required IReadOnlyList<RunTask> Tasks { get; init; }
    /// <summary>results.json's "config" (model, adapter, limit, seed ...), or null.</summary>
    public JsonObject? Config { get; init; }

    public RunTask? Task(string name) => Tasks.FirstOrDefault(t => t.Name == name);

    /// <summary>Reads and checks results.json and every task's samples file.</summary>
    public static EvalRun Load(string directory, string? name = null)
    {
        name ??= directory;
        if (!System.IO.Directory.Exists(directory))
            throw new InputError(File.Exists(directory) ? $"{directory}: not a directory (expected an evaluation run directory)" : $"{directory}: run directory not found");
        var resultsPath = Path.Combine(directory, ResultsFile);
        if (!File.Exists(resultsPath)) throw new InputError($"{resultsPath}: not found (is {directory} a `posttrain eval` run directory?)");

        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(resultsPath));
        }
        catch (JsonException e)
        {
            throw new InputError($"{resultsPath}:{(e.LineNumber ?? 0) + 1}: not valid JSON: {JsonReason(e)}");
        }
        if (root is not JsonObject rootObject) throw new InputError($"{resultsPath}: expected a JSON object");
        if (rootObject["results"] is not JsonObject results) throw InputError.At(resultsPath, null, "results", "missing or not an object");
        var higher = rootObject["higher_is_better"] as JsonObject;

        var tasks = new List<RunTask>();
        foreach (var (taskName, node) in results)
        {
            if (node is not JsonObject entries) throw InputError.At(resultsPath, null, $"results.{taskName}", "expected an object");
            var task = new RunTask { Name = taskName };
            foreach (var (key, value) in entries)
            {
                int comma = key.IndexOf(',');
                if (comma < 0) continue; // "alias", "name", "sample_len" and the like
                var metric = key[..comma];
                var filter = key[(comma + 1)..];
                bool isStderr = metric.EndsWith("_stderr", StringComparison.Ordinal);
                var number = Number(value, resultsPath, $"results.{taskName}.{key}");
                if (isStderr) task.Stderrs[new MetricKey(metric[..^"_stderr".Length], filter)] = number;
                else
                {
                    var mk = new MetricKey(metric, filter);
                    task.Metrics.Add(mk);
                    task.Values[mk] = number;
                }
            }
            if (higher?[taskName] is JsonObject hib)
                foreach (var (metric, flag) in hib)
                    if (flag is JsonValue v && v.TryGetValue<bool>(out var b)) task.HigherIsBetter[metric] = b;
            var samplesPath = Path.Combine(directory, $"samples_{taskName}.jsonl");
            if (File.Exists(samplesPath)) task.Samples = ReadSamples(samplesPath);
            tasks.Add(task);
        }
        return new EvalRun { Name = name, Directory = directory, Tasks = tasks, Config = rootObject["config"] as JsonObject };
    }

    /// <summary>System.Text.Json's reason without its advice and 0-based position ("Change the reader options. LineNumber: 0 | ...").</summary>
    static string JsonReason(JsonException e)
    {
        var message = e.Message.Split('\n')[0];
        foreach (var tail in new[] { " Change the reader options.", " LineNumber:", " Path:" })
            if (message.IndexOf(tail, StringComparison.Ordinal) is >= 0 and var at) message = message[..at];
        return message.TrimEnd();
    }

    /// <summary>A result value: a number, or null for lm-eval's "N/A" (any string) and null.</summary>
    static double? Number(JsonNode? node, string file, string field) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => null,
        _ => throw InputError.At(file, null, field, $"expected a number or \"N/A\", got {node.ToJsonString()}"),
    };

    /// <summary>
    /// Reads samples_TASK.jsonl: each line needs doc_id (an integer), metrics (the names of the
    /// metrics it scored) and a top-level value for each of those; filter defaults to "none".
    /// </summary>
    public static TaskSamples ReadSamples(string path)
    {
        var samples = new TaskSamples { File = path };
        var firstLine = new Dictionary<(long, string), long>();
        foreach (var line in DatasetReader.ReadJsonLines(path))
        {
            var o = line.Value;
            if (o["doc_id"] is not JsonValue idValue || !idValue.TryGetValue<long>(out var docId) || docId < 0)
                throw line.Error("doc_id", o.ContainsKey("doc_id") ? $"expected a non-negative integer, got {o["doc_id"]?.ToJsonString() ?? "null"}" : "missing");
            string filter = "none";
            if (o.TryGetPropertyValue("filter", out var filterNode))
            {
                if (filterNode is not JsonValue fv || !fv.TryGetValue<string>(out var f)) throw line.Error("filter", "expected a string");
                filter = f;
            }
            if (firstLine.TryGetValue((docId, filter), out var earlier))
                throw line.Error("doc_id", $"document {docId} appears twice for filter '{filter}' (first on line {earlier})");
            firstLine[(docId, filter)] = line.Line;
            if (o["metrics"] is not JsonArray metrics)
                throw line.Error("metrics", o.ContainsKey("metrics") ? "expected an array of metric names" : "missing (the names of the metrics this line scores)");
            samples.DocIds.Add(docId);
            foreach (var metricNode in metrics)
            {
                if (metricNode is not JsonValue mv || !mv.TryGetValue<string>(out var metric))
                    throw line.Error("metrics", $"expected metric names (strings), got {metricNode?.ToJsonString() ?? "null"}");
                if (!o.TryGetPropertyValue(metric, out var valueNode))
                    throw line.Error(metric, "missing: \"metrics\" names it, so the line needs its per-document value");
                var key = new MetricKey(metric, filter);
                if (!samples.Metrics.TryGetValue(key, out var values)) samples.Metrics[key] = values = new MetricSamples();
                if (values.Unsupported is not null) continue;
                if (Value(valueNode) is { } value) values.Values[docId] = value;
                else values.Unsupported = $"{line.Location}: {metric} is {Describe(valueNode)}, not a number or a list of booleans";
            }
        }
        return samples;
    }

    /// <summary>A number or boolean is one element; an array of booleans (or numbers) is a list.</summary>
    static DocValue? Value(JsonNode? node)
    {
        if (node is JsonValue v && Scalar(v) is { } x) return new DocValue(x, 1, IsList: false);
        if (node is not JsonArray array) return null;
        double sum = 0;
        foreach (var element in array)
        {
            if (element is not JsonValue e || Scalar(e) is not { } y) return null;
            sum += y;
        }
        return new DocValue(sum, array.Count, IsList: true);
    }

    static double? Scalar(JsonValue v) => v.GetValueKind() switch
    {
        JsonValueKind.Number => v.GetValue<double>(),
        JsonValueKind.True => 1,
        JsonValueKind.False => 0,
        _ => null,
    };

    static string Describe(JsonNode? node)
    {
        var json = node?.ToJsonString() ?? "null";
        return json.Length <= 40 ? json : json[..37] + "...";
    }
}
