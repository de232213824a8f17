using System.Globalization;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Evaluation;

/// <summary>What a task asks of the model, as lm-eval's output_type.</summary>
public enum OutputType { GenerateUntil, MultipleChoice, Loglikelihood }

/// <summary>One document of a task's evaluation split, after the task's process_docs.</summary>
public sealed record EvalDoc(int Id, DataRecord Record, JsonObject Doc)
{
    public string Where => Record.Location;
    public InputError Error(string? field, string message) => Record.Error(field, message);
}

/// <summary>One entry of metric_list: the metric, its aggregation and its keyword arguments.</summary>
public sealed record MetricSpec(string Name, string Aggregation, bool HigherIsBetter, JsonObject Kwargs);

/// <summary>A task's generation_kwargs, normalised as lm-eval's normalize_gen_kwargs does.</summary>
public sealed record GenerationKwargs(IReadOnlyList<string> Until, int MaxGenToks, bool DoSample, double Temperature, double TopP, int TopK, JsonObject Raw)
{
    public static GenerationKwargs From(JsonObject? raw, TaskYaml yaml)
    {
        raw ??= new JsonObject();
        const string field = "generation_kwargs";
        var until = new List<string>();
        switch (raw["until"])
        {
            case null: break;
            case JsonValue v when v.TryGetValue<string>(out var s): until.Add(s); break;
            case JsonArray a:
                foreach (var x in a)
                    until.Add(x is JsonValue xv && xv.TryGetValue<string>(out var xs) ? xs : throw yaml.Error($"{field}.until", "expected strings"));
                break;
            default: throw yaml.Error($"{field}.until", "expected a string or a list of strings");
        }
        int maxGen = 256;
        foreach (var alias in new[] { "max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens" })
            if (raw[alias] is JsonValue m)
            {
                maxGen = m.TryGetValue<long>(out var l) && l > 0 ? (int)l : throw yaml.Error($"{field}.{alias}", "expected a positive integer");
                break;
            }
        double temperature = Number(raw, "temperature", 0.0, yaml);
        bool? doSample = raw["do_sample"] is JsonValue ds ? (ds.TryGetValue<bool>(out var b) ? b : throw yaml.Error($"{field}.do_sample", "expected true or false")) : null;
        bool sample = doSample ?? temperature > 0;
        if (!sample) temperature = 0;
        else if (temperature == 0) temperature = 1.0; // transformers' generate samples at temperature 1 when none is given
        double topP = Number(raw, "top_p", 1.0, yaml);
        int topK = (int)Number(raw, "top_k", 0, yaml);
        var known = new HashSet<string> { "until", "max_gen_toks", "max_new_tokens", "max_tokens", "max_completion_tokens", "temperature", "do_sample", "top_p", "top_k" };
        foreach (var (k, _) in raw)
            if (!known.Contains(k)) throw yaml.Error($"{field}.{k}", "unsupported generation argument (supported: " + string.Join(", ", known) + ")");
        return new GenerationKwargs(until, maxGen, sample, temperature, topP, topK, raw);
    }

    static double Number(JsonObject raw, string key, double fallback, TaskYaml yaml) => raw[key] switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        _ => throw yaml.Error($"generation_kwargs.{key}", "expected a number"),
    };
}

/// <summary>
/// A task read from lm-eval task YAML: its documents, prompts and requests, and how a
/// document's responses become metric values, following lm-eval's ConfigurableTask.
/// </summary>
public sealed class EvalTask
{
    static readonly HashSet<string> KnownFields =
    [
        "task", "task_alias", "tag", "group", "include", "dataset_path", "dataset_name", "dataset_kwargs", "training_split",
        "validation_split", "test_split", "fewshot_split", "process_docs", "doc_to_text", "doc_to_target", "doc_to_choice",
        "process_results", "description", "target_delimiter", "fewshot_delimiter", "fewshot_config", "num_fewshot",
        "output_type", "generation_kwargs", "repeats", "filter_list", "metric_list", "metadata", "should_decontaminate",
        "doc_to_decontamination_query", "unsafe_code",
    ];

    public TaskYaml Yaml { get; }
    public string Name { get; }
    public string Alias { get; }
    public OutputType Output { get; }
    public string TargetDelimiter { get; }
    public string FewshotDelimiter { get; }
    public int NumFewshot { get; }
    public int Repeats { get; }
    public GenerationKwargs? Generation { get; }
    public IReadOnlyList<FilterPipeline> Filters { get; }
    public IReadOnlyList<MetricSpec> Metrics { get; }
    public double? Version { get; }
    /// <summary>The built-in process_results named by the YAML (ifeval's), or null.</summary>
    public string? ProcessResults { get; }

    readonly JsonNode? docToText, docToTarget, docToChoice, description;
    readonly string? processDocs;
    readonly string? fewshotSampler;
    readonly Dictionary<JsonNode, PromptTemplate> templates = [];

    /// <summary>The documents scored (the test split, else the validation split), limited as asked.</summary>
    public IReadOnlyList<EvalDoc> Docs { get; private set; } = [];
    /// <summary>How many documents the split holds before --limit.</summary>
    public int OriginalDocCount { get; private set; }
    /// <summary>The pool few-shot examples are drawn from.</summary>
    public IReadOnlyList<EvalDoc> FewshotDocs { get; private set; } = [];
    bool fewshotFromEvalSplit;

    EvalTask(TaskYaml yaml, int? numFewshotOverride)
    {
        Yaml = yaml;
        var f = yaml.Fields;
        foreach (var (k, _) in f)
            if (!KnownFields.Contains(k)) throw yaml.Error(k, "unknown or unsupported task field");
        Name = String(f, "task") ?? throw yaml.Error(null, "task: missing (the task's name)");
        Alias = String(f, "task_alias") ?? Name;
        Output = String(f, "output_type") switch
        {
            "generate_until" => OutputType.GenerateUntil,
            "multiple_choice" => OutputType.MultipleChoice,
            "loglikelihood" => OutputType.Loglikelihood,
            null => throw yaml.Error("output_type", "missing (generate_until, multiple_choice or loglikelihood)"),
            var other => throw yaml.Error("output_type", $"'{other}' is not supported (generate_until, multiple_choice or loglikelihood)"),
        };
        docToText = f["doc_to_text"] ?? throw yaml.Error("doc_to_text", "missing");
        docToTarget = f["doc_to_target"] ?? throw yaml.Error("doc_to_target", "missing");
        docToChoice = f["doc_to_choice"];
        if (Output == OutputType.MultipleChoice && docToChoice is null) throw yaml.Error("doc_to_choice", "missing: multiple_choice tasks need their choices");
        description = f["description"];
        TargetDelimiter = String(f, "target_delimiter") ?? " ";
        FewshotDelimiter = String(f, "fewshot_delimiter") ?? "\n\n";
        NumFewshot = numFewshotOverride ?? (int)(Integer(f, "num_fewshot") ?? 0);
        if (NumFewshot < 0) throw yaml.Error("num_fewshot", "must not be negative");
        Repeats = (int)(Integer(f, "repeats") ?? 1);
        if (Repeats < 1) throw yaml.Error("repeats", "must be at least 1");
        if (f["dataset_kwargs"] is not null) throw yaml.Error("dataset_kwargs", "is not supported: give the data with dataset_path or --data");
        processDocs = Function(f, "process_docs");
        ProcessResults = Function(f, "process_results");
        if (processDocs is not null && !BuiltInFunctions.ProcessDocs.ContainsKey((Name, processDocs)))
            throw yaml.Error("process_docs", $"!function {processDocs} is not one of the built-in functions ({BuiltInFunctions.Describe()})");
        if (ProcessResults is not null && !BuiltInFunctions.ProcessResultsNames.Contains((Name, ProcessResults)))
            throw yaml.Error("process_results", $"!function {ProcessResults} is not one of the built-in functions ({BuiltInFunctions.Describe()})");

        if (f["fewshot_config"] is JsonObject fc)
        {
            foreach (var (k, _) in fc)
                if (k is not ("sampler" or "split")) throw yaml.Error($"fewshot_config.{k}", "unsupported (sampler and split are read)");
            fewshotSampler = String(fc, "sampler", "fewshot_config.sampler");
            if (fewshotSampler is not (null or "default" or "first_n"))
                throw yaml.Error("fewshot_config.sampler", $"'{fewshotSampler}' is not supported (default or first_n)");
        }
        else if (f["fewshot_config"] is not null) throw yaml.Error("fewshot_config", "expected a mapping");

        if (Output == OutputType.GenerateUntil)
        {
            Generation = GenerationKwargs.From(f["generation_kwargs"] as JsonObject ?? (f["generation_kwargs"] is null ? null : throw yaml.Error("generation_kwargs", "expected a mapping")), yaml);
            var filters = new List<FilterPipeline>();
            if (f["filter_list"] is JsonArray fl)
            {
                for (int i = 0; i < fl.Count; i++)
                {
                    int at = i;
                    if (fl[i] is not JsonObject entry) throw yaml.Error($"filter_list[{i}]", "expected a mapping with name and filter");
                    filters.Add(FilterPipeline.FromConfig(entry, (field, message) => yaml.Error($"filter_list[{at}].{field}", message)));
                }
            }
            else if (f["filter_list"] is not null) throw yaml.Error("filter_list", "expected a list");
            if (filters.Count == 0) filters.Add(FilterPipeline.None);
            Filters = filters;
        }
        else
        {
            if (f["generation_kwargs"] is not null) throw yaml.Error("generation_kwargs", "applies to generate_until tasks only");
            if (f["filter_list"] is not null) throw yaml.Error("filter_list", "applies to generate_until tasks only (log-likelihood responses are not filtered)");
            Filters = [FilterPipeline.None];
        }
        Metrics = ReadMetrics(f);
        Version = f["metadata"] is JsonObject md && md["version"] is JsonValue ver && ver.TryGetValue<double>(out var vv) ? vv : null;
    }

    List<MetricSpec> ReadMetrics(JsonObject f)
    {
        var metrics = new List<MetricSpec>();
        if (f["metric_list"] is JsonArray ml)
        {
            for (int i = 0; i < ml.Count; i++)
            {
                var field = $"metric_list[{i}]";
                if (ml[i] is not JsonObject m) throw Yaml.Error(field, "expected a mapping with metric");
                var name = String(m, "metric", field + ".metric") ?? throw Yaml.Error(field + ".metric", "missing");
                string aggregation = m["aggregation"] switch
                {
                    null => "mean",
                    JsonValue v when v.TryGetValue<string>(out var s) => s,
                    JsonObject o when o[TaskYaml.FunctionKey] is JsonValue fn && fn.TryGetValue<string>(out var fs) => "!function " + fs,
                    _ => throw Yaml.Error(field + ".aggregation", "expected a name"),
                };
                bool higher = m["higher_is_better"] is not JsonValue h || !h.TryGetValue<bool>(out var hb) || hb;
                var kwargs = new JsonObject();
                foreach (var (k, v) in m)
                    if (k is not ("metric" or "aggregation" or "higher_is_better")) kwargs[k] = v?.DeepClone();
                CheckMetric(name, aggregation, kwargs, field);
                metrics.Add(new MetricSpec(name, aggregation, higher, kwargs));
            }
        }
        else if (f["metric_list"] is not null) throw Yaml.Error("metric_list", "expected a list");
        else
        {
            // lm-eval's defaults per output type.
            foreach (var name in Output switch
            {
                OutputType.MultipleChoice => new[] { "acc", "acc_norm" },
                OutputType.GenerateUntil => ["exact_match"],
                _ => ["acc"],
            })
                metrics.Add(new MetricSpec(name, "mean", true, new JsonObject()));
        }
        if (metrics.Count == 0) throw Yaml.Error("metric_list", "names no metric");
        return metrics;
    }

    void CheckMetric(string name, string aggregation, JsonObject kwargs, string field)
    {
        if (ProcessResults is not null)
        {
            if (!BuiltInFunctions.MetricsOf(Name, ProcessResults).Contains(name))
                throw Yaml.Error(field + ".metric", $"'{name}' is not produced by {ProcessResults} ({string.Join(", ", BuiltInFunctions.MetricsOf(Name, ProcessResults))})");
            if (aggregation != "mean" && aggregation != "!function utils.agg_inst_level_acc")
                throw Yaml.Error(field + ".aggregation", $"'{aggregation}' is not supported (mean, or !function utils.agg_inst_level_acc)");
            return;
        }
        if (aggregation != "mean") throw Yaml.Error(field + ".aggregation", $"'{aggregation}' is not supported (mean)");
        var allowed = (Output, name) switch
        {
            (OutputType.MultipleChoice, "acc" or "acc_norm" or "exact_match") => Array.Empty<string>(),
            (OutputType.Loglikelihood, "acc") => [],
            (OutputType.GenerateUntil, "exact_match") => ["ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore"],
            (OutputType.GenerateUntil, "math_equiv") => [],
            _ => null,
        };
        if (allowed is null)
            throw Yaml.Error(field + ".metric", $"'{name}' is not supported for {Yaml.Fields["output_type"]} tasks (multiple_choice: acc, acc_norm, exact_match; generate_until: exact_match, math_equiv; loglikelihood: acc)");
        foreach (var (k, _) in kwargs)
            if (!allowed.Contains(k)) throw Yaml.Error($"{field}.{k}", $"not an argument of {name}");
        if (kwargs["regexes_to_ignore"] is { } r)
        {
            if (r is not JsonArray ra || ra.Any(x => x is not JsonValue xv || !xv.TryGetValue<string>(out _)))
                throw Yaml.Error(field + ".regexes_to_ignore", "expected a list of regular expressions");
            foreach (var x in ra)
            {
                try
                {
                    _ = new PythonRegex(x!.GetValue<string>());
                }
                catch (PythonRegexException e)
                {
                    throw Yaml.Error(field + ".regexes_to_ignore", $"'{x}' does not compile: {e.Message}");
                }
            }
        }
    }

    /// <summary>Reads a task (built-in name or YAML path) with an optional --num-fewshot override.</summary>
    public static EvalTask Load(string nameOrPath, int? numFewshot = null) => new(TaskYaml.Load(nameOrPath), numFewshot);

    // ------------------------------------------------------------------ documents

    /// <summary>
    /// Reads the documents. <paramref name="data"/> (--data) overrides dataset_path: a file is the
    /// evaluation split itself; a directory holds the splits as files or folders named for them
    /// (test.jsonl, validation.parquet, train/, or the Hub's test-00000-of-00001.parquet), also
    /// under a dataset_name folder. <paramref name="limit"/>: the first N documents (a fraction
    /// below 1: that share, rounded up), as lm-eval's --limit.
    /// </summary>
    public void LoadDocuments(string? data, double? limit)
    {
        var f = Yaml.Fields;
        string? testSplit = String(f, "test_split"), validationSplit = String(f, "validation_split"),
            trainingSplit = String(f, "training_split"), fewshotSplit = String(f, "fewshot_split");
        if (f["fewshot_config"] is JsonObject fc && String(fc, "split", "fewshot_config.split") is { } s) fewshotSplit = s;
        string? datasetPath = String(f, "dataset_path"), datasetName = String(f, "dataset_name");

        string? root;
        List<EvalDoc> evalDocs;
        string evalSplit;
        if (data is not null && File.Exists(data))
        {
            root = null;
            evalSplit = testSplit ?? validationSplit ?? "test";
            evalDocs = ReadDocs(DatasetReader.Read(data));
        }
        else
        {
            root = data ?? datasetPath;
            if (root is null || !Directory.Exists(root))
                throw new InputError(data is not null
                    ? $"--data: {data}: no such file or directory"
                    : $"{Name}: dataset_path '{datasetPath}' is not a local directory: give the task's data with --data FILE_OR_DIR (JSONL, JSON or Parquet with the Hub's column names)");
            string? FindSplit(string? split) => split is null ? null : SplitPath(root, datasetName, split);
            if (FindSplit(testSplit) is { } t) { evalSplit = testSplit!; evalDocs = ReadDocs(DatasetReader.Read(t)); }
            else if (FindSplit(validationSplit) is { } v) { evalSplit = validationSplit!; evalDocs = ReadDocs(DatasetReader.Read(v)); }
            else throw new InputError($"{root}: no file or folder for the {Name} task's evaluation split ({string.Join(" or ", new[] { testSplit, validationSplit }.Where(x => x is not null))})");
        }
        OriginalDocCount = evalDocs.Count;
        if (limit is { } l)
        {
            int n = l < 1.0 ? (int)Math.Ceiling(evalDocs.Count * l) : (int)l;
            evalDocs = evalDocs.Take(n).ToList();
        }
        Docs = evalDocs;

        FewshotDocs = [];
        if (NumFewshot == 0) return;
        // lm-eval: fewshot_split when set, else the training split, else validation, else test.
        var poolSplit = fewshotSplit ?? trainingSplit ?? validationSplit ?? testSplit;
        // As lm-eval: the document itself is left out of its examples when fewshot_split equals test_split (both may be unset).
        fewshotFromEvalSplit = fewshotSplit == testSplit;
        if (poolSplit == evalSplit)
        {
            FewshotDocs = ReadDocs(root is null ? DatasetReader.Read(data!) : DatasetReader.Read(SplitPath(root, datasetName, evalSplit)!));
            return;
        }
        string? poolPath = root is null ? null : SplitPath(root, datasetName, poolSplit!);
        if (poolPath is null)
            throw new InputError($"{Name}: {NumFewshot}-shot prompts draw examples from the '{poolSplit}' split, which is not in {(root ?? data)}: give --data DIR with a {poolSplit} file, or --num-fewshot 0");
        FewshotDocs = ReadDocs(DatasetReader.Read(poolPath));
        if (FewshotDocs.Count < NumFewshot)
            throw new InputError($"{poolPath}: {FewshotDocs.Count} documents, fewer than --num-fewshot {NumFewshot}");
    }

    static string? SplitPath(string root, string? datasetName, string split)
    {
        foreach (var dir in datasetName is null ? new[] { root } : [Path.Combine(root, datasetName), root])
        {
            if (!Directory.Exists(dir)) continue;
            if (Directory.Exists(Path.Combine(dir, split))) return Path.Combine(dir, split);
            foreach (var ext in new[] { ".jsonl", ".json", ".parquet" })
                if (File.Exists(Path.Combine(dir, split + ext))) return Path.Combine(dir, split + ext);
            var shards = Directory.EnumerateFiles(dir, split + "-*.parquet").Order(StringComparer.Ordinal).ToList();
            if (shards.Count == 1) return shards[0];
            if (shards.Count > 1)
                throw new InputError($"{dir}: the {split} split has {shards.Count} Parquet shards; put them in a folder named {split}/");
        }
        return null;
    }

    List<EvalDoc> ReadDocs(IEnumerable<DataRecord> records)
    {
        var docs = new List<EvalDoc>();
        foreach (var record in records)
        {
            var doc = processDocs is null ? record.Value : BuiltInFunctions.ProcessDocs[(Name, processDocs)](record);
            docs.Add(new EvalDoc(docs.Count, record, doc));
        }
        return docs;
    }

    // ------------------------------------------------------------------ prompts

    /// <summary>A value resolved as lm-eval's doc_to_* does: an int is itself, a field name is the field, else a Jinja template.</summary>
    JsonNode? Resolve(JsonNode? spec, EvalDoc doc, string field, out bool fromTemplate)
    {
        fromTemplate = false;
        switch (spec)
        {
            case null: return null;
            case JsonValue v when v.TryGetValue<long>(out _): return v.DeepClone();
            case JsonArray a: return a.DeepClone();
            case JsonValue v when v.TryGetValue<string>(out var s):
                if (doc.Doc.ContainsKey(s)) return doc.Doc[s]?.DeepClone() ?? throw doc.Error(s, $"is null ({field} reads it)");
                fromTemplate = true;
                return JsonValue.Create(Render(spec, s, doc, field));
            case JsonObject o when o.ContainsKey(TaskYaml.FunctionKey):
                throw Yaml.Error(field, "!function is not supported here; give a field name or a Jinja template");
            default: throw Yaml.Error(field, "expected a field name, a Jinja template or an integer");
        }
    }

    string Render(JsonNode spec, string source, EvalDoc doc, string field)
    {
        if (!templates.TryGetValue(spec, out var template))
        {
            try
            {
                template = PromptTemplate.Parse(source, $"{Yaml.File}: {field}");
            }
            catch (TemplateError e)
            {
                throw Yaml.Error(field, $"template: {e.Message}");
            }
            templates[spec] = template;
        }
        try
        {
            return template.Render(doc.Doc);
        }
        catch (Exception e) when (e is TemplateError or TemplateRuntimeError)
        {
            throw doc.Error(field, $"{Yaml.File}: template: {e.Message}");
        }
    }

    static bool IsDigits(string s) => s.Length > 0 && s.All(char.IsDigit);

    /// <summary>doc_to_text: the prompt (a string) or, for multiple-input tasks, an index.</summary>
    public string DocToText(EvalDoc doc)
    {
        var value = Resolve(docToText, doc, "doc_to_text", out _);
        if (value is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw doc.Error("doc_to_text", $"expected text, got {value?.ToJsonString() ?? "null"} (multiple-input tasks are not supported)");
    }

    /// <summary>doc_to_target: an integer index, a string, or a list (several acceptable targets).</summary>
    public JsonNode DocToTarget(EvalDoc doc)
    {
        var value = Resolve(docToTarget, doc, "doc_to_target", out bool fromTemplate) ?? throw doc.Error("doc_to_target", "is null");
        if (fromTemplate && value is JsonValue v && v.TryGetValue<string>(out var s))
        {
            if (IsDigits(s) && docToChoice is not null) return JsonValue.Create(long.Parse(s, CultureInfo.InvariantCulture));
            if (s.Length >= 2 && s[0] == '[' && s[^1] == ']' && PyLiteral.TryParse(s, out var list) && list is not null) return list;
        }
        return value;
    }

    /// <summary>doc_to_choice: the list of choices (strings).</summary>
    public IReadOnlyList<string> DocToChoice(EvalDoc doc)
    {
        JsonNode? value;
        if (docToChoice is JsonObject dict && !dict.ContainsKey(TaskYaml.FunctionKey))
            value = new JsonArray(dict.Select(kv => kv.Value?.DeepClone()).ToArray());
        else
        {
            value = Resolve(docToChoice, doc, "doc_to_choice", out bool fromTemplate);
            if (fromTemplate)
            {
                var text = value!.GetValue<string>();
                if (!PyLiteral.TryParse(text, out value))
                    throw doc.Error("doc_to_choice", $"renders as {Truncate(text)}, which is not a Python list literal");
            }
        }
        if (value is not JsonArray a || a.Count == 0)
            throw doc.Error("doc_to_choice", $"expected a non-empty list of choices, got {Truncate(value?.ToJsonString() ?? "null")}");
        var choices = new List<string>();
        foreach (var c in a)
            choices.Add(c switch
            {
                JsonValue cv when cv.TryGetValue<string>(out var cs) => cs,
                JsonValue cv => PyStr(cv),
                _ => throw doc.Error("doc_to_choice", $"choice {c?.ToJsonString() ?? "null"} is not text"),
            });
        return choices;
    }

    static string Truncate(string s) => s.Length > 80 ? s[..80] + "..." : s;

    /// <summary>Python's str() of a JSON scalar (True, 3, 2.5).</summary>
    public static string PyStr(JsonNode? node) => node switch
    {
        null => "None",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v when v.TryGetValue<bool>(out var b) => b ? "True" : "False",
        JsonValue v when v.TryGetValue<long>(out var l) => l.ToString(CultureInfo.InvariantCulture),
        JsonValue v when v.TryGetValue<double>(out var d) => PyOps.Str(d),
        _ => node.ToJsonString(),
    };

    string? Description(EvalDoc doc)
    {
        if (description is null) return null;
        var value = Resolve(description, doc, "description", out _);
        return value is JsonValue v && v.TryGetValue<string>(out var s) ? s : PyStr(value);
    }

    /// <summary>The answer text of a few-shot example: the choice its target indexes, the first of several targets, or the target.</summary>
    string? AnswerText(EvalDoc doc)
    {
        var target = DocToTarget(doc);
        if (target is JsonValue tv && tv.TryGetValue<string>(out var ts)) return ts.Length == 0 ? null : ts;
        if (target is JsonValue iv && iv.TryGetValue<long>(out var index))
        {
            if (docToChoice is null) return PyStr(target);
            var choices = DocToChoice(doc);
            if (index < 0 || index >= choices.Count) throw doc.Error("doc_to_target", $"answer index {index} is outside the {choices.Count} choices");
            return choices[(int)index];
        }
        if (target is JsonArray list && list.Count > 0) return PyStr(list[0]);
        throw doc.Error("doc_to_target", $"cannot be used as a few-shot answer: {target.ToJsonString()}");
    }

    /// <summary>A chat message with the delimiter it is followed by when rendered as plain text (lm-eval's Message).</summary>
    public sealed record Message(string Role, string Content, string Delimiter = "");

    /// <summary>Settings of how prompts are built (lm-eval's CLI flags).</summary>
    public sealed record PromptOptions(string? SystemInstruction = null, bool ApplyChatTemplate = false, bool FewshotAsMultiturn = false, long FewshotSeed = 1234);

    /// <summary>
    /// The few-shot context of every document, in document order, as lm-eval's fewshot_context
    /// builds it: system instruction and description, then the examples (question, target
    /// delimiter, answer, few-shot delimiter), then the document's question. With a chat
    /// template: messages (the examples collapsed into one user turn unless fewshot as
    /// multiturn) rendered by <paramref name="chatTemplate"/> with the generation prompt.
    /// Random few-shot examples are drawn with one Python-compatible generator per task,
    /// seeded with the fewshot seed, so the examples equal lm-eval's.
    /// </summary>
    public IReadOnlyList<string> Contexts(PromptOptions options, Func<JsonArray, string>? chatTemplate)
    {
        var rnd = new PyRandom(options.FewshotSeed);
        var contexts = new List<string>(Docs.Count);
        foreach (var doc in Docs)
        {
            var messages = new List<Message>();
            var system = MaybeDelimit(options.SystemInstruction, Description(doc), FewshotDelimiter);
            if (system.Length > 0) messages.Add(new Message("system", system));
            foreach (var shot in SampleFewshot(doc, rnd))
            {
                var answer = AnswerText(shot);
                messages.Add(new Message("user", DocToText(shot), answer is null ? "" : TargetDelimiter));
                if (answer is not null) messages.Add(new Message("assistant", answer, FewshotDelimiter));
            }
            messages.Add(new Message("user", DocToText(doc)));
            if (options.ApplyChatTemplate)
            {
                var chat = options.FewshotAsMultiturn ? messages : SingleTurn(messages);
                contexts.Add(chatTemplate!(new JsonArray(chat.Select(m => (JsonNode)new JsonObject { ["role"] = m.Role, ["content"] = m.Content }).ToArray())));
            }
            else contexts.Add(string.Concat(messages.Select(m => m.Content + m.Delimiter)));
        }
        return contexts;
    }

    IReadOnlyList<EvalDoc> SampleFewshot(EvalDoc doc, PyRandom rnd)
    {
        if (NumFewshot == 0) return [];
        bool Same(EvalDoc x) => JsonNode.DeepEquals(x.Doc, doc.Doc);
        if (fewshotSampler == "first_n")
        {
            var pool = fewshotFromEvalSplit ? FewshotDocs.Where(x => !Same(x)).ToList() : FewshotDocs.ToList();
            if (pool.Count < NumFewshot) throw new InputError($"{Name}: {NumFewshot}-shot prompts need {NumFewshot} examples; the few-shot split has {pool.Count}");
            return pool.Take(NumFewshot).ToList();
        }
        if (!fewshotFromEvalSplit) return rnd.Sample(FewshotDocs, NumFewshot);
        if (FewshotDocs.Count < NumFewshot + 1) throw new InputError($"{Name}: {NumFewshot}-shot prompts drawn from the evaluation split need {NumFewshot + 1} documents; it has {FewshotDocs.Count}");
        return rnd.Sample(FewshotDocs, NumFewshot + 1).Where(x => !Same(x)).Take(NumFewshot).ToList();
    }

    /// <summary>lm-eval's multiturn_to_singleturn: the system message kept, every other turn joined into one user message.</summary>
    static List<Message> SingleTurn(List<Message> messages)
    {
        var result = new List<Message>();
        var rest = messages;
        if (messages[0].Role == "system")
        {
            result.Add(messages[0]);
            rest = messages.Skip(1).ToList();
        }
        var joined = string.Concat(rest.Select((m, i) => m.Content + (i == rest.Count - 1 ? "" : m.Delimiter)));
        result.Add(new Message("user", joined));
        return result;
    }

    /// <summary>lm-eval's maybe_delimit: join with the delimiter unless either side already has whitespace at the join.</summary>
    static string MaybeDelimit(string? prefix, string? suffix, string delimiter)
    {
        if (string.IsNullOrEmpty(prefix)) return suffix ?? "";
        if (string.IsNullOrEmpty(suffix)) return prefix;
        return char.IsWhiteSpace(prefix[^1]) || char.IsWhiteSpace(suffix[0]) ? prefix + suffix : prefix + delimiter + suffix;
    }

    // ------------------------------------------------------------------ helpers

    string? String(JsonObject o, string key, string? field = null) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonValue v => PyStr(v),
        _ => throw Yaml.Error(field ?? key, "expected a string"),
    };

    long? Integer(JsonObject o, string key) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<long>(out var l) => l,
        _ => throw Yaml.Error(key, "expected an integer"),
    };

    string? Function(JsonObject o, string key) => o[key] switch
    {
        null => null,
        JsonObject fo when fo[TaskYaml.FunctionKey] is JsonValue v && v.TryGetValue<string>(out var s) => s,
        _ => throw Yaml.Error(key, "expected !function NAME"),
    };
}
