using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PostTrain.Evaluation;

public sealed record ComparisonOptions
{
    public int BootstrapIterations { get; init; } = 10000;
    public int Seed { get; init; } = 1234;
    public double Confidence { get; init; } = 0.95;
}

/// <summary>Document-by-document statistics of one (task, metric, filter) in two runs.</summary>
/// <param name="Documents">Documents both runs scored (paired by doc_id within the filter).</param>
/// <param name="Kind">"binary" (every value 0 or 1), "real" (numbers) or "list" (lists of booleans, one per instruction).</param>
/// <param name="Delta">Other − baseline over the paired documents (flattened means for lists).</param>
/// <param name="Test">"mcnemar_exact" for binary metrics, else "sign_flip_permutation".</param>
/// <param name="BaselineOnly">Binary only: documents right in the baseline and wrong in the other run.</param>
/// <param name="OtherOnly">Binary only: documents right in the other run and wrong in the baseline.</param>
public sealed record PairedResult(int Documents, long BaselineElements, long OtherElements, string Kind,
    double Delta, double CiLow, double CiHigh, string Test, double P, int? BaselineOnly, int? OtherOnly);

/// <summary>One (task, metric, filter) both runs report.</summary>
public sealed record ComparisonRow(string Task, MetricKey Key, bool? HigherIsBetter,
    double? BaselineValue, double? BaselineStderr, double? OtherValue, double? OtherStderr, PairedResult? Paired)
{
    /// <summary>+1 when the interval excludes 0 on the better side, −1 on the worse side, 0 otherwise or when unknown.</summary>
    public int Verdict => Paired is { } p && HigherIsBetter is { } higher && (p.CiLow > 0 || p.CiHigh < 0)
        ? ((p.CiLow > 0) == higher ? 1 : -1) : 0;
}

/// <summary>One run compared with the baseline.</summary>
public sealed record RunComparison(EvalRun Baseline, EvalRun Other, IReadOnlyList<ComparisonRow> Rows, IReadOnlyList<string> Notes);

/// <summary>
/// `posttrain eval-compare`: the first run is the baseline and every other run is compared with
/// it on each (task, metric, filter) both report: the two values from results.json, the paired
/// difference over the documents both scored, a paired bootstrap interval of that difference and
/// a paired test (see <see cref="PairedStatistics"/>).
/// </summary>
public sealed class EvalComparison
{
    public required IReadOnlyList<EvalRun> Runs { get; init; }
    public required ComparisonOptions Options { get; init; }
    public required IReadOnlyList<RunComparison> Comparisons { get; init; }

    public EvalRun Baseline => Runs[0];

    public static EvalComparison Compare(IReadOnlyList<EvalRun> runs, ComparisonOptions options)
    {
        if (runs.Count < 2) throw new ArgumentException("need a baseline and at least one run to compare with it");
        var comparisons = runs.Skip(1).Select(other => CompareTwo(runs[0], other, options)).ToList();
        return new EvalComparison { Runs = runs, Options = options, Comparisons = comparisons };
    }

    static RunComparison CompareTwo(EvalRun a, EvalRun b, ComparisonOptions options)
    {
        var rows = new List<ComparisonRow>();
        var notes = new List<string>();
        foreach (var ta in a.Tasks)
        {
            var tb = b.Task(ta.Name);
            if (tb is null)
            {
                notes.Add($"{ta.Name}: only in `{a.Name}`");
                continue;
            }
            if (ta.Samples is null || tb.Samples is null)
                notes.Add($"{ta.Name}: no samples_{ta.Name}.jsonl in `{(ta.Samples is null ? a.Name : b.Name)}`: values from results.json only, no paired statistics");
            else if (!ta.Samples.DocIds.SetEquals(tb.Samples.DocIds))
            {
                int common = ta.Samples.DocIds.Count(tb.Samples.DocIds.Contains);
                notes.Add($"{ta.Name}: the runs scored different documents (`{a.Name}` {ta.Samples.DocIds.Count}, `{b.Name}` {tb.Samples.DocIds.Count}); " +
                    $"the paired statistics use the {common} both scored, while the values are each run's own results.json");
            }
            foreach (var key in ta.Metrics)
            {
                if (!tb.Values.ContainsKey(key)) continue;
                ta.HigherIsBetter.TryGetValue(key.Metric, out var higherA);
                bool? higher = ta.HigherIsBetter.ContainsKey(key.Metric) ? higherA
                    : tb.HigherIsBetter.TryGetValue(key.Metric, out var higherB) ? higherB : null;
                rows.Add(new ComparisonRow(ta.Name, key, higher, ta.Values[key], ta.Stderrs.GetValueOrDefault(key),
                    tb.Values[key], tb.Stderrs.GetValueOrDefault(key), Pair(a, ta, b, tb, key, options, notes)));
            }
            var onlyA = ta.Metrics.Where(k => !tb.Values.ContainsKey(k)).ToList();
            var onlyB = tb.Metrics.Where(k => !ta.Values.ContainsKey(k)).ToList();
            if (onlyA.Count > 0) notes.Add($"{ta.Name}: {string.Join(", ", onlyA)} only in `{a.Name}`");
            if (onlyB.Count > 0) notes.Add($"{ta.Name}: {string.Join(", ", onlyB)} only in `{b.Name}`");
        }
        foreach (var tb in b.Tasks.Where(t => a.Task(t.Name) is null))
            notes.Add($"{tb.Name}: only in `{b.Name}`");
        return new RunComparison(a, b, rows, notes);
    }

    static PairedResult? Pair(EvalRun a, RunTask ta, EvalRun b, RunTask tb, MetricKey key, ComparisonOptions options, List<string> notes)
    {
        if (ta.Samples is null || tb.Samples is null) return null;
        var what = $"{ta.Name} {key.Metric} ({key.Filter})";
        var sa = ta.Samples.Metrics.GetValueOrDefault(key);
        var sb = tb.Samples.Metrics.GetValueOrDefault(key);
        if (sa is null || sb is null)
        {
            notes.Add($"{what}: no per-document values in {(sa is null ? ta.Samples.File : tb.Samples.File)}; no paired statistics");
            return null;
        }
        if ((sa.Unsupported ?? sb.Unsupported) is { } reason)
        {
            notes.Add($"{what}: {reason}; no paired statistics");
            return null;
        }
        var ids = sa.Values.Keys.Where(sb.Values.ContainsKey).Order().ToArray();
        if (ids.Length == 0)
        {
            notes.Add($"{what}: no document scored in both runs; no paired statistics");
            return null;
        }
        var va = ids.Select(id => sa.Values[id]).ToArray();
        var vb = ids.Select(id => sb.Values[id]).ToArray();
        long ea = va.Sum(v => (long)v.Count), eb = vb.Sum(v => (long)v.Count);
        if (ea == 0 || eb == 0)
        {
            notes.Add($"{what}: the paired documents' lists are all empty; no paired statistics");
            return null;
        }
        bool list = va.Any(v => v.IsList) || vb.Any(v => v.IsList);
        bool binary = !list && va.Concat(vb).All(v => v.Sum is 0 or 1);
        double delta = PairedStatistics.Difference(va, vb);
        var (low, high) = PairedStatistics.BootstrapInterval(va, vb, options.BootstrapIterations, options.Confidence,
            PairedStatistics.SeedFor(options.Seed, ta.Name, key.Metric, key.Filter));
        if (binary)
        {
            int onlyA = 0, onlyB = 0;
            for (int i = 0; i < va.Length; i++)
            {
                if (va[i].Sum == 1 && vb[i].Sum == 0) onlyA++;
                if (va[i].Sum == 0 && vb[i].Sum == 1) onlyB++;
            }
            return new PairedResult(ids.Length, ea, eb, "binary", delta, low, high, "mcnemar_exact",
                PairedStatistics.McNemarExact(onlyA, onlyB), onlyA, onlyB);
        }
        double p = PairedStatistics.PermutationP(va, vb, options.BootstrapIterations,
            PairedStatistics.SeedFor(options.Seed, ta.Name, key.Metric, key.Filter, "permutation"));
        return new PairedResult(ids.Length, ea, eb, list ? "list" : "real", delta, low, high, "sign_flip_permutation", p, null, null);
    }

    // ---- Markdown ----

    /// <summary>The report: one table per compared run, its notes, and with <paramref name="legend"/> what each column means.</summary>
    public string Markdown(bool legend)
    {
        var md = new StringBuilder();
        md.AppendLine("# Evaluation comparison").AppendLine();
        md.AppendLine($"Baseline {RunLabel(Baseline)}, compared with {string.Join(", ", Runs.Skip(1).Select(RunLabel))}.");
        string conf = Percent(Options.Confidence);
        foreach (var c in Comparisons)
        {
            md.AppendLine().AppendLine($"## `{c.Other.Name}` vs `{c.Baseline.Name}`").AppendLine();
            if (c.Rows.Count == 0) md.AppendLine("No task and metric in common.").AppendLine();
            else
            {
                md.AppendLine($"| task | metric | filter | {Cell(c.Baseline.Name)} | {Cell(c.Other.Name)} | Δ | {conf} CI | p | n |");
                md.AppendLine("| --- | --- | --- | ---: | ---: | ---: | :---: | ---: | ---: |");
                foreach (var r in c.Rows)
                {
                    int d = Decimals(r);
                    var p = r.Paired;
                    md.AppendLine($"| {Cell(r.Task)} | {Cell(r.Key.Metric)} | {Cell(r.Key.Filter)} | {ValueCell(r.BaselineValue, r.BaselineStderr, d)} | " +
                        $"{ValueCell(r.OtherValue, r.OtherStderr, d)} | {(p is null ? "—" : Signed(p.Delta, d))} | " +
                        $"{(p is null || double.IsNaN(p.CiLow) ? "—" : $"[{Signed(p.CiLow, d)}, {Signed(p.CiHigh, d)}]")} | " +
                        $"{(p is null ? "—" : PValue(p.P) + (p.Test == "mcnemar_exact" ? "" : "†"))} | {(p is null ? "—" : p.Documents.ToString(CultureInfo.InvariantCulture))} |");
                }
                md.AppendLine().AppendLine(Summary(c, conf));
            }
            if (c.Notes.Count > 0)
            {
                md.AppendLine().AppendLine("Notes:");
                foreach (var note in c.Notes) md.AppendLine($"- {note}");
            }
        }
        if (legend) md.AppendLine().Append(Legend());
        return md.ToString();
    }

    static string Summary(RunComparison c, string conf)
    {
        var paired = c.Rows.Where(r => r.Paired is { } p && !double.IsNaN(p.CiLow)).ToList();
        if (paired.Count == 0) return "No row has paired statistics.";
        var clear = paired.Where(r => r.Paired!.CiLow > 0 || r.Paired!.CiHigh < 0).ToList();
        int better = clear.Count(r => r.Verdict > 0), worse = clear.Count(r => r.Verdict < 0);
        int unknown = clear.Count - better - worse;
        var text = $"The {conf} interval of Δ excludes 0 on {clear.Count} of {paired.Count} rows";
        if (clear.Count == 0) return text + ".";
        var parts = new List<string> { $"{better} better", $"{worse} worse" };
        if (unknown > 0) parts.Add($"{unknown} with no higher_is_better to say which");
        return $"{text}: for `{c.Other.Name}`, {string.Join(", ", parts)}.";
    }

    string Legend()
    {
        string conf = Percent(Options.Confidence);
        return $"""
            ## How to read this

            - **baseline, run**: each run's score from its results.json, ± the standard error lm-eval reports with it.
            - **Δ**: the paired difference, run − baseline, over the documents both runs scored, paired by
              doc_id within the filter: the mean of the per-document differences. For list-valued metrics
              (IFEval's inst_level_*) each run's score is the mean over all instructions of those documents,
              as lm-eval aggregates them. When both runs scored the same documents, Δ is the difference of the
              two values (for metrics that lm-eval aggregates by the mean).
            - **{conf} CI**: paired bootstrap percentile interval of Δ: the documents are resampled with
              replacement {Options.BootstrapIterations} times (seed {Options.Seed}), both runs' values of a
              document together; Δ is recomputed on each resample, and the interval runs between the
              {Percent((1 - Options.Confidence) / 2)} and {Percent((1 + Options.Confidence) / 2)} quantiles of those.
              An interval that excludes 0 is a difference larger than the noise of which documents were drawn.
            - **p**: where every per-document value is 0 or 1, McNemar's exact test: a two-sided binomial
              test that the documents only one run got right split evenly between the runs (with no such
              documents, p = 1). Elsewhere, marked †, a paired sign-flip permutation test over documents:
              each document's two values are swapped at random, {Options.BootstrapIterations} times, and p is
              the share of those with a |Δ| at least as large as observed. That covers real-valued metrics,
              and list-valued ones too: their instructions share one response, so pairing instructions as
              independent (McNemar on instructions) would overstate the evidence. Each p is for its row
              alone, not corrected for the number of rows.
            - **n**: the number of documents paired.

            """;
    }

    static string RunLabel(EvalRun run)
    {
        var model = run.Config?["model"]?.ToString();
        var limit = run.Config?["limit"]?.ToString();
        var details = new List<string>();
        if (!string.IsNullOrEmpty(model)) details.Add($"model {model}");
        if (run.Config?["adapter"]?.ToString() is { Length: > 0 } adapter) details.Add($"adapter {adapter}");
        if (!string.IsNullOrEmpty(limit)) details.Add($"limit {limit}");
        return details.Count == 0 ? $"`{run.Name}`" : $"`{run.Name}` ({string.Join(", ", details)})";
    }

    static int Decimals(ComparisonRow r) =>
        Math.Max(Math.Abs(r.BaselineValue ?? 0), Math.Abs(r.OtherValue ?? 0)) >= 100 ? 2 : 4;

    static string ValueCell(double? value, double? stderr, int decimals) =>
        value is not { } v ? "—" : stderr is { } e ? $"{Fixed(v, decimals)} ± {Fixed(e, decimals)}" : Fixed(v, decimals);

    static string Fixed(double x, int decimals) => x.ToString("F" + decimals, CultureInfo.InvariantCulture);

    static string Signed(double x, int decimals) => x >= 0 ? "+" + Fixed(x + 0.0, decimals) : Fixed(x, decimals); // + 0.0: no "-0"

    static string PValue(double p) => p < 0.0001 ? "<0.0001" : p.ToString("F4", CultureInfo.InvariantCulture);

    static string Percent(double x) => (x * 100).ToString("0.##", CultureInfo.InvariantCulture) + "%";

    static string Cell(string text) => text.Replace("|", "\\|").Replace("\n", " ");

    // ---- JSON ----

    public string Json()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("baseline", Baseline.Name);
            json.WriteStartArray("runs");
            foreach (var run in Runs)
            {
                json.WriteStartObject();
                json.WriteString("name", run.Name);
                json.WriteString("directory", Path.GetFullPath(run.Directory));
                if (run.Config is not null)
                {
                    json.WritePropertyName("config");
                    run.Config.WriteTo(json);
                }
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartObject("interval");
            json.WriteString("method", "paired_bootstrap_percentile");
            json.WriteNumber("confidence", Options.Confidence);
            json.WriteNumber("iterations", Options.BootstrapIterations);
            json.WriteNumber("seed", Options.Seed);
            json.WriteEndObject();
            json.WriteStartArray("comparisons");
            foreach (var c in Comparisons)
            {
                json.WriteStartObject();
                json.WriteString("baseline", c.Baseline.Name);
                json.WriteString("run", c.Other.Name);
                json.WriteStartArray("rows");
                foreach (var r in c.Rows) WriteRow(json, r);
                json.WriteEndArray();
                json.WriteStartArray("notes");
                foreach (var note in c.Notes) json.WriteStringValue(note);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    static void WriteRow(Utf8JsonWriter json, ComparisonRow r)
    {
        json.WriteStartObject();
        json.WriteString("task", r.Task);
        json.WriteString("metric", r.Key.Metric);
        json.WriteString("filter", r.Key.Filter);
        if (r.HigherIsBetter is { } h) json.WriteBoolean("higher_is_better", h); else json.WriteNull("higher_is_better");
        Number(json, "baseline_value", r.BaselineValue);
        Number(json, "baseline_stderr", r.BaselineStderr);
        Number(json, "value", r.OtherValue);
        Number(json, "stderr", r.OtherStderr);
        if (r.Paired is { } p)
        {
            json.WriteStartObject("paired");
            json.WriteNumber("n", p.Documents);
            json.WriteString("kind", p.Kind);
            if (p.Kind == "list")
            {
                json.WriteNumber("baseline_elements", p.BaselineElements);
                json.WriteNumber("elements", p.OtherElements);
            }
            Number(json, "delta", p.Delta);
            json.WriteStartArray("ci");
            NumberValue(json, p.CiLow);
            NumberValue(json, p.CiHigh);
            json.WriteEndArray();
            json.WriteString("test", p.Test);
            Number(json, "p", p.P);
            if (p.BaselineOnly is { } onlyA) json.WriteNumber("baseline_only", onlyA);
            if (p.OtherOnly is { } onlyB) json.WriteNumber("run_only", onlyB);
            json.WriteString("change", p.CiLow > 0 || p.CiHigh < 0 ? r.Verdict switch { 1 => "better", -1 => "worse", _ => "significant" } : "not_significant");
            json.WriteEndObject();
        }
        else json.WriteNull("paired");
        json.WriteEndObject();
    }

    static void Number(Utf8JsonWriter json, string name, double? value)
    {
        json.WritePropertyName(name);
        NumberValue(json, value);
    }

    static void NumberValue(Utf8JsonWriter json, double? value)
    {
        if (value is { } v && double.IsFinite(v)) json.WriteNumberValue(v); else json.WriteNullValue();
    }
}
