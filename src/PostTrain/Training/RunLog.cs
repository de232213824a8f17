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

    /// <summary>
    /// A resumed run keeps the lines of the steps it does not redo. A kill -9 during a write can
    /// leave the last line torn (no newline, not valid JSON) or a blank line at the end: such a
    /// tail is dropped, as are the lines after the checkpoint's step. A line that is not valid
    /// JSON before the last one is not what a crash leaves: an error naming the file and line.
    /// </summary>
    void TruncateAfter(long step)
    {
        if (!File.Exists(metricsPath)) return;
        var lines = File.ReadAllText(metricsPath).Split('\n');
        // The text after the last newline is a complete line only if it parses (a torn write does not).
        int last = lines.Length - 1;
        while (last >= 0 && string.IsNullOrWhiteSpace(lines[last])) last--;
        var kept = new List<string>();
        for (int i = 0; i <= last; i++)
        {
            var text = lines[i].TrimEnd('\r');
            if (string.IsNullOrWhiteSpace(text)) continue;
            long? lineStep;
            try
            {
                lineStep = JsonNode.Parse(text)?["step"]?.GetValue<long>();
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
            {
                if (i == last) break; // the torn tail of a killed write
                throw new InputError($"{metricsPath}:{i + 1}: not a valid metrics line ({FirstLine(e.Message)}); only the last line may be torn by a crash");
            }
            if (lineStep <= step) kept.Add(text);
        }
        var temp = metricsPath + ".tmp";
        File.WriteAllLines(temp, kept);
        File.Move(temp, metricsPath, overwrite: true);
    }

    static string FirstLine(string s) => s.Split('\n')[0];

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
