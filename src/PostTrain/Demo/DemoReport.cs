using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Charts;
using SkiaSharp;

namespace PostTrain.Demo;

/// <summary>One stage of the demo: its name, run directory, evaluation directory and the commands it ran.</summary>
public sealed record DemoStage(string Name, string? RunDir, string EvalDir, IReadOnlyList<string> Commands);

/// <summary>
/// The demo's report: one table of the evaluation after every stage (rows: task, metric, filter;
/// columns: stages; value ± standard error), a few answers per stage, the commands, and a PNG
/// with the training curves and the evaluation bars.
/// </summary>
public static class DemoReport
{
    /// <summary>The rows the table shows: (task, metric, filter, what it measures).</summary>
    public static readonly (string Task, string Metric, string Filter, string Label)[] Rows =
    [
        ("arithmetic", "exact_match", "strict-match", "arithmetic, strict (#### N)"),
        ("arithmetic", "exact_match", "flexible-extract", "arithmetic, flexible (last number)"),
        ("arithmetic_practised", "exact_match", "strict-match", "arithmetic GRPO practised, strict"),
        ("identity_orca", "exact_match", "name", "identity: says Orca"),
        ("identity_qwen", "exact_match", "name", "identity: says Qwen"),
        ("capitals", "acc", "none", "capitals, multiple choice (acc)"),
        ("capitals", "acc_norm", "none", "capitals, multiple choice (acc_norm)"),
    ];

    static JsonObject ReadResults(string evalDir) => JsonNode.Parse(File.ReadAllText(Path.Combine(evalDir, "results.json")))!.AsObject();

    /// <summary>A metric's value and standard error after a stage (null when the stage did not report it).</summary>
    public static (double Value, double? Stderr)? Value(string evalDir, string task, string metric, string filter)
    {
        var r = ReadResults(evalDir)["results"]?[task];
        if (r?[$"{metric},{filter}"] is not JsonValue v) return null;
        double? se = r[$"{metric}_stderr,{filter}"] is JsonValue sv && sv.TryGetValue<double>(out var s) ? s : null;
        return (v.GetValue<double>(), se);
    }

    /// <summary>The table as markdown.</summary>
    public static string Table(IReadOnlyList<DemoStage> stages)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| task | " + string.Join(" | ", stages.Select(s => s.Name)) + " |");
        sb.AppendLine("| --- |" + string.Concat(stages.Select(_ => " ---: |")));
        foreach (var (task, metric, filter, label) in Rows)
        {
            sb.Append("| ").Append(label).Append(" |");
            foreach (var s in stages)
            {
                var v = Value(s.EvalDir, task, metric, filter);
                sb.Append(' ').Append(v is { } x ? Format(x.Value) + (x.Stderr is { } e ? " ± " + Format(e) : "") : "-").Append(" |");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    static string Format(double x) => x.ToString("0.000", CultureInfo.InvariantCulture);

    /// <summary>
    /// How each stage worked the held-out addition problems (task "arithmetic", strict filter; its documents carry
    /// their operands "a" and "b"): how many answers went column by column and how many in one line, how many of
    /// each were right, and how many right totals stand under steps that are all right or under a wrong one.
    /// Accuracy alone hides both the change of method and a right total reached through a wrong step.
    /// </summary>
    public static string WorkedTable(IReadOnlyList<DemoStage> stages)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| stage | column by column (right) | in one line (right) | other | right, every step right | right, a step wrong or missing |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var stage in stages)
        {
            int column = 0, columnRight = 0, oneLine = 0, oneLineRight = 0, other = 0, stepsRight = 0, stepWrong = 0;
            foreach (var sample in Samples(stage.EvalDir, "arithmetic", "strict-match"))
            {
                var doc = sample["doc"]!;
                var (style, steps) = DemoData.Worked(sample["resps"]![0]![0]!.GetValue<string>(), doc["a"]!.GetValue<int>(), doc["b"]!.GetValue<int>());
                bool right = sample["exact_match"]!.GetValue<double>() == 1;
                switch (style)
                {
                    case AnswerStyle.Column: column++; columnRight += right ? 1 : 0; break;
                    case AnswerStyle.OneLine: oneLine++; oneLineRight += right ? 1 : 0; break;
                    default: other++; break;
                }
                if (right && steps) stepsRight++;
                else if (right) stepWrong++;
            }
            sb.AppendLine($"| {stage.Name} | {column} ({columnRight}) | {oneLine} ({oneLineRight}) | {other} | {stepsRight} | {stepWrong} |");
        }
        return sb.ToString();
    }

    /// <summary>The first few answers of a task after a stage: (question, response).</summary>
    public static List<(string Question, string Response)> Answers(string evalDir, string task, string filter, int count) =>
        Samples(evalDir, task, filter).Take(count)
            .Select(s => (s["doc"]!["question"]!.GetValue<string>(), s["resps"]![0]![0]!.GetValue<string>()))
            .ToList();

    /// <summary>A task's per-document samples after a stage (lm-eval's samples_TASK.jsonl), those of one filter.</summary>
    static IEnumerable<JsonObject> Samples(string evalDir, string task, string filter) =>
        File.ReadLines(Path.Combine(evalDir, $"samples_{task}.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(s => s["filter"]?.GetValue<string>() == filter);

    /// <summary>A training metric's values by step from a run's metrics.jsonl.</summary>
    public static (List<double> Steps, List<double> Values) Curve(string runDir, string key)
    {
        var steps = new List<double>();
        var values = new List<double>();
        var path = Path.Combine(runDir, "metrics.jsonl");
        if (!File.Exists(path)) return (steps, values);
        foreach (var line in File.ReadLines(path))
        {
            var m = JsonNode.Parse(line)!.AsObject();
            if (m[key] is JsonValue v && v.TryGetValue<double>(out var x) && double.IsFinite(x))
            {
                steps.Add(m["step"]!.GetValue<double>());
                values.Add(x);
            }
        }
        return (steps, values);
    }

    /// <summary>The mean of one reward over the completions a run logged for each step (OUTPUT/completions.jsonl).</summary>
    public static (List<double> Steps, List<double> Values) CompletionsCurve(string runDir, string reward)
    {
        var path = Path.Combine(runDir, "completions.jsonl");
        if (!File.Exists(path)) return ([], []);
        var byStep = new SortedDictionary<double, (double Sum, int Count)>();
        foreach (var line in File.ReadLines(path))
        {
            var c = JsonNode.Parse(line)!.AsObject();
            if (c["rewards"]?[reward] is not JsonValue v || !v.TryGetValue<double>(out var x)) continue;
            var step = c["step"]!.GetValue<double>();
            var (sum, count) = byStep.GetValueOrDefault(step);
            byStep[step] = (sum + x, count + 1);
        }
        return (byStep.Keys.ToList(), byStep.Values.Select(v => v.Sum / v.Count).ToList());
    }

    /// <summary>report.png: the training curves of the stages that trained, then the evaluation bars per stage, stacked.</summary>
    public static byte[] Png(IReadOnlyList<DemoStage> stages, string pretrainDir, string sftDir, string dpoDir, string grpoDir, string ppoDir)
    {
        var charts = new List<byte[]>();
        LineSeries Series(string name, string dir, string key)
        {
            var (x, y) = Curve(dir, key);
            return new LineSeries(name, x, y);
        }
        LineSeries MathSeries()
        {
            var (x, y) = CompletionsCurve(ppoDir, "math");
            return new LineSeries("share right (math reward, weight 0)", x, y);
        }
        charts.Add(Chart.Png(new LineChart("Pre-training and SFT: training loss",
            [Series("pre-training loss", pretrainDir, "loss"), Series("SFT loss", sftDir, "loss")]) { XLabel = "step", YLabel = "loss", Width = 900, Height = 360 }));
        charts.Add(Chart.Png(new LineChart("DPO: reward margin and accuracy (chosen over rejected)",
            [Series("rewards/margins", dpoDir, "rewards/margins"), Series("rewards/accuracies", dpoDir, "rewards/accuracies")]) { XLabel = "step", Width = 900, Height = 360 }));
        charts.Add(Chart.Png(new LineChart("GRPO: mean reward of the sampled completions",
            [Series("reward", grpoDir, "reward"), Series("rewards/math/mean", grpoDir, "rewards/math/mean")]) { XLabel = "step", Width = 900, Height = 360 }));
        charts.Add(Chart.Png(new LineChart("PPO: mean reward-model score of the sampled completions",
            [Series("objective/scores", ppoDir, "objective/scores"), Series("objective/rlhf_reward", ppoDir, "objective/rlhf_reward"), MathSeries()]) { XLabel = "step", Width = 900, Height = 360 }));
        var groups = Rows.Select(r => new BarGroup(r.Label.Replace(", ", "\n"),
            stages.Select(s => Value(s.EvalDir, r.Task, r.Metric, r.Filter)?.Value).ToList(),
            stages.Select(s => Value(s.EvalDir, r.Task, r.Metric, r.Filter)?.Stderr).ToList())).ToList();
        charts.Add(Chart.Png(new GroupedBarChart("Held-out evaluation after each stage", stages.Select(s => s.Name).ToList(), groups)
        { YLabel = "score (error bars: ± stderr)", Width = 1100, Height = 520 }));
        return Stack(charts);
    }

    /// <summary>PNG images one above the other on a white background.</summary>
    public static byte[] Stack(IReadOnlyList<byte[]> pngs)
    {
        var bitmaps = pngs.Select(SKBitmap.Decode).ToList();
        try
        {
            int width = bitmaps.Max(b => b.Width), height = bitmaps.Sum(b => b.Height);
            using var surface = SKSurface.Create(new SKImageInfo(width, height));
            var canvas = surface.Canvas;
            canvas.Clear(SKColors.White);
            int y = 0;
            foreach (var b in bitmaps)
            {
                canvas.DrawBitmap(b, (width - b.Width) / 2f, y);
                y += b.Height;
            }
            using var image = surface.Snapshot();
            using var data = image.Encode(SKEncodedImageFormat.Png, 100);
            return data.ToArray();
        }
        finally
        {
            foreach (var b in bitmaps) b.Dispose();
        }
    }
}
