using System.Text.Json.Nodes;

namespace PostTrain.Tests.Cli;

public class EvalCommandTests
{
    static string Write(string root, string name, IEnumerable<JsonObject> lines)
    {
        var path = Path.Combine(root, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, lines.Select(l => l.ToJsonString()));
        return path;
    }

    internal static IEnumerable<JsonObject> ArcRows(int n) => Enumerable.Range(0, n).Select(i => new JsonObject
    {
        ["id"] = $"q{i}",
        ["question"] = $"Which number comes after {i}?",
        ["choices"] = new JsonObject
        {
            ["text"] = new JsonArray($"{i + 1}", $"{i + 7}", "the sea"),
            ["label"] = new JsonArray("A", "B", "C"),
        },
        ["answerKey"] = "A",
    });

    static JsonObject Results(string dir) => JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "results.json")))!.AsObject();

    static List<JsonObject> Samples(string dir, string task) =>
        File.ReadAllLines(Path.Combine(dir, $"samples_{task}.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void MultipleChoiceWritesResultsAndSamplesAsLmEvalNamesThem()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var data = Write(root, "arc/test.jsonl", ArcRows(6));
        Write(root, "arc/train.jsonl", ArcRows(3));
        var output = Path.Combine(root, "eval");
        var (code, stdout, stderr) = CliRunner.Run("eval", "--model", model, "--tasks", "arc_easy", "--data", Path.Combine(root, "arc"),
            "--num-fewshot", "2", "--output", output, "--batch-size", "4");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("|arc_easy|", stdout);
        var results = Results(output);
        var arc = results["results"]!["arc_easy"]!.AsObject();
        var samples = Samples(output, "arc_easy");
        Assert.Equal(6, samples.Count);
        // The aggregate is the mean of the per-document values, with lm-eval's standard error.
        foreach (var metric in new[] { "acc", "acc_norm" })
        {
            var xs = samples.Select(s => s[metric]!.GetValue<double>()).ToList();
            double mean = xs.Average();
            double stderrValue = Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1) / xs.Count);
            Assert.Equal(mean, arc[$"{metric},none"]!.GetValue<double>(), 12);
            Assert.Equal(stderrValue, arc[$"{metric}_stderr,none"]!.GetValue<double>(), 12);
        }
        Assert.Equal(2, results["n-shot"]!["arc_easy"]!.GetValue<int>());
        Assert.Equal(6, results["n-samples"]!["arc_easy"]!["effective"]!.GetValue<int>());
        var first = samples[0];
        Assert.Equal(0, first["target"]!.GetValue<int>());
        var arguments = first["arguments"]!.AsArray();
        Assert.Equal(3, arguments.Count);
        // Two examples from the train split, then the question; each choice follows " ".
        var context = arguments[0]![0]!.GetValue<string>();
        Assert.EndsWith("Question: Which number comes after 0?\nAnswer:", context);
        Assert.Equal(2, context.Split("\n\n").Length - 1);
        Assert.Equal(" 1", arguments[0]![1]!.GetValue<string>());
        Assert.Equal(3, first["filtered_resps"]!.AsArray().Count);
        Assert.Equal("none", first["filter"]!.GetValue<string>());
    }

    [Fact]
    public void GenerateUntilRunsTheFiltersAndResponsesCanBeScoredWithoutAModel()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var data = Write(root, "gsm.jsonl", Enumerable.Range(1, 4).Select(i => new JsonObject
        {
            ["question"] = $"What is {i} plus {i}?",
            ["answer"] = $"{i} plus {i} is {2 * i}.\n#### {2 * i}",
        }));
        var output = Path.Combine(root, "gen");
        var (code, stdout, stderr) = CliRunner.Run("eval", "--model", model, "--tasks", "gsm8k", "--data", data, "--num-fewshot", "0",
            "--output", output, "--limit", "3");
        Assert.True(code == 0, stderr + stdout);
        var samples = Samples(output, "gsm8k");
        Assert.Equal(6, samples.Count); // 3 documents x 2 filters
        Assert.Equal(["strict-match", "flexible-extract"], samples.Select(s => s["filter"]!.GetValue<string>()).Distinct());

        // The same task scored from responses written elsewhere.
        var responses = Write(root, "responses.jsonl", [
            new JsonObject { ["doc_id"] = 0, ["resps"] = new JsonArray("1 plus 1 is 2.\n#### 2") },
            new JsonObject { ["doc_id"] = 1, ["resps"] = new JsonArray(new JsonArray("I think it is 4 apples")) },
            new JsonObject { ["doc_id"] = 2, ["resps"] = "#### 7" },
        ]);
        var scored = Path.Combine(root, "scored");
        (code, stdout, stderr) = CliRunner.Run("eval", "--tasks", "gsm8k", "--data", data, "--num-fewshot", "0", "--responses", responses,
            "--output", scored, "--limit", "3");
        Assert.True(code == 0, stderr + stdout);
        var gsm = Results(scored)["results"]!["gsm8k"]!;
        Assert.Equal(1.0 / 3, gsm["exact_match,strict-match"]!.GetValue<double>(), 12);   // only "#### 2" is right
        Assert.Equal(2.0 / 3, gsm["exact_match,flexible-extract"]!.GetValue<double>(), 12); // and "4" (last number)
        var strict = Samples(scored, "gsm8k").Where(s => s["filter"]!.GetValue<string>() == "strict-match").ToList();
        Assert.Equal(["2", "[invalid]", "7"], strict.Select(s => s["filtered_resps"]![0]!.GetValue<string>()));
    }

    [Fact]
    public void IfEvalScoresResponsesAsLmEvalsCheckers()
    {
        // Held-out documents and responses with lm-eval's own verdicts (Fixtures/eval/ifeval/golden.jsonl).
        var root = TestModels.TempDir();
        var golden = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "../../../Fixtures/eval/ifeval/golden.jsonl"))
            .Select(l => JsonNode.Parse(l)!.AsObject()).Take(60).ToList();
        var docs = Write(root, "ifeval.jsonl", golden.Select(g => g["doc"]!.AsObject().DeepClone().AsObject()));
        var responses = Write(root, "responses.jsonl", golden.Select((g, i) => new JsonObject { ["doc_id"] = i, ["resps"] = new JsonArray(g["response"]!.DeepClone()) }));
        var output = Path.Combine(root, "out");
        var (code, stdout, stderr) = CliRunner.Run("eval", "--tasks", "ifeval", "--data", docs, "--responses", responses, "--output", output);
        Assert.True(code == 0, stderr + stdout);
        var r = Results(output)["results"]!["ifeval"]!;
        foreach (var level in new[] { "strict", "loose" })
        {
            var verdicts = golden.Select(g => g[level]!.AsArray().Select(x => x!.GetValue<bool>() ? 1.0 : 0.0).ToList()).ToList();
            Assert.Equal(verdicts.Average(v => v.All(x => x == 1) ? 1.0 : 0.0), r[$"prompt_level_{level}_acc,none"]!.GetValue<double>(), 12);
            Assert.Equal(verdicts.SelectMany(v => v).Average(), r[$"inst_level_{level}_acc,none"]!.GetValue<double>(), 12);
            Assert.Equal("N/A", r[$"inst_level_{level}_acc_stderr,none"]!.GetValue<string>());
        }
    }

    [Fact]
    public void BadInputIsOneLineNamingFileLineAndFieldAndWritesNothing()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var output = Path.Combine(root, "out");
        void Fails(string expected, params string[] args)
        {
            var (code, stdout, stderr) = CliRunner.Run(["eval", "--model", model, "--output", output, .. args]);
            Assert.True(code == 2, $"exit {code}: {stderr}{stdout}");
            Assert.Contains(expected, stderr);
            Assert.Single(stderr.Trim().Split('\n'));
            Assert.False(Directory.Exists(output));
        }

        // A missing column: the template names the document's line and the field.
        var noQuestion = Write(root, "bad/arc.jsonl", [.. ArcRows(2), new JsonObject { ["choices"] = ArcRows(1).First()["choices"]!.DeepClone(), ["answerKey"] = "A" }]);
        Fails($"{noQuestion}:3: doc_to_text", "--tasks", "arc_easy", "--data", noQuestion);
        // An answer outside the choices.
        var outOfRange = Write(root, "bad/range.jsonl", [.. ArcRows(1), new JsonObject { ["question"] = "q", ["choices"] = ArcRows(1).First()["choices"]!.DeepClone(), ["answerKey"] = "Z" }]);
        Fails($"{outOfRange}:2: doc_to_target", "--tasks", "arc_easy", "--data", outOfRange);

        // Task files: choices that are not a list, an unknown field, a regex that does not compile.
        var yamlDir = Path.Combine(root, "yaml");
        Directory.CreateDirectory(yamlDir);
        var data = Write(root, "bad/rows.jsonl", [new JsonObject { ["q"] = "2+2", ["a"] = "4", ["c"] = "four" }]);
        string Task(string name, string body)
        {
            var path = Path.Combine(yamlDir, name);
            File.WriteAllText(path, $"task: {Path.GetFileNameWithoutExtension(name)}\ndoc_to_text: \"{{{{q}}}}\"\n" + body);
            return path;
        }
        Fails($"{data}:1: doc_to_choice", "--tasks", Task("notlist.yaml", "output_type: multiple_choice\ndoc_to_target: 0\ndoc_to_choice: \"{{c}}\"\n"), "--data", data);
        var unknown = Task("unknown.yaml", "output_type: generate_until\ndoc_to_target: a\nprocess_results_fn: 3\n");
        Fails($"{unknown}:5: process_results_fn: unknown or unsupported task field", "--tasks", unknown, "--data", data);
        var regex = Task("regex.yaml", "output_type: generate_until\ndoc_to_target: a\nfilter_list:\n  - name: x\n    filter:\n      - function: regex\n        regex_pattern: \"(unclosed\"\n");
        Fails("filter_list[0]", "--tasks", regex, "--data", data);
        var hook = Task("hook.yaml", "output_type: generate_until\ndoc_to_target: a\nprocess_docs: !function utils.process_docs\n");
        Fails("process_docs: !function utils.process_docs is not one of the built-in functions", "--tasks", hook, "--data", data);
        Fails("no such file or directory", "--tasks", "arc_easy", "--data", Path.Combine(root, "missing.jsonl"));
        Fails("is not a local directory: give the task's data with --data", "--tasks", "arc_easy");
        Fails("neither a built-in task", "--tasks", "no_such_task");
    }

    [Fact]
    public void TrainersLogTaskMetricsAndGrpoScoresEvalPrompts()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var arc = Write(root, "arc.jsonl", ArcRows(4));
        var sft = Write(root, "sft.jsonl", Enumerable.Range(0, 8).Select(i => new JsonObject { ["prompt"] = $"{i} + 1 =", ["completion"] = $" {i + 1}" }));
        var run = Path.Combine(root, "sft-run");
        var (code, stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", sft, "--output", run, "--max-steps", "2", "--batch-size", "4",
            "--eval-tasks", $"arc_easy={arc}", "--eval-tasks-limit", "3", "--eval-steps", "1", "--logging-steps", "1");
        Assert.True(code == 0, stderr + stdout);
        var evalLines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(m => m.ContainsKey("eval/arc_easy/acc,none")).ToList();
        Assert.Equal([1, 2], evalLines.Select(m => m["step"]!.GetValue<int>()));
        Assert.All(evalLines, m => Assert.InRange(m["eval/arc_easy/acc_norm,none"]!.GetValue<double>(), 0, 1));

        var prompts = Write(root, "prompts.jsonl", Enumerable.Range(1, 4).Select(i => new JsonObject { ["prompt"] = $"What is {i} plus {i}?", ["answer"] = $"{2 * i}" }));
        var grpo = Path.Combine(root, "grpo-run");
        (code, stdout, stderr) = CliRunner.Run("grpo", "--model", model, "--data", prompts, "--eval-data", prompts, "--output", grpo,
            "--num-generations", "2", "--batch-size", "4", "--max-completion-length", "4", "--max-steps", "1", "--reward", "math,format",
            "--format-pattern", ".*\\d.*", "--eval-num-generations", "2", "--eval-temperature", "1");
        Assert.True(code == 0, stderr + stdout);
        var last = File.ReadAllLines(Path.Combine(grpo, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Last(m => m.ContainsKey("eval_reward"));
        foreach (var key in new[] { "eval_reward", "eval_rewards/math/mean", "eval_rewards/format/mean", "eval_completions/mean_length" })
            Assert.True(last.ContainsKey(key), key);
        double total = last["eval_rewards/math/mean"]!.GetValue<double>() + last["eval_rewards/format/mean"]!.GetValue<double>();
        Assert.Equal(total, last["eval_reward"]!.GetValue<double>(), 9);
    }
}
