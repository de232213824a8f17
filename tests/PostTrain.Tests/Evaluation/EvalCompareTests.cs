using System.Numerics;
using System.Text.Json.Nodes;
using PostTrain.Charts;
using PostTrain.Evaluation;
using PostTrain.Tests.Cli;
using SkiaSharp;

namespace PostTrain.Tests.Evaluation;

public class EvalCompareTests
{
    /// <summary>Writes a run directory as `posttrain eval` does: results.json and samples_TASK.jsonl.</summary>
    sealed class RunFixture(string dir)
    {
        public string Dir { get; } = dir;
        readonly Dictionary<string, List<(string Metric, string Filter, JsonNode?[] PerDoc, double? Value, JsonNode? Stderr)>> tasks = [];
        public int FirstDoc { get; init; }

        /// <summary>A metric with one number per document (doc_id FirstDoc, FirstDoc + 1, ...); its value is their mean.</summary>
        public RunFixture Scalar(string task, string metric, string filter, double[] perDoc, double? stderr = 0.05) =>
            Add(task, metric, filter, perDoc.Select(v => (JsonNode?)v).ToArray(), perDoc.Average(), stderr);

        /// <summary>A list-valued metric (inst_level_*): its value is the flattened mean; its stderr "N/A", as lm-eval writes.</summary>
        public RunFixture Lists(string task, string metric, bool[][] perDoc) =>
            Add(task, metric, "none", perDoc.Select(l => (JsonNode?)new JsonArray(l.Select(b => (JsonNode?)b).ToArray())).ToArray(),
                (double)perDoc.Sum(l => l.Count(b => b)) / perDoc.Sum(l => l.Length), "N/A");

        RunFixture Add(string task, string metric, string filter, JsonNode?[] perDoc, double? value, object? stderr)
        {
            if (!tasks.TryGetValue(task, out var list)) tasks[task] = list = [];
            list.Add((metric, filter, perDoc, value, stderr switch { double d => d, string s => s, _ => null }));
            return this;
        }

        public RunFixture Write()
        {
            Directory.CreateDirectory(Dir);
            var results = new JsonObject();
            var higher = new JsonObject();
            foreach (var (task, metrics) in tasks)
            {
                var entry = new JsonObject { ["alias"] = task };
                var hib = new JsonObject();
                foreach (var m in metrics)
                {
                    entry[$"{m.Metric},{m.Filter}"] = m.Value;
                    entry[$"{m.Metric}_stderr,{m.Filter}"] = m.Stderr?.DeepClone();
                    hib[m.Metric] = true;
                }
                results[task] = entry;
                higher[task] = hib;
                var lines = new List<string>();
                foreach (var filter in metrics.Select(m => m.Filter).Distinct())
                {
                    var ofFilter = metrics.Where(m => m.Filter == filter).ToList();
                    for (int i = 0; i < ofFilter[0].PerDoc.Length; i++)
                    {
                        var line = new JsonObject
                        {
                            ["doc_id"] = FirstDoc + i, ["doc"] = new JsonObject { ["question"] = $"q{i}" }, ["target"] = "t",
                            ["arguments"] = new JsonArray(), ["resps"] = new JsonArray(), ["filtered_resps"] = new JsonArray(),
                            ["filter"] = filter, ["metrics"] = new JsonArray(ofFilter.Select(m => (JsonNode?)m.Metric).ToArray()),
                        };
                        foreach (var m in ofFilter) line[m.Metric] = m.PerDoc[i]?.DeepClone();
                        lines.Add(line.ToJsonString());
                    }
                }
                File.WriteAllLines(Path.Combine(Dir, $"samples_{task}.jsonl"), lines);
            }
            var root = new JsonObject
            {
                ["results"] = results, ["higher_is_better"] = higher,
                ["config"] = new JsonObject { ["model"] = Path.GetFileName(Dir), ["adapter"] = null, ["limit"] = 100 },
            };
            File.WriteAllText(Path.Combine(Dir, "results.json"), root.ToJsonString(new() { WriteIndented = true }));
            return this;
        }
    }

    static double[] Bernoulli(Random rng, int n, double p) => Enumerable.Range(0, n).Select(_ => rng.NextDouble() < p ? 1.0 : 0.0).ToArray();

    static DocValue[] Scalars(IEnumerable<double> values) => values.Select(v => new DocValue(v, 1, false)).ToArray();

    // ---- statistics, each against an independent computation ----

    [Theory]
    [InlineData(1, 9, 22.0 / 1024)]     // n = 10: 2 (C(10,0) + C(10,1)) / 2^10
    [InlineData(9, 1, 22.0 / 1024)]     // two-sided: symmetric
    [InlineData(0, 6, 2.0 / 64)]
    [InlineData(5, 5, 1.0)]             // 2 P(X <= 5) > 1 is capped
    [InlineData(0, 0, 1.0)]             // no discordant documents: no evidence of a difference
    [InlineData(3, 4, 1.0)]
    public void McNemarMatchesHandWorkedBinomialTails(int onlyA, int onlyB, double expected) =>
        Assert.Equal(expected, PairedStatistics.McNemarExact(onlyA, onlyB), 12);

    [Theory]
    [InlineData(30, 70)]
    [InlineData(480, 520)]
    [InlineData(1, 1500)]
    public void McNemarMatchesExactRationalArithmeticForLargeCounts(int onlyA, int onlyB)
    {
        int n = onlyA + onlyB, k = Math.Min(onlyA, onlyB);
        BigInteger tail = 0, c = 1;
        for (int i = 0; i <= k; i++)
        {
            tail += c;
            c = c * (n - i) / (i + 1);
        }
        // p = 2 tail / 2^n, computed as a ratio of big integers scaled to 1e-30 resolution.
        var scaled = tail * 2 * BigInteger.Pow(10, 30) / BigInteger.Pow(2, n);
        double expected = Math.Min(1, (double)scaled / 1e30);
        double actual = PairedStatistics.McNemarExact(onlyA, onlyB);
        Assert.True(Math.Abs(actual - expected) <= 1e-9 * Math.Max(expected, 1e-300) || Math.Abs(actual - expected) < 1e-29,
            $"p = {actual}, exact {expected}");
    }

    [Fact]
    public void BootstrapIntervalIsSeededAndNarrowsWithMoreDocuments()
    {
        var rng = new Random(5);
        var a = Scalars(Bernoulli(rng, 1600, 0.5));
        var b = Scalars(Bernoulli(rng, 1600, 0.7));
        var first = PairedStatistics.BootstrapInterval(a, b, 2000, 0.95, 42);
        Assert.Equal(first, PairedStatistics.BootstrapInterval(a, b, 2000, 0.95, 42));
        Assert.NotEqual(first, PairedStatistics.BootstrapInterval(a, b, 2000, 0.95, 43));

        var small = PairedStatistics.BootstrapInterval(a.AsSpan(0, 400), b.AsSpan(0, 400), 2000, 0.95, 42);
        double ratio = (first.High - first.Low) / (small.High - small.Low);
        Assert.InRange(ratio, 0.4, 0.6); // width ~ 1/sqrt(n): 4 times the documents, half the width
        Assert.True(first.Low < 0.2 && 0.2 < first.High, $"[{first.Low}, {first.High}] misses the true difference 0.2");

        // Against the normal approximation: half-width ≈ z · sd(d) / sqrt(n) for the per-document differences d.
        var d = a.Zip(b, (x, y) => y.Sum - x.Sum).ToArray();
        double mean = d.Average(), sd = Math.Sqrt(d.Sum(x => (x - mean) * (x - mean)) / (d.Length - 1));
        double normalHalf = 1.959964 * sd / Math.Sqrt(d.Length);
        Assert.InRange((first.High - first.Low) / 2 / normalHalf, 0.9, 1.1);
        Assert.Equal(mean, PairedStatistics.Difference(a, b), 12);
    }

    [Fact]
    public void BootstrapIntervalCoversTheTrueDifferenceAboutAsOftenAsItsLevel()
    {
        // 60 simulated pairs of runs (true difference 0.1, correlated through document difficulty): a 90% interval should miss about 6.
        var rng = new Random(11);
        int covered = 0, trials = 60;
        for (int t = 0; t < trials; t++)
        {
            var difficulty = Enumerable.Range(0, 300).Select(_ => rng.NextDouble()).ToArray();
            var a = Scalars(difficulty.Select(h => rng.NextDouble() < 0.9 - 0.6 * h ? 1.0 : 0.0));
            var b = Scalars(difficulty.Select(h => rng.NextDouble() < 1.0 - 0.6 * h ? 1.0 : 0.0));
            var (low, high) = PairedStatistics.BootstrapInterval(a, b, 1000, 0.90, (ulong)t);
            if (low <= 0.1 && 0.1 <= high) covered++;
        }
        Assert.InRange(covered, 48, 60); // binomial(60, 0.9): 48 is more than 3 sd below 54
    }

    [Fact]
    public void QuantileInterpolatesLinearlyAsNumpyDoes()
    {
        double[] sorted = [1, 2, 3, 4, 10];
        Assert.Equal(1, PairedStatistics.Quantile(sorted, 0));
        Assert.Equal(10, PairedStatistics.Quantile(sorted, 1));
        Assert.Equal(3, PairedStatistics.Quantile(sorted, 0.5));
        Assert.Equal(6.4, PairedStatistics.Quantile(sorted, 0.85), 12); // numpy.quantile([1,2,3,4,10], 0.85): 4 + 0.4 (10 - 4)
    }

    [Fact]
    public void PermutationTestFindsNothingInIdenticalRunsAndSomethingInShiftedOnes()
    {
        var rng = new Random(3);
        var a = Scalars(Enumerable.Range(0, 200).Select(_ => rng.NextDouble()));
        Assert.Equal(1.0, PairedStatistics.PermutationP(a, a, 999, 1));
        var shifted = a.Select(v => v with { Sum = v.Sum + 0.2 + 0.05 * rng.NextDouble() }).ToArray();
        Assert.Equal(1.0 / 1000, PairedStatistics.PermutationP(a, shifted, 999, 1), 12);
        var noise = Scalars(Enumerable.Range(0, 200).Select(_ => rng.NextDouble()));
        Assert.InRange(PairedStatistics.PermutationP(a, noise, 999, 1), 0.05, 1); // same distribution: no evidence (seeded, so fixed)
    }

    [Fact]
    public void ListMetricsAreComparedAsFlattenedMeans()
    {
        // Per document: instructions followed out of instructions given.
        DocValue[] a = [new(1, 2, true), new(0, 1, true), new(3, 3, true)];
        DocValue[] b = [new(2, 2, true), new(1, 1, true), new(1, 3, true)];
        Assert.Equal(4.0 / 6 - 4.0 / 6, PairedStatistics.Difference(a, b), 12);
        DocValue[] c = [new(2, 2, true), new(1, 1, true), new(3, 3, true)];
        Assert.Equal(1 - 4.0 / 6, PairedStatistics.Difference(a, c), 12);
    }

    [Fact]
    public void SeedsDependOnTheRowNotOnWhatElseIsCompared()
    {
        Assert.Equal(PairedStatistics.SeedFor(1234, "gsm8k", "exact_match", "strict-match"), PairedStatistics.SeedFor(1234, "gsm8k", "exact_match", "strict-match"));
        Assert.NotEqual(PairedStatistics.SeedFor(1234, "gsm8k", "exact_match", "strict-match"), PairedStatistics.SeedFor(1235, "gsm8k", "exact_match", "strict-match"));
        Assert.NotEqual(PairedStatistics.SeedFor(1, "ab", "c"), PairedStatistics.SeedFor(1, "a", "bc"));
    }

    // ---- the comparison ----

    static (RunFixture A, RunFixture B) TwoRuns(int n = 120, int seed = 7)
    {
        var root = TestModels.TempDir();
        var rng = new Random(seed);
        var a = new RunFixture(Path.Combine(root, "base"))
            .Scalar("gsm8k", "exact_match", "strict-match", Bernoulli(rng, n, 0.4))
            .Scalar("gsm8k", "exact_match", "flexible-extract", Bernoulli(rng, n, 0.45))
            .Scalar("arc_easy", "acc", "none", Bernoulli(rng, n, 0.5))
            .Lists("ifeval", "inst_level_strict_acc", Enumerable.Range(0, n).Select(i => Enumerable.Range(0, 1 + i % 3).Select(_ => rng.NextDouble() < 0.5).ToArray()).ToArray())
            .Scalar("ifeval", "prompt_level_strict_acc", "none", Bernoulli(rng, n, 0.3))
            .Scalar("truthfulqa", "bleu_max", "none", Enumerable.Range(0, n).Select(_ => 20 * rng.NextDouble()).ToArray())
            .Write();
        var b = new RunFixture(Path.Combine(root, "sft"))
            .Scalar("gsm8k", "exact_match", "strict-match", Bernoulli(rng, n, 0.6))
            .Scalar("gsm8k", "exact_match", "flexible-extract", Bernoulli(rng, n, 0.65))
            .Scalar("arc_easy", "acc", "none", Bernoulli(rng, n, 0.5))
            .Lists("ifeval", "inst_level_strict_acc", Enumerable.Range(0, n).Select(i => Enumerable.Range(0, 1 + i % 3).Select(_ => rng.NextDouble() < 0.7).ToArray()).ToArray())
            .Scalar("ifeval", "prompt_level_strict_acc", "none", Bernoulli(rng, n, 0.5))
            .Scalar("mmlu", "acc", "none", Bernoulli(rng, n, 0.3))
            .Write();
        return (a, b);
    }

    static EvalComparison Compare(params RunFixture[] runs) =>
        EvalComparison.Compare(runs.Select(r => EvalRun.Load(r.Dir, Path.GetFileName(r.Dir))).ToList(),
            new ComparisonOptions { BootstrapIterations = 1000 });

    [Fact]
    public void ComparesEverySharedTaskMetricAndFilterAndNotesTheRest()
    {
        var (a, b) = TwoRuns();
        var c = Compare(a, b).Comparisons.Single();
        Assert.Equal([("gsm8k", "exact_match", "strict-match"), ("gsm8k", "exact_match", "flexible-extract"), ("arc_easy", "acc", "none"),
            ("ifeval", "inst_level_strict_acc", "none"), ("ifeval", "prompt_level_strict_acc", "none")],
            c.Rows.Select(r => (r.Task, r.Key.Metric, r.Key.Filter)));
        Assert.Contains("truthfulqa: only in `base`", c.Notes);
        Assert.Contains("mmlu: only in `sft`", c.Notes);

        foreach (var row in c.Rows)
        {
            var p = row.Paired!;
            Assert.Equal(120, p.Documents);
            Assert.Equal(row.OtherValue!.Value - row.BaselineValue!.Value, p.Delta, 12); // same documents: Δ is the difference of the values
            Assert.True(p.CiLow <= p.Delta && p.Delta <= p.CiHigh);
        }
        var strict = c.Rows[0].Paired!;
        Assert.Equal(("binary", "mcnemar_exact"), (strict.Kind, strict.Test));
        Assert.Equal(PairedStatistics.McNemarExact(strict.BaselineOnly!.Value, strict.OtherOnly!.Value), strict.P);
        Assert.Equal(strict.Delta, (strict.OtherOnly!.Value - strict.BaselineOnly!.Value) / 120.0, 12);
        var inst = c.Rows[3];
        Assert.Equal(("list", "sign_flip_permutation"), (inst.Paired!.Kind, inst.Paired.Test));
        Assert.Null(inst.BaselineStderr); // "N/A"
        Assert.Equal(240, inst.Paired.BaselineElements); // 1 + 2 + 3 instructions per 3 documents
    }

    [Fact]
    public void RunsThatScoredDifferentDocumentsAreComparedOnTheIntersection()
    {
        var root = TestModels.TempDir();
        var a = new RunFixture(Path.Combine(root, "a")).Scalar("arc_easy", "acc", "none", [1, 0, 1, 0, 1, 1]).Write();
        // doc_ids 2..9 (another --limit and offset): shared with a are 2..5.
        var b = new RunFixture(Path.Combine(root, "b")) { FirstDoc = 2 }.Scalar("arc_easy", "acc", "none", [1, 1, 1, 1, 0, 0, 0, 0]).Write();
        var c = Compare(a, b).Comparisons.Single();
        var p = c.Rows.Single().Paired!;
        Assert.Equal(4, p.Documents);
        Assert.Equal((1 + 1 + 1 + 1) / 4.0 - (1 + 0 + 1 + 1) / 4.0, p.Delta, 12);
        Assert.Contains(c.Notes, n => n.Contains("different documents") && n.Contains("the 4 both scored"));
    }

    [Fact]
    public void RealValuedMetricsGetAPermutationTestAndNoMcNemar()
    {
        var root = TestModels.TempDir();
        var rng = new Random(1);
        var values = Enumerable.Range(0, 80).Select(_ => 30 * rng.NextDouble()).ToArray();
        var a = new RunFixture(Path.Combine(root, "a")).Scalar("truthfulqa", "bleu_max", "none", values).Write();
        var b = new RunFixture(Path.Combine(root, "b")).Scalar("truthfulqa", "bleu_max", "none", values.Select(v => v + 5).ToArray()).Write();
        var p = Compare(a, b).Comparisons.Single().Rows.Single().Paired!;
        Assert.Equal(("real", "sign_flip_permutation", 5.0), (p.Kind, p.Test, Math.Round(p.Delta, 9)));
        Assert.Equal(5.0, p.CiLow, 9); // every difference is 5: every resample's too
        Assert.Equal(1.0 / 1001, p.P, 12);
        Assert.Null(p.BaselineOnly);
    }

    // ---- the command ----

    [Fact]
    public void CommandPrintsTheTableAndWritesMarkdownJsonAndChart()
    {
        var (a, b) = TwoRuns();
        var output = Path.Combine(TestModels.TempDir(), "report");
        var (code, stdout, stderr) = CliRunner.Run("eval-compare", a.Dir, b.Dir, "--output", output, "--bootstrap-iters", "2000", "--seed", "9");
        Assert.True(code == 0, stderr);
        Assert.Contains($"| task | metric | filter | {a.Dir} | {b.Dir} | Δ | 95% CI | p | n |", stdout);
        Assert.Contains("| gsm8k | exact_match | strict-match | ", stdout);
        Assert.Contains("truthfulqa: only in", stdout);
        Assert.DoesNotContain("How to read this", stdout);

        var md = File.ReadAllText(Path.Combine(output, "comparison.md"));
        Assert.Contains("## How to read this", md);
        Assert.Contains("McNemar's exact test", md);
        Assert.Contains("2000 times", md);

        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "comparison.json")))!;
        Assert.Equal(a.Dir, json["baseline"]!.GetValue<string>());
        Assert.Equal(9, json["interval"]!["seed"]!.GetValue<int>());
        var rows = json["comparisons"]![0]!["rows"]!.AsArray();
        Assert.Equal(5, rows.Count);
        var row = rows[0]!;
        Assert.Equal(("gsm8k", "exact_match", "strict-match"), (row["task"]!.GetValue<string>(), row["metric"]!.GetValue<string>(), row["filter"]!.GetValue<string>()));
        Assert.Equal(row["value"]!.GetValue<double>() - row["baseline_value"]!.GetValue<double>(), row["paired"]!["delta"]!.GetValue<double>(), 12);
        Assert.Equal("mcnemar_exact", row["paired"]!["test"]!.GetValue<string>());
        Assert.Equal(2, row["paired"]!["ci"]!.AsArray().Count);

        using var png = SKBitmap.Decode(Path.Combine(output, "comparison.png"));
        Assert.NotNull(png);
        Assert.True(png.Width >= 640 && png.Height >= 600, $"{png.Width}x{png.Height}");

        // Same seed, same numbers; written again into the existing directory without leftovers.
        var (code2, stdout2, _) = CliRunner.Run("eval-compare", a.Dir, b.Dir, "--output", output, "--bootstrap-iters", "2000", "--seed", "9");
        Assert.Equal(0, code2);
        Assert.Equal(stdout, stdout2);
        Assert.Equal(["comparison.json", "comparison.md", "comparison.png"], Directory.GetFiles(output).Select(Path.GetFileName).Order());
    }

    [Fact]
    public void CommandComparesEveryRunWithTheFirst()
    {
        var (a, b) = TwoRuns();
        var (code, stdout, stderr) = CliRunner.Run("eval-compare", a.Dir, b.Dir, a.Dir, "--bootstrap-iters", "200");
        Assert.True(code == 0, stderr);
        Assert.Contains($"## `{b.Dir}` vs `{a.Dir}`", stdout);
        Assert.Contains($"## `{a.Dir} (2)` vs `{a.Dir}`", stdout); // the same run twice: named apart, Δ = 0, p = 1
        Assert.Contains("| +0.0000 | [+0.0000, +0.0000] | 1.0000 | 120 |", stdout);
    }

    [Fact]
    public void BadInputIsOneLineExitTwoAndWritesNothing()
    {
        var (a, b) = TwoRuns(n: 10);
        var root = TestModels.TempDir();
        var output = Path.Combine(root, "report");

        void Fails(string[] runs, string expected, params string[] options)
        {
            var (code, stdout, stderr) = CliRunner.Run(["eval-compare", .. runs, "--output", output, .. options]);
            Assert.Equal(2, code);
            Assert.StartsWith("error: ", stderr);
            Assert.Single(stderr.TrimEnd('\n').Split('\n'));
            Assert.Contains(expected, stderr);
            Assert.Equal("", stdout);
            Assert.False(Directory.Exists(output), "nothing may be written");
            Assert.Empty(Directory.GetFileSystemEntries(root));
        }

        Fails([a.Dir, Path.Combine(root, "missing")], "missing: run directory not found");
        var file = Path.Combine(TestModels.TempDir(), "results.json");
        File.WriteAllText(file, "{}");
        Fails([a.Dir, file], "not a directory");
        var empty = TestModels.TempDir();
        Fails([a.Dir, empty], $"{Path.Combine(empty, "results.json")}: not found");
        Fails([a.Dir], "at least two run directories");
        Fails([a.Dir, b.Dir], "--confidence", "--confidence", "95");
        Fails([a.Dir, b.Dir], "--bootstrap-iters", "--bootstrap-iters", "0");

        File.WriteAllText(Path.Combine(b.Dir, "results.json"), "{\"results\": {\n  \"gsm8k\": {\"acc,none\": 0.5,}\n}}");
        Fails([a.Dir, b.Dir], $"{Path.Combine(b.Dir, "results.json")}:2: not valid JSON");
        File.WriteAllText(Path.Combine(b.Dir, "results.json"), "{\"results\": {\"gsm8k\": {\"acc,none\": [0.5]}}}");
        Fails([a.Dir, b.Dir], "results.gsm8k.acc,none: expected a number");
        File.WriteAllText(Path.Combine(b.Dir, "results.json"), "{\"config\": {}}");
        Fails([a.Dir, b.Dir], "results: missing");

        var samples = Path.Combine(a.Dir, "samples_arc_easy.jsonl");
        var lines = File.ReadAllLines(samples);
        File.WriteAllLines(samples, [lines[0], lines[1][..^5], .. lines[2..]]);
        Fails([a.Dir, a.Dir], $"{samples}:2: not valid JSON");
        File.WriteAllLines(samples, [lines[0], lines[1].Replace("\"doc_id\":1", "\"doc_id\":\"one\""), .. lines[2..]]);
        Fails([a.Dir, a.Dir], $"{samples}:2: doc_id: expected a non-negative integer");
        File.WriteAllLines(samples, [lines[0], lines[0]]);
        Fails([a.Dir, a.Dir], $"{samples}:2: doc_id: document 0 appears twice for filter 'none' (first on line 1)");
        File.WriteAllLines(samples, [lines[0].Replace("\"acc\":", "\"accuracy\":")]);
        Fails([a.Dir, a.Dir], $"{samples}:1: acc: missing");
    }

    // ---- charts ----

    [Fact]
    public void ChartTextIsDrawnWithTheEmbeddedFont()
    {
        Assert.Equal("DejaVu Sans", ChartFonts.Regular.FamilyName);
        Assert.True(ChartFonts.Bold.FontStyle.Weight >= (int)SKFontStyleWeight.Bold);
        using var font = new SKFont(ChartFonts.Regular, 12);
        Assert.True(font.MeasureText("gsm8k") > 20);

        // A title of spaces takes the same room: the pixels that differ are the title's glyphs.
        var chart = new GroupedBarChart("Title text", ["a", "b"], [new BarGroup("g", [0.5, 0.6], [0.1, null])]) { Height = 400 };
        using var withTitle = SKBitmap.Decode(Chart.Png(chart));
        using var blank = SKBitmap.Decode(Chart.Png(chart with { Title = "          " }));
        Assert.Equal((withTitle.Width, withTitle.Height), (blank.Width, blank.Height));
        int differing = 0;
        for (int y = 0; y < withTitle.Height; y++)
            for (int x = 0; x < withTitle.Width; x++)
                if (withTitle.GetPixel(x, y) != blank.GetPixel(x, y)) differing++;
        Assert.True(differing > 200, $"the title drew {differing} pixels");
    }

    [Fact]
    public void LineChartsRenderAndCheckTheirSeries()
    {
        double[] steps = [0, 1, 2, 3, double.NaN];
        var png = Chart.Png(new LineChart("loss", [new LineSeries("train", steps, [3, 2, 1.5, 1.2, 1]), new LineSeries("eval", [0, 3], [3.1, 1.4])])
        { XLabel = "step", YLabel = "loss", Markers = true });
        using var bitmap = SKBitmap.Decode(png);
        Assert.Equal((900, 520), (bitmap.Width, bitmap.Height));
        Assert.Throws<ArgumentException>(() => Chart.Png(new LineChart("x", [new LineSeries("bad", [1, 2], [1])])));
        Assert.Throws<ArgumentException>(() => Chart.Png(new GroupedBarChart("x", ["a", "b"], [new BarGroup("g", [1.0])])));
    }
}
