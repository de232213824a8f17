using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Rewards;

namespace PostTrain.Evaluation;

/// <summary>One document's record in samples_TASK.jsonl for one filter, as lm-eval logs samples.</summary>
public sealed record SampleRecord(EvalDoc Doc, JsonNode Target, JsonArray Arguments, JsonArray Resps, string Filter,
    JsonArray FilteredResps, IReadOnlyDictionary<string, JsonNode> Metrics);

/// <summary>An aggregated metric: its value and standard error (null where lm-eval reports N/A).</summary>
public sealed record MetricValue(string Metric, string Filter, double Value, double? Stderr, bool HigherIsBetter);

/// <summary>A task's evaluation: aggregated metrics and the per-document samples.</summary>
public sealed record TaskResult(EvalTask Task, IReadOnlyList<MetricValue> Metrics, IReadOnlyList<SampleRecord> Samples, int Truncated)
{
    /// <summary>A metric's value by name and filter ("none" for unfiltered tasks).</summary>
    public double Get(string metric, string filter = "none") =>
        Metrics.First(m => m.Metric == metric && m.Filter == filter).Value;
}

/// <summary>
/// Runs tasks as lm-evaluation-harness's evaluator does: contexts, requests, the model's
/// responses (or responses read from a file), filters, per-document metrics, then the mean and
/// its standard error per metric and filter.
/// </summary>
public static class Evaluator
{
    /// <summary>Evaluates a task on a model.</summary>
    public static TaskResult Evaluate(EvalTask task, IEvalModel model, EvalTask.PromptOptions prompt)
    {
        int truncatedBefore = model.Truncated;
        var contexts = task.Contexts(prompt, model.ApplyChatTemplate);
        var result = task.Output switch
        {
            OutputType.GenerateUntil => ScoreGenerations(task, contexts,
                model.GenerateUntil(contexts.Select(c => new GenerateRequest(c, task.Generation!)).ToList(), task.Repeats)),
            _ => ScoreLoglikelihoods(task, contexts, prompt, requests => model.Loglikelihood(requests)),
        };
        return result with { Truncated = model.Truncated - truncatedBefore };
    }

    /// <summary>
    /// Scores responses generated elsewhere (--responses): lines {"doc_id", "resps"} where resps
    /// is a response string, the list of a document's repeats, or lm-eval's samples shape
    /// [[...]]; for log-likelihood tasks [[logprob, is_greedy], ...] per choice (or lm-eval's
    /// [[[logprob, is_greedy]], ...]).
    /// </summary>
    public static TaskResult ScoreResponses(EvalTask task, string responsesPath, EvalTask.PromptOptions prompt, Func<JsonArray, string>? chatTemplate)
    {
        var byDoc = new Dictionary<long, DataRecord>();
        foreach (var line in DatasetReader.ReadJsonLines(responsesPath))
        {
            if (line.Value["doc_id"] is not JsonValue idv || !idv.TryGetValue<long>(out var id)) throw line.Error("doc_id", "missing or not an integer");
            if (!line.Value.ContainsKey("resps")) throw line.Error("resps", "missing");
            if (!byDoc.TryAdd(id, line)) throw line.Error("doc_id", $"document {id} appears twice");
        }
        DataRecord LineOf(EvalDoc doc) => byDoc.TryGetValue(doc.Id, out var l) ? l
            : throw new InputError($"{responsesPath}: no responses for doc_id {doc.Id} ({doc.Where})");
        var contexts = task.Contexts(prompt, chatTemplate ?? (_ => throw new InputError("--apply-chat-template needs --model (its chat template renders the prompts)")));
        if (task.Output == OutputType.GenerateUntil)
        {
            var resps = task.Docs.Select(doc =>
            {
                var line = LineOf(doc);
                var node = line.Value["resps"];
                if (node is JsonArray { Count: 1 } outer && outer[0] is JsonArray inner) node = inner;
                string Text(JsonNode? x, string field) => x is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw line.Error(field, "expected a response string");
                var list = node is JsonArray a ? a.Select((x, i) => Text(x, $"resps[{i}]")).ToArray() : [Text(node, "resps")];
                if (list.Length != task.Repeats) throw line.Error("resps", $"{list.Length} responses; the task has repeats {task.Repeats}");
                return list;
            }).ToArray();
            return ScoreGenerations(task, contexts, resps);
        }
        return ScoreLoglikelihoods(task, contexts, prompt, requests =>
        {
            // Requests come in document order, one per choice (or one per document).
            var results = new List<LoglikelihoodResult>();
            int r = 0;
            foreach (var doc in task.Docs)
            {
                var line = LineOf(doc);
                int expected = task.Output == OutputType.MultipleChoice ? task.DocToChoice(doc).Count : 1;
                if (line.Value["resps"] is not JsonArray a || a.Count != expected)
                    throw line.Error("resps", $"expected {expected} [logprob, is_greedy] pairs (one per choice)");
                for (int i = 0; i < a.Count; i++, r++)
                {
                    var pair = a[i] is JsonArray { Count: 1 } wrapped && wrapped[0] is JsonArray innerPair ? innerPair : a[i];
                    if (pair is not JsonArray { Count: 2 } p || p[0] is not JsonValue lv || !lv.TryGetValue<double>(out var ll)
                        || p[1] is not JsonValue gv || !gv.TryGetValue<bool>(out var greedy))
                        throw line.Error($"resps[{i}]", "expected [logprob, is_greedy]");
                    results.Add(new LoglikelihoodResult(ll, greedy));
                }
            }
            return results.ToArray();
        });
    }

    static TaskResult ScoreLoglikelihoods(EvalTask task, IReadOnlyList<string> contexts, EvalTask.PromptOptions prompt,
        Func<IReadOnlyList<LoglikelihoodRequest>, LoglikelihoodResult[]> run)
    {
        // With a chat template the continuation follows the generation prompt directly (lm-eval's
        // target delimiter is then empty).
        var delimiter = prompt.ApplyChatTemplate ? "" : task.TargetDelimiter;
        var requests = new List<LoglikelihoodRequest>();
        var perDoc = new List<(int Start, int Count)>();
        var choicesOf = new List<IReadOnlyList<string>>();
        for (int d = 0; d < task.Docs.Count; d++)
        {
            var doc = task.Docs[d];
            int start = requests.Count;
            if (task.Output == OutputType.MultipleChoice)
            {
                var choices = task.DocToChoice(doc);
                choicesOf.Add(choices);
                foreach (var c in choices) requests.Add(new LoglikelihoodRequest(contexts[d], delimiter + c));
            }
            else
            {
                choicesOf.Add([]);
                var target = task.DocToTarget(doc);
                var text = target is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw doc.Error("doc_to_target", "a loglikelihood task's target must be text");
                requests.Add(new LoglikelihoodRequest(contexts[d], text));
            }
            perDoc.Add((start, requests.Count - start));
        }
        var results = run(requests);

        var samples = new List<SampleRecord>();
        for (int d = 0; d < task.Docs.Count; d++)
        {
            var doc = task.Docs[d];
            var (start, count) = perDoc[d];
            var lls = results.Skip(start).Take(count).ToArray();
            var target = task.DocToTarget(doc);
            var metrics = new Dictionary<string, JsonNode>();
            if (task.Output == OutputType.MultipleChoice)
            {
                var choices = choicesOf[d];
                var gold = GoldIndices(doc, target, choices);
                int pred = ArgMax(lls.Select(x => x.LogLikelihood).ToArray());
                int predNorm = ArgMax(lls.Select((x, i) => x.LogLikelihood / PyString.Length(choices[i])).ToArray());
                foreach (var m in task.Metrics)
                    metrics[m.Name] = m.Name switch
                    {
                        "acc" => JsonValue.Create(gold.Contains(pred) ? 1.0 : 0.0),
                        "acc_norm" => JsonValue.Create(gold.Contains(predNorm) ? 1.0 : 0.0),
                        _ => JsonValue.Create(gold.Any(g => lls[g].IsGreedy) ? 1 : 0), // exact_match
                    };
            }
            else
                metrics["acc"] = JsonValue.Create(lls[0].IsGreedy ? 1 : 0);
            var arguments = new JsonArray(requests.Skip(start).Take(count)
                .Select(r => (JsonNode)new JsonArray(JsonValue.Create(r.Context), JsonValue.Create(r.Continuation))).ToArray());
            JsonNode Pair(LoglikelihoodResult x) => new JsonArray(JsonValue.Create(x.LogLikelihood), JsonValue.Create(x.IsGreedy));
            var resps = new JsonArray(lls.Select(x => (JsonNode)new JsonArray(Pair(x))).ToArray());
            var filtered = new JsonArray(lls.Select(Pair).ToArray());
            samples.Add(new SampleRecord(doc, target, arguments, resps, "none", filtered, metrics));
        }
        return new TaskResult(task, Aggregate(task, samples), samples, 0);
    }

    /// <summary>The gold choice indices of a document: one, or several for a list target. Out of range is an error.</summary>
    static int[] GoldIndices(EvalDoc doc, JsonNode target, IReadOnlyList<string> choices)
    {
        int One(JsonNode? t)
        {
            if (t is JsonValue v && v.TryGetValue<long>(out var i))
                return i >= 0 && i < choices.Count ? (int)i : throw doc.Error("doc_to_target", $"answer index {i} is outside the {choices.Count} choices");
            if (t is JsonValue sv && sv.TryGetValue<string>(out var s))
            {
                int at = choices.ToList().IndexOf(s);
                return at >= 0 ? at : throw doc.Error("doc_to_target", $"answer {JsonSerializer.Serialize(s)} is not one of the choices");
            }
            throw doc.Error("doc_to_target", $"expected an answer index or choice, got {t?.ToJsonString() ?? "null"}");
        }
        return target is JsonArray list ? list.Select(One).ToArray() : [One(target)];
    }

    static int ArgMax(double[] xs)
    {
        int best = 0;
        for (int i = 1; i < xs.Length; i++) if (xs[i] > xs[best]) best = i;
        return best;
    }

    static TaskResult ScoreGenerations(EvalTask task, IReadOnlyList<string> contexts, string[][] resps)
    {
        var samples = new List<SampleRecord>();
        var docs = task.Docs.Select(d => d.Doc).ToList();
        foreach (var pipeline in task.Filters)
        {
            var filtered = pipeline.Apply(resps, docs);
            for (int d = 0; d < task.Docs.Count; d++)
            {
                var doc = task.Docs[d];
                var target = task.DocToTarget(doc);
                var result = filtered[d] switch
                {
                    JsonValue v when v.TryGetValue<string>(out var s) => s,
                    JsonArray { Count: 1 } a when a[0] is JsonValue v && v.TryGetValue<string>(out var s) && task.Repeats == 1 => s,
                    var other => throw new InputError($"{task.Yaml.File}: filter '{pipeline.Name}' leaves {other.ToJsonString()} for a document; end its filter with take_first or majority_vote"),
                };
                var metrics = new Dictionary<string, JsonNode>();
                if (task.ProcessResults is { } fn)
                {
                    var values = BuiltInFunctions.ProcessResults(task.Name, fn, doc, result);
                    foreach (var m in task.Metrics) metrics[m.Name] = values[m.Name];
                }
                else
                    foreach (var m in task.Metrics) metrics[m.Name] = JsonValue.Create(GenerationMetric(task, doc, m, target, result));
                var arguments = new JsonArray(new JsonArray(JsonValue.Create(contexts[d]), task.Generation!.Raw.DeepClone()));
                var respsNode = new JsonArray(new JsonArray(resps[d].Select(r => (JsonNode)JsonValue.Create(r)).ToArray()));
                samples.Add(new SampleRecord(doc, target, arguments, respsNode, pipeline.Name, new JsonArray(filtered[d].DeepClone()), metrics));
            }
        }
        return new TaskResult(task, Aggregate(task, samples), samples, 0);
    }

    /// <summary>A generate_until metric of one document, as lm-eval's process_results computes it.</summary>
    static double GenerationMetric(EvalTask task, EvalDoc doc, MetricSpec metric, JsonNode target, string result)
    {
        List<string> golds;
        if (task.Yaml.Fields["doc_to_choice"] is not null)
        {
            var choices = task.DocToChoice(doc);
            golds = [choices[GoldIndices(doc, target, choices)[0]]];
        }
        else if (target is JsonArray list) golds = list.Select(EvalTask.PyStr).ToList();
        else golds = [EvalTask.PyStr(target)];

        Func<string, double> score = metric.Name switch
        {
            "math_equiv" => gold =>
            {
                var reference = MathAnswer.ReferenceAnswer(gold);
                var answer = MathAnswer.ExtractFinalAnswer(result);
                return answer is not null && !string.IsNullOrWhiteSpace(reference) && MathAnswer.Equivalent(answer, reference) ? 1.0 : 0.0;
            },
            _ => gold => Metrics.ExactMatch(result, gold,
                ignoreCase: Flag(metric, "ignore_case"), ignorePunctuation: Flag(metric, "ignore_punctuation"),
                ignoreNumbers: Flag(metric, "ignore_numbers"),
                regexesToIgnore: metric.Kwargs["regexes_to_ignore"] is JsonArray r ? r.Select(x => x!.GetValue<string>()).ToList() : null),
        };
        return golds.Any(g => score(g) > 0) ? 1.0 : 0.0;
    }

    static bool Flag(MetricSpec m, string key) => m.Kwargs[key] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    static double AsNumber(JsonNode node) => node switch
    {
        JsonValue v when v.TryGetValue<bool>(out var b) => b ? 1 : 0,
        JsonValue v => v.GetValue<double>(),
        _ => throw new InvalidOperationException("not a number"),
    };

    /// <summary>The mean of each metric per filter and its standard error (lm-eval's mean_stderr; N/A for IFEval's instruction-level aggregation and for one document).</summary>
    static List<MetricValue> Aggregate(EvalTask task, List<SampleRecord> samples)
    {
        var values = new List<MetricValue>();
        foreach (var filter in samples.Select(s => s.Filter).Distinct())
        {
            var rows = samples.Where(s => s.Filter == filter).ToList();
            foreach (var m in task.Metrics)
            {
                if (m.Aggregation == "mean")
                {
                    var xs = rows.Select(r => AsNumber(r.Metrics[m.Name])).ToList();
                    values.Add(new MetricValue(m.Name, filter, xs.Count == 0 ? double.NaN : Metrics.Mean(xs),
                        xs.Count > 1 ? Metrics.MeanStderr(xs) : null, m.HigherIsBetter));
                }
                else
                {
                    // agg_inst_level_acc: every document's instructions flattened, then the mean.
                    var xs = rows.SelectMany(r => ((JsonArray)r.Metrics[m.Name]).Select(x => AsNumber(x!))).ToList();
                    values.Add(new MetricValue(m.Name, filter, xs.Count == 0 ? double.NaN : xs.Average(), null, m.HigherIsBetter));
                }
            }
        }
        return values;
    }

    // ------------------------------------------------------------------ output

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    static readonly JsonSerializerOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>results.json as lm-eval writes it: results, configs, versions, n-shot, higher_is_better, n-samples, config.</summary>
    public static JsonObject ResultsJson(IReadOnlyList<TaskResult> results, JsonObject config)
    {
        var resultsNode = new JsonObject();
        var configs = new JsonObject();
        var versions = new JsonObject();
        var nShot = new JsonObject();
        var higher = new JsonObject();
        var nSamples = new JsonObject();
        var truncated = new JsonObject();
        foreach (var r in results)
        {
            var t = r.Task;
            var entry = new JsonObject { ["alias"] = t.Alias };
            foreach (var m in r.Metrics)
            {
                entry[$"{m.Metric},{m.Filter}"] = Number(m.Value);
                entry[$"{m.Metric}_stderr,{m.Filter}"] = m.Stderr is { } s ? Number(s) : "N/A";
            }
            resultsNode[t.Name] = entry;
            var cfg = (JsonObject)t.Yaml.Fields.DeepClone();
            cfg.Remove("include");
            cfg["num_fewshot"] = t.NumFewshot;
            configs[t.Name] = cfg;
            versions[t.Name] = t.Version is { } v ? Number(v) : "N/A";
            nShot[t.Name] = t.NumFewshot;
            higher[t.Name] = new JsonObject(t.Metrics.Select(m => new KeyValuePair<string, JsonNode?>(m.Name, m.HigherIsBetter)));
            nSamples[t.Name] = new JsonObject { ["original"] = t.OriginalDocCount, ["effective"] = t.Docs.Count };
            truncated[t.Name] = r.Truncated;
        }
        return new JsonObject
        {
            ["results"] = resultsNode,
            ["configs"] = configs,
            ["versions"] = versions,
            ["n-shot"] = nShot,
            ["higher_is_better"] = higher,
            ["n-samples"] = nSamples,
            ["truncated"] = truncated,
            ["config"] = config,
            ["date"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
        };
    }

    static JsonNode Number(double x) => double.IsFinite(x) ? JsonValue.Create(x) : JsonValue.Create(x.ToString(CultureInfo.InvariantCulture));

    /// <summary>One samples_TASK.jsonl line.</summary>
    public static string SampleLine(SampleRecord s)
    {
        var o = new JsonObject
        {
            ["doc_id"] = s.Doc.Id,
            ["doc"] = s.Doc.Doc.DeepClone(),
            ["target"] = s.Target.DeepClone(),
            ["arguments"] = s.Arguments.DeepClone(),
            ["resps"] = s.Resps.DeepClone(),
            ["filtered_resps"] = s.FilteredResps.DeepClone(),
            ["filter"] = s.Filter,
            ["metrics"] = new JsonArray(s.Metrics.Keys.Select(k => (JsonNode)JsonValue.Create(k)).ToArray()),
        };
        foreach (var (k, v) in s.Metrics) o[k] = v.DeepClone();
        return o.ToJsonString(Compact);
    }

    /// <summary>
    /// Writes results.json and samples_TASK.jsonl into <paramref name="dir"/> (created when
    /// missing), each file to a temporary name first and renamed into place, after everything
    /// was computed: an error leaves no partial file.
    /// </summary>
    public static void Write(string dir, IReadOnlyList<TaskResult> results, JsonObject config)
    {
        if (File.Exists(dir)) throw new InputError($"--output: {dir} is a file");
        Directory.CreateDirectory(dir);
        var files = new List<(string Path, string Temp)>();
        try
        {
            void Add(string name, Action<TextWriter> write)
            {
                var path = Path.Combine(dir, name);
                var temp = Path.Combine(dir, $".{name}.tmp-{Guid.NewGuid():N}");
                files.Add((path, temp));
                using var writer = new StreamWriter(temp, false, new UTF8Encoding(false));
                write(writer);
            }
            foreach (var r in results)
                Add($"samples_{r.Task.Name}.jsonl", w => { foreach (var s in r.Samples) w.WriteLine(SampleLine(s)); });
            Add("results.json", w => w.WriteLine(ResultsJson(results, config).ToJsonString(Indented)));
            foreach (var (path, temp) in files) File.Move(temp, path, overwrite: true);
        }
        finally
        {
            foreach (var (_, temp) in files) if (File.Exists(temp)) File.Delete(temp);
        }
    }

    /// <summary>The results table lm-eval prints: task, version, filter, n-shot, metric, value and stderr (markdown).</summary>
    public static string Table(IReadOnlyList<TaskResult> results)
    {
        var rows = new List<string[]> { new[] { "Tasks", "Version", "Filter", "n-shot", "Metric", "", "Value", "", "Stderr" } };
        foreach (var r in results)
        {
            bool first = true;
            foreach (var m in r.Metrics.OrderBy(m => m.Metric, StringComparer.Ordinal).ThenBy(m => m.Filter, StringComparer.Ordinal))
            {
                rows.Add([
                    first ? r.Task.Alias : "", first ? (r.Task.Version is { } v ? PyOpsStr(v) : "N/A") : "", m.Filter,
                    first ? r.Task.NumFewshot.ToString(CultureInfo.InvariantCulture) : "", m.Metric, m.HigherIsBetter ? "↑" : "↓",
                    m.Value.ToString("F4", CultureInfo.InvariantCulture), m.Stderr is null ? "" : "±",
                    m.Stderr is { } s ? s.ToString("F4", CultureInfo.InvariantCulture) : "N/A",
                ]);
                first = false;
            }
        }
        var widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(r => r[c].Length)).ToArray();
        var sb = new StringBuilder();
        string Line(string[] cells) => "|" + string.Join("|", cells.Select((c, i) => i is 6 or 8 ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))) + "|";
        sb.AppendLine(Line(rows[0]));
        sb.AppendLine("|" + string.Join("|", widths.Select((w, i) => i is 6 or 8 ? new string('-', Math.Max(w - 1, 0)) + ":" : new string('-', Math.Max(w, 1)))) + "|");
        foreach (var r in rows.Skip(1)) sb.AppendLine(Line(r));
        return sb.ToString();
    }

    static string PyOpsStr(double v) => Tokenization.Jinja.PyOps.Str(v);
}
