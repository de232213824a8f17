using System.CommandLine;
using System.Text;
using PostTrain.Checkpoints;
using PostTrain.Evaluation;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain eval-compare`: a baseline evaluation run against one or more others, document by document.</summary>
public static class EvalCompareCommand
{
    public static Command Create()
    {
        var runs = new Argument<string[]>("runs")
        {
            Description = "Run directories written by `posttrain eval` (results.json, samples_TASK.jsonl); the first is the baseline",
            Arity = ArgumentArity.OneOrMore,
        };
        var output = new Option<string?>("--output") { Description = "Also write comparison.md, comparison.json and comparison.png to this directory" };
        var seed = new Option<int>("--seed") { Description = "Seed of the bootstrap and permutation resamples", DefaultValueFactory = _ => 1234 };
        var iterations = new Option<int>("--bootstrap-iters") { Description = "Bootstrap resamples (and permutations) per row", DefaultValueFactory = _ => 10000 };
        var confidence = new Option<double>("--confidence") { Description = "Confidence level of the intervals", DefaultValueFactory = _ => 0.95 };

        var command = new Command("eval-compare",
            "Compare evaluation runs with a baseline: values, paired differences, bootstrap intervals and tests, a chart")
        {
            runs, output, seed, iterations, confidence,
        };
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var dirs = result.GetValue(runs)!;
            if (dirs.Length < 2) throw new InputError("eval-compare: give at least two run directories (the first is the baseline)");
            int iters = result.GetValue(iterations);
            if (iters < 1) throw new InputError("--bootstrap-iters: must be at least 1");
            double level = result.GetValue(confidence);
            if (!(level > 0 && level < 1)) throw new InputError($"--confidence: must be between 0 and 1 (got {level})");
            var outputDir = result.GetValue(output);
            if (outputDir is not null && File.Exists(outputDir)) throw new InputError($"--output: {outputDir} is a file, not a directory");

            // Everything is read, checked and computed before anything is written.
            var loaded = new List<EvalRun>();
            foreach (var dir in dirs) loaded.Add(EvalRun.Load(dir, UniqueName(dir, loaded)));
            var comparison = EvalComparison.Compare(loaded,
                new ComparisonOptions { BootstrapIterations = iters, Seed = result.GetValue(seed), Confidence = level });

            var report = comparison.Markdown(legend: false);
            if (outputDir is null) stdout.Write(report);
            else
            {
                var files = new Dictionary<string, byte[]>
                {
                    ["comparison.md"] = Encoding.UTF8.GetBytes(comparison.Markdown(legend: true)),
                    ["comparison.json"] = Encoding.UTF8.GetBytes(comparison.Json()),
                    ["comparison.png"] = ComparisonChart.Png(comparison),
                };
                WriteAll(outputDir, files);
                stdout.Write(report);
                stdout.WriteLine();
                stdout.WriteLine($"Wrote {string.Join(", ", files.Keys.Select(f => Path.Combine(outputDir, f)))}");
            }
            stdout.Flush();
            return 0;
        }));
        return command;
    }

    /// <summary>A run's name in the report: the path as given, without a trailing separator; repeats get " (2)", " (3)".</summary>
    static string UniqueName(string dir, List<EvalRun> earlier)
    {
        var name = dir.Length > 1 ? dir.TrimEnd('/', Path.DirectorySeparatorChar) : dir;
        var unique = name;
        for (int i = 2; earlier.Any(r => r.Name == unique); i++) unique = $"{name} ({i})";
        return unique;
    }

    /// <summary>
    /// Writes the files into the directory all or nothing: a new directory is filled under a
    /// temporary name and renamed; in an existing one every file is written to a temporary name
    /// first and only then renamed over its target.
    /// </summary>
    static void WriteAll(string dir, IReadOnlyDictionary<string, byte[]> files)
    {
        if (!Directory.Exists(dir))
        {
            AtomicDirectory.Write(dir, overwrite: false, temp =>
            {
                foreach (var (name, bytes) in files) File.WriteAllBytes(Path.Combine(temp, name), bytes);
            });
            return;
        }
        var temps = new List<(string Temp, string Target)>();
        try
        {
            foreach (var (name, bytes) in files)
            {
                var target = Path.Combine(dir, name);
                var temp = Path.Combine(dir, $".{name}.tmp-{Guid.NewGuid():N}");
                temps.Add((temp, target));
                File.WriteAllBytes(temp, bytes);
            }
            foreach (var (temp, target) in temps) File.Move(temp, target, overwrite: true);
        }
        finally
        {
            foreach (var (temp, _) in temps)
                if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
