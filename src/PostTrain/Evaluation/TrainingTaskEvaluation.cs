using PostTrain.Models;
using PostTrain.Tokenization;

namespace PostTrain.Evaluation;

/// <summary>
/// lm-eval tasks scored on a model while it trains (--eval-tasks): the tasks and their
/// documents are read once, before training, so a bad task fails before the first step; each
/// call evaluates the model as it is (adapters included) and returns the metrics as
/// eval/TASK/METRIC,FILTER.
/// </summary>
public sealed class TrainingTaskEvaluation
{
    readonly IReadOnlyList<EvalTask> tasks;
    readonly HfTokenizer tokenizer;
    readonly Func<ChatTemplate>? template;
    readonly int batchSize;
    readonly long seed;
    readonly bool applyChatTemplate;
    readonly IReadOnlyDictionary<string, object?>? templateVariables;

    /// <param name="spec">Comma-separated NAME_OR_YAML[=DATA] items.</param>
    /// <param name="modelDir">The model directory whose tokenizer (and chat template) the tasks use.</param>
    /// <param name="applyChatTemplate">Render prompts with the model's chat template (eval's --apply-chat-template).</param>
    /// <param name="templateVariables">Extra chat-template variables (--chat-template-kwargs).</param>
    public TrainingTaskEvaluation(string spec, double? limit, string modelDir, int batchSize = 16, long seed = 1234, bool applyChatTemplate = false,
        IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        this.applyChatTemplate = applyChatTemplate;
        this.templateVariables = templateVariables;
        var list = new List<EvalTask>();
        foreach (var item in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = item.IndexOf('=');
            var (name, data) = eq > 0 ? (item[..eq], item[(eq + 1)..]) : (item, null);
            var task = EvalTask.Load(name);
            task.LoadDocuments(data, limit);
            if (task.Docs.Count == 0) throw new InputError($"--eval-tasks: {task.Name} has no documents");
            if (list.Any(t => t.Name == task.Name)) throw new InputError($"--eval-tasks: {task.Name} is named twice");
            list.Add(task);
        }
        if (list.Count == 0) throw new InputError("--eval-tasks: no task named");
        if (!File.Exists(Path.Combine(modelDir, "tokenizer.json"))) throw new InputError($"--eval-tasks: {modelDir} has no tokenizer.json");
        tasks = list;
        tokenizer = HfTokenizer.FromDirectory(modelDir);
        ChatTemplate? loaded = null;
        template = () => loaded ??= ChatTemplate.FromModelDirectory(modelDir);
        this.batchSize = batchSize;
        this.seed = seed;
    }

    public IReadOnlyList<EvalTask> Tasks => tasks;

    /// <summary>The options' --eval-tasks, read and checked before any training; null when not given.</summary>
    public static TrainingTaskEvaluation? FromOptions(Training.TrainingOptions options) =>
        options.EvalTasks is null ? null : new(options.EvalTasks, options.EvalTasksLimit, options.Model!,
            applyChatTemplate: options.EvalApplyChatTemplate, templateVariables: options.TemplateVariables());

    /// <summary>Every task on the model; metric keys eval/TASK/METRIC,FILTER.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model)
    {
        var lm = new LocalEvalModel(model, tokenizer, template, batchSize, seed, templateVariables);
        var metrics = new Dictionary<string, double>();
        foreach (var task in tasks)
            foreach (var m in Evaluator.Evaluate(task, lm, new EvalTask.PromptOptions(ApplyChatTemplate: applyChatTemplate, FewshotSeed: seed)).Metrics)
                metrics[$"eval/{task.Name}/{m.Metric},{m.Filter}"] = m.Value;
        return metrics;
    }
}
