using System.Globalization;
using ScottPlot;

namespace PostTrain.Charts;

/// <summary>One group of a grouped bar chart: a bar per series (null: that series has no bar here).</summary>
/// <param name="Label">The group's label under the axis; '\n' breaks it into lines.</param>
/// <param name="Values">One value per series, in the chart's series order.</param>
/// <param name="Errors">Half-lengths of the error bars, one per series (null or non-finite: none).</param>
public sealed record BarGroup(string Label, IReadOnlyList<double?> Values, IReadOnlyList<double?>? Errors = null);

/// <summary>Bars grouped along the x axis: one group per item, one bar per series, a legend of the series.</summary>
public sealed record GroupedBarChart(string Title, IReadOnlyList<string> Series, IReadOnlyList<BarGroup> Groups)
{
    public string? YLabel { get; init; }
    /// <summary>Each bar's value is printed above it (above its error bar) in this format; null: no labels.</summary>
    public string? ValueFormat { get; init; } = "0.000";
    /// <summary>Colors as "#rrggbb", one per series; null: <see cref="Chart.Palette"/>.</summary>
    public IReadOnlyList<string>? Colors { get; init; }
    /// <summary>Pixels; null: wide enough for every bar and its label.</summary>
    public int? Width { get; init; }
    public int Height { get; init; } = 600;
}

/// <summary>A named line: points (X[i], Y[i]); non-finite points are left out.</summary>
public sealed record LineSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>Lines over a shared x axis (training curves: loss against step), with a legend.</summary>
public sealed record LineChart(string Title, IReadOnlyList<LineSeries> Series)
{
    public string? XLabel { get; init; }
    public string? YLabel { get; init; }
    public IReadOnlyList<string>? Colors { get; init; }
    /// <summary>Draw a marker at every point (for a few evaluation points rather than many steps).</summary>
    public bool Markers { get; init; }
    public int Width { get; init; } = 900;
    public int Height { get; init; } = 520;
}

/// <summary>
/// PNG charts for reports: grouped bars with error bars (evaluation scores per run or training
/// stage) and line plots (training curves). Text is drawn with the embedded
/// <see cref="ChartFonts"/>, so the output is the same on any machine.
/// </summary>
public static class Chart
{
    /// <summary>Tableau 10: distinct, and readable for most colour-blind readers.</summary>
    public static IReadOnlyList<string> Palette { get; } =
        ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

    const float TitleSize = 20, LabelSize = 15, TickSize = 13, LegendSize = 14, ValueSize = 12;

    public static byte[] Png(GroupedBarChart chart)
    {
        int seriesCount = chart.Series.Count, groupCount = chart.Groups.Count;
        if (seriesCount == 0) throw new ArgumentException("a grouped bar chart needs at least one series");
        foreach (var g in chart.Groups)
            if (g.Values.Count != seriesCount || g.Errors is { } e && e.Count != seriesCount)
                throw new ArgumentException($"group '{g.Label}': expected {seriesCount} values and errors, one per series");

        using var plot = NewPlot(chart.Title, null, chart.YLabel);
        var colors = ColorsFor(chart.Colors, seriesCount);
        // A group spans 0.8 of one x unit; its bars share that, with a small gap between them.
        double slot = 0.8 / seriesCount;
        double low = 0, high = 0;
        var labels = new List<(double X, double Top, string Text)>();
        var errorXs = new List<double>();
        var errorYs = new List<double>();
        var errors = new List<double>();
        for (int s = 0; s < seriesCount; s++)
        {
            var bars = new List<Bar>();
            for (int g = 0; g < groupCount; g++)
            {
                if (chart.Groups[g].Values[s] is not { } v || !double.IsFinite(v)) continue;
                double err = chart.Groups[g].Errors?[s] is { } e && double.IsFinite(e) ? Math.Abs(e) : 0;
                double x = g + (s - (seriesCount - 1) / 2.0) * slot;
                bars.Add(new Bar { Position = x, Value = v, Size = slot * 0.88, FillColor = colors[s], LineWidth = 0 });
                if (err > 0)
                {
                    errorXs.Add(x);
                    errorYs.Add(v);
                    errors.Add(err);
                }
                // Scores are mostly non-negative: their error bars may be cut at zero rather than pull the axis below it.
                if (v < 0) low = Math.Min(low, v - err);
                high = Math.Max(high, v + err);
                if (chart.ValueFormat is { } format)
                    labels.Add((x, v >= 0 ? v + err : v - err, v.ToString(format, CultureInfo.InvariantCulture)));
            }
            var plottable = plot.Add.Bars(bars);
            plottable.LegendText = chart.Series[s];
            plottable.Color = colors[s];
        }
        if (errors.Count > 0)
        {
            var whiskers = plot.Add.ErrorBar(errorXs, errorYs, errors);
            whiskers.LineWidth = 1.5f;
            whiskers.Color = Color.FromHex("#333333");
            whiskers.CapSize = 6;
        }
        double span = Math.Max(high - low, 1e-9);
        foreach (var (x, top, text) in labels)
        {
            var label = plot.Add.Text(text, x, top);
            label.LabelFontName = ChartFonts.Family;
            label.LabelFontSize = ValueSize;
            label.LabelFontColor = Color.FromHex("#222222");
            bool above = top >= 0;
            label.LabelAlignment = above ? Alignment.LowerCenter : Alignment.UpperCenter;
            label.OffsetY = above ? -3 : 6;
        }

        // Room above (and below) the bars for the value labels; the axis starts at zero.
        double headroom = chart.ValueFormat is null ? 0.05 : 0.12;
        plot.Axes.SetLimitsY(low < 0 ? low - headroom * span : 0, high > 0 ? high + headroom * span : 0);
        plot.Axes.SetLimitsX(-0.55, groupCount - 0.45);
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, groupCount).Select(i => (double)i).ToArray(),
            chart.Groups.Select(g => g.Label).ToArray());
        plot.Axes.Bottom.MajorTickStyle.Length = 0;
        plot.Grid.XAxisStyle.IsVisible = false;
        ShowLegend(plot);

        int lines = chart.Groups.Select(g => g.Label.Split('\n').Length).DefaultIfEmpty(1).Max();
        // Wide enough for each bar's value label and each group's longest label line (about 8 px a character).
        int longest = chart.Groups.SelectMany(g => g.Label.Split('\n')).Select(l => l.Length).DefaultIfEmpty(0).Max();
        int groupWidth = Math.Max(seriesCount * 62 + 44, longest * 8 + 24);
        int width = chart.Width ?? Math.Clamp(170 + groupCount * groupWidth, 640, 4800);
        return plot.GetImageBytes(width, chart.Height + 18 * (lines - 1), ImageFormat.Png);
    }

    public static byte[] Png(LineChart chart)
    {
        if (chart.Series.Count == 0) throw new ArgumentException("a line chart needs at least one series");
        using var plot = NewPlot(chart.Title, chart.XLabel, chart.YLabel);
        var colors = ColorsFor(chart.Colors, chart.Series.Count);
        for (int s = 0; s < chart.Series.Count; s++)
        {
            var series = chart.Series[s];
            if (series.X.Count != series.Y.Count)
                throw new ArgumentException($"series '{series.Name}': {series.X.Count} x values but {series.Y.Count} y values");
            var points = Enumerable.Range(0, series.X.Count)
                .Where(i => double.IsFinite(series.X[i]) && double.IsFinite(series.Y[i])).ToList();
            var line = plot.Add.Scatter(points.Select(i => series.X[i]).ToArray(), points.Select(i => series.Y[i]).ToArray(), colors[s]);
            line.LegendText = series.Name;
            line.LineWidth = 2;
            line.MarkerSize = chart.Markers ? 7 : 0;
        }
        ShowLegend(plot);
        return plot.GetImageBytes(chart.Width, chart.Height, ImageFormat.Png);
    }

    static Plot NewPlot(string title, string? xLabel, string? yLabel)
    {
        ChartFonts.Register();
        var plot = new Plot();
        plot.FigureBackground.Color = Colors.White;
        plot.DataBackground.Color = Colors.White;
        plot.Axes.Title.Label.Text = title;
        plot.Axes.Title.Label.FontSize = TitleSize;
        plot.Axes.Title.Label.Bold = true;
        if (xLabel is not null) plot.Axes.Bottom.Label.Text = xLabel;
        if (yLabel is not null) plot.Axes.Left.Label.Text = yLabel;
        foreach (var axis in plot.Axes.GetAxes())
        {
            axis.Label.FontSize = LabelSize;
            axis.Label.Bold = false;
            axis.TickLabelStyle.FontSize = TickSize;
        }
        plot.Axes.Title.Label.FontName = ChartFonts.Family;
        foreach (var axis in plot.Axes.GetAxes())
        {
            axis.Label.FontName = ChartFonts.Family;
            axis.TickLabelStyle.FontName = ChartFonts.Family;
        }
        plot.Legend.FontName = ChartFonts.Family;
        plot.Legend.FontSize = LegendSize;
        plot.Grid.MajorLineColor = Color.FromHex("#e6e6e6");
        return plot;
    }

    static void ShowLegend(Plot plot)
    {
        plot.Legend.Orientation = Orientation.Horizontal;
        plot.Legend.TightHorizontalWrapping = true; // items as wide as their text, not all as wide as the widest
        plot.Legend.ShadowColor = Colors.Transparent;
        plot.Legend.OutlineColor = Color.FromHex("#cccccc");
        plot.ShowLegend(Edge.Bottom);
    }

    static Color[] ColorsFor(IReadOnlyList<string>? hex, int count)
    {
        if (hex is not null && hex.Count < count) throw new ArgumentException($"{hex.Count} colors for {count} series");
        return Enumerable.Range(0, count).Select(i => Color.FromHex(hex?[i] ?? Palette[i % Palette.Count])).ToArray();
    }
}
