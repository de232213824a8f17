using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// Where a run reports: OUTPUT/metrics.jsonl (one JSON object per log), TensorBoard event files
/// in OUTPUT/tensorboard, and the console.
/// </summary>
public sealed class RunLog
{
    public const string MetricsFile = "metrics.jsonl";
    readonly string metricsPath;
    readonly SummaryWriter? tensorboard;
    readonly TextWriter console;

    public RunLog(string outputDir, TextWriter console, bool tensorboard = true, long? keepUpToStep = null)
    {
        Directory.CreateDirectory(outputDir);
        metricsPath = Path.Combine(outputDir, MetricsFile);
        this.console = console;
        if (keepUpToStep is { } step) TruncateAfter(step);
        else if (File.Exists(metricsPath)) File.Delete(metricsPath);
        if (tensorboard)
            this.tensorboard = utils.tensorboard.SummaryWriter(Path.Combine(outputDir, "tensorboard"), createRunName: false);
    }

    /// <summary>A resumed run keeps the lines of the steps it does not redo.</summary>
    void TruncateAfter(long step)
    {
        if (!File.Exists(metricsPath)) return;
        var kept = File.ReadLines(metricsPath)
            .Where(l => JsonNode.Parse(l)?["step"]?.GetValue<long>() <= step).ToList();
        var temp = metricsPath + ".tmp";
        File.WriteAllLines(temp, kept);
        File.Move(temp, metricsPath, overwrite: true);
    }

    /// <summary>Appends one record with "step", "epoch" and the metrics, to every sink.</summary>
    public void Write(long step, double epoch, IReadOnlyDictionary<string, double> metrics)
    {
        var o = new JsonObject { ["step"] = step, ["epoch"] = Math.Round(epoch, 4) };
        foreach (var (k, v) in metrics) o[k] = double.IsFinite(v) ? v : null;
        File.AppendAllText(metricsPath, o.ToJsonString() + "\n");
        if (tensorboard is not null)
            foreach (var (k, v) in metrics)
                if (double.IsFinite(v)) tensorboard.add_scalar(Tag(k), (float)v, (int)step);
    }

    // TensorBoard groups tags by their prefix: train/loss, eval/loss, train/rewards/chosen.
    static string Tag(string metric) =>
        metric.StartsWith("eval_", StringComparison.Ordinal) ? "eval/" + metric[5..] : "train/" + metric;

    public void Line(string text) => console.WriteLine(text);

    public static string Format(double v) =>
        Math.Abs(v) is >= 1e-3 and < 1e5 or 0 ? v.ToString("0.####", CultureInfo.InvariantCulture) : v.ToString("0.###e+0", CultureInfo.InvariantCulture);
}
