using PostTrain.Charts;

namespace PostTrain.Evaluation;

/// <summary>comparison.png: one group of bars per (task, metric, filter), one bar per run.</summary>
public static class ComparisonChart
{
    /// <summary>The baseline is drawn in grey, the other runs in <see cref="Chart.Palette"/>'s colours.</summary>
    public const string BaselineColor = "#9aa3ad";

    public static GroupedBarChart For(EvalComparison comparison)
    {
        var keys = comparison.Comparisons.SelectMany(c => c.Rows).Select(r => (r.Task, r.Key)).Distinct().ToList();
        var runs = comparison.Runs;
        var groups = keys.Select(k => new BarGroup(
            GroupLabel(k.Task, k.Key),
            runs.Select(run => run.Task(k.Task)?.Values.GetValueOrDefault(k.Key)).ToList(),
            runs.Select(run => run.Task(k.Task)?.Stderrs.GetValueOrDefault(k.Key)).ToList())).ToList();
        bool large = groups.SelectMany(g => g.Values).Any(v => v is { } x && Math.Abs(x) >= 100);
        return new GroupedBarChart(
            $"Evaluation: {string.Join(" vs ", runs.Select(r => r.Name))}",
            [$"{runs[0].Name} (baseline)", .. runs.Skip(1).Select(r => r.Name)],
            groups)
        {
            YLabel = "score (error bars: ± stderr from results.json)",
            ValueFormat = large ? "0.0" : "0.000",
            Colors = [BaselineColor, .. Enumerable.Range(0, runs.Count - 1).Select(i => Chart.Palette[i % Chart.Palette.Count])],
        };
    }

    public static byte[] Png(EvalComparison comparison) => Chart.Png(For(comparison));

    static string GroupLabel(string task, MetricKey key) =>
        key.Filter == "none" ? $"{task}\n{key.Metric}" : $"{task}\n{key.Metric}\n{key.Filter}";
}
