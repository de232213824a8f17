using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Rewards;
using Xunit.Abstractions;

namespace PostTrain.Tests.Cli;

public class RewardCommandTests(ITestOutputHelper output)
{
    static readonly string[] TrlMetrics = ["loss", "accuracy", "margin", "mean_reward", "min_reward", "max_reward"];
    static readonly string[] Words = ["red", "blue", "green", "small", "big", "old", "new", "cold", "warm", "soft", "dark", "round"];

    static JsonObject User(string text) => new() { ["role"] = "user", ["content"] = text };
    static JsonObject Assistant(string text) => new() { ["role"] = "assistant", ["content"] = text };

    /// <summary>
    /// Pairs whose chosen answer has the word "apple" among three random words and whose rejected
    /// answer has "stone" in its place (TRL's explicit-prompt conversational format).
    /// </summary>
    static List<(JsonArray Prompt, string Chosen, string Rejected)> WordPairs(int count, int seed)
    {
        var random = new Random(seed);
        var pairs = new List<(JsonArray, string, string)>();
        for (int i = 0; i < count; i++)
        {
            var words = Enumerable.Range(0, 3).Select(_ => Words[random.Next(Words.Length)]).ToList();
            int at = random.Next(4);
            string With(string word) => string.Join(" ", words.Take(at).Append(word).Concat(words.Skip(at))) + ".";
            pairs.Add((new JsonArray(User($"Name things, {seed * 100 + i}.")), With("apple"), With("stone")));
        }
        return pairs;
    }

    static string Write(string root, string name, IEnumerable<(JsonArray Prompt, string Chosen, string Rejected)> pairs) =>
        WriteLines(root, name, pairs.Select(p => new JsonObject
        {
            ["prompt"] = p.Prompt.DeepClone(),
            ["chosen"] = new JsonArray(Assistant(p.Chosen)),
            ["rejected"] = new JsonArray(Assistant(p.Rejected)),
        }));

    static string WriteLines(string root, string name, IEnumerable<JsonObject> lines)
    {
        var path = Path.Combine(root, name);
        File.WriteAllLines(path, lines.Select(l => l.ToJsonString()));
        return path;
    }

    static List<JsonObject> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    static string[] Reward(string model, string data, string output, params string[] extra) =>
        ["reward", "--model", model, "--data", data, "--output", output, "--batch-size", "8", "--logging-steps", "3", "--save-steps", "0", .. extra];

    /// <summary>
    /// Scores the held-out pairs through the GRPO reward-model scorer (RewardModel, the --reward-model
    /// path) and checks them against the trainer's last evaluation: one eval batch, so its accuracy,
    /// mean, min and max reward are those of these scores.
    /// </summary>
    void ScorerAgreesWithTheLastEvaluation(string dir, List<(JsonArray Prompt, string Chosen, string Rejected)> heldOut, JsonObject eval)
    {
        using var scorer = RewardModel.Load(dir);
        RewardSample Sample(JsonArray prompt, string completion) => new("", prompt, completion, [], new JsonObject());
        var chosen = scorer.Score(heldOut.Select(p => Sample(p.Prompt, p.Chosen)).ToList()).Select(s => s!.Value).ToArray();
        var rejected = scorer.Score(heldOut.Select(p => Sample(p.Prompt, p.Rejected)).ToList()).Select(s => s!.Value).ToArray();
        var all = chosen.Concat(rejected).ToArray();
        var expected = new Dictionary<string, double>
        {
            ["eval_accuracy"] = chosen.Zip(rejected).Average(x => x.First > x.Second ? 1.0 : 0.0),
            ["eval_margin"] = chosen.Zip(rejected).Average(x => x.First - x.Second),
            ["eval_mean_reward"] = all.Average(),
            ["eval_min_reward"] = all.Min(),
            ["eval_max_reward"] = all.Max(),
        };
        foreach (var (key, value) in expected)
            Assert.True(Math.Abs(eval[key]!.GetValue<double>() - value) < 1e-4, $"{key}: trainer {eval[key]}, scorer {value}");
    }

    [Fact]
    public void ARewardModelLearnsToPreferAWordAndTheRewardModelScorerReadsItsOutput()
    {
        var (root, model) = CliRunner.TinyModel("qwen2", "--seed", "3");
        var train = Write(root, "train.jsonl", WordPairs(32, seed: 1));
        var heldOut = WordPairs(8, seed: 2);
        var eval = Write(root, "eval.jsonl", heldOut);
        var run = Path.Combine(root, "rm");
        var (code, stdout, stderr) = CliRunner.Run(Reward(model, train, run, "--eval-data", eval, "--epochs", "3", "--learning-rate", "0.003", "--eval-steps", "4"));
        Assert.True(code == 0, stderr + stdout);
        output.WriteLine(stdout);
        Assert.Contains("Data: 32 pairs, conversational preference", stdout);
        Assert.Contains("a new score head [1, 32]", stdout);

        var metrics = Metrics(run);
        var trainLines = metrics.Where(m => m.ContainsKey("loss")).ToList();
        var evalLines = metrics.Where(m => m.ContainsKey("eval_loss")).ToList();
        foreach (var key in TrlMetrics)
        {
            Assert.All(trainLines, m => Assert.True(m.ContainsKey(key), key));
            Assert.All(evalLines, m => Assert.True(m.ContainsKey("eval_" + key), "eval_" + key));
        }
        Assert.All(trainLines, m => Assert.True(m.ContainsKey("num_tokens")));
        var accuracies = evalLines.Select(m => m["eval_accuracy"]!.GetValue<double>()).ToList();
        output.WriteLine("held-out accuracy: " + string.Join(", ", accuracies));
        Assert.True(accuracies[^1] >= 0.9, $"held-out accuracy {accuracies[^1]}");
        Assert.True(evalLines[^1]["eval_loss"]!.GetValue<double>() < evalLines[0]["eval_loss"]!.GetValue<double>());

        // transformers' Qwen2ForSequenceClassification layout: no lm_head, no generation config.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!.AsObject();
        Assert.Equal("Qwen2ForSequenceClassification", config["architectures"]![0]!.GetValue<string>());
        Assert.Equal("""{"0":"LABEL_0"}""", config["id2label"]!.ToJsonString());
        Assert.Equal(266, config["pad_token_id"]!.GetValue<int>()); // the tokenizer's <|endoftext|>
        Assert.False(File.Exists(Path.Combine(run, "generation_config.json")));
        Assert.True(File.Exists(Path.Combine(run, "tokenizer.json")));
        using (var weights = SafeTensorsFile.Open(Path.Combine(run, HfCheckpoint.SingleFile)))
        {
            Assert.Equal([1L, 32L], weights.Tensors["score.weight"].Shape);
            Assert.All(weights.Tensors.Keys, k => Assert.True(k == "score.weight" || k.StartsWith("model.", StringComparison.Ordinal), k));
        }
        ScorerAgreesWithTheLastEvaluation(run, heldOut, evalLines[^1]);
    }

    [Fact]
    public void WithLoraTheOutputIsAPeftSequenceClassificationAdapterThatTheScorerLoads()
    {
        var (root, model) = CliRunner.TinyModel("llama", "--seed", "4");
        var train = Write(root, "train.jsonl", WordPairs(24, seed: 3));
        var heldOut = WordPairs(8, seed: 4);
        var eval = Write(root, "eval.jsonl", heldOut);
        var run = Path.Combine(root, "lora");
        var (code, stdout, stderr) = CliRunner.Run(Reward(model, train, run, "--eval-data", eval, "--lora", "--lora-r", "4", "--max-steps", "9",
            "--learning-rate", "0.01"));
        Assert.True(code == 0, stderr + stdout);
        var last = Metrics(run).Last(m => m.ContainsKey("eval_loss"));
        output.WriteLine($"LoRA reward model: eval_loss {last["eval_loss"]}, eval_accuracy {last["eval_accuracy"]}");
        Assert.True(last["eval_loss"]!.GetValue<double>() < Math.Log(2));

        var adapter = JsonNode.Parse(File.ReadAllText(Path.Combine(run, PeftAdapter.ConfigFile)))!.AsObject();
        Assert.Equal("SEQ_CLS", adapter["task_type"]!.GetValue<string>());
        Assert.Equal("""["classifier","score"]""", adapter["modules_to_save"]!.ToJsonString());
        Assert.Equal(Path.GetFullPath(model), adapter["base_model_name_or_path"]!.GetValue<string>());
        using (var weights = SafeTensorsFile.Open(Path.Combine(run, PeftAdapter.WeightsFile)))
        {
            Assert.Equal("F32", weights.Tensors[PeftAdapter.ScoreTensor].DType);
            Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", weights.Tensors.Keys);
        }
        Assert.False(File.Exists(Path.Combine(run, HfCheckpoint.SingleFile)));
        ScorerAgreesWithTheLastEvaluation(run, heldOut, last);
        // A causal-LM consumer refuses the classifier's adapter, naming the field.
        var prompts = WriteLines(root, "prompts.jsonl", [new JsonObject { ["prompt"] = "Name things." }]);
        (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--adapter", run, "--input", prompts);
        Assert.Equal(2, code);
        Assert.Contains("adapter_config.json: modules_to_save: not supported", stderr);
    }

    [Trait("Category", "Slow")]
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ResumeContinuesARewardRunExactly(bool lora)
    {
        var (root, model) = CliRunner.TinyModel("qwen2", "--seed", "5");
        var data = Write(root, "train.jsonl", WordPairs(16, seed: 5));
        string[] common = ["reward", "--model", model, "--data", data, "--max-steps", "6", "--batch-size", "4", "--gradient-accumulation-steps", "2",
            "--logging-steps", "1", "--learning-rate", "0.003", "--weight-decay", "0.1", .. lora ? new[] { "--lora", "--lora-r", "4", "--disable-dropout", "false", "--base-dtype", "bfloat16" } : []];
        var full = Path.Combine(root, "full");
        var first = CliRunner.Run([.. common, "--output", full, "--save-steps", "0"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        var part = Path.Combine(root, "part");
        var second = CliRunner.Run([.. common, "--output", part, "--save-steps", "3"]);
        Assert.True(second.ExitCode == 0, second.Stderr);
        Assert.True(File.Exists(Path.Combine(part, "checkpoint-3", "extra_modules.safetensors")));
        var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "3", "--resume", Path.Combine(part, "checkpoint-3")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Metrics(full);
        var b = Metrics(part);
        Assert.Equal(6, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in TrlMetrics.Append("grad_norm").Append("num_tokens"))
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
        var file = lora ? PeftAdapter.WeightsFile : HfCheckpoint.SingleFile;
        using var x = SafeTensorsFile.Open(Path.Combine(full, file));
        using var y = SafeTensorsFile.Open(Path.Combine(part, file));
        foreach (var name in x.Tensors.Keys)
        {
            using var p = x.Load(name);
            using var q = y.Load(name);
            Assert.True(p.allclose(q, rtol: 0, atol: 1e-6), name);
        }
    }

    [Fact]
    public void StringPairsKeepMarginsDropTooLongPairsAndReportTies()
    {
        var (root, model) = CliRunner.TinyModel("qwen2", "--seed", "6");
        var lines = Enumerable.Range(0, 10).Select(i => new JsonObject
        {
            ["chosen"] = $"Question {i}: is it good? Yes, apple.",
            ["rejected"] = $"Question {i}: is it good? No, stone.",
            ["margin"] = i * 0.5,
        }).ToList();
        lines[3]["chosen"] = "Question 3: " + string.Concat(Enumerable.Repeat("very long ", 20));
        lines[7]["rejected"] = lines[7]["chosen"]!.GetValue<string>();
        var data = WriteLines(root, "implicit.jsonl", lines);
        var run = Path.Combine(root, "run");
        var (code, stdout, stderr) = CliRunner.Run(Reward(model, data, run, "--max-steps", "2", "--max-length", "64", "--center-rewards-coefficient", "0.01"));
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("Data: 10 pairs, preference with implicit prompt {\"chosen\", \"rejected\"} as strings, with margins", stdout);
        Assert.Contains("Dropped 1 of 10 train pairs longer than --max-length 64 (chosen or rejected), as TRL does", stdout);
        Assert.Contains($"Warning: 1 train pairs have identical chosen and rejected tokens (first: {data}:8)", stdout);
        Assert.Contains("Training 9 units", stdout);
        var config = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains("center-rewards-coefficient: 0.01", config);
        Assert.Contains("learning-rate: 0.0001", config); // TRL's RewardConfig default
    }

    [Fact]
    public void BadInputFailsBeforeTheFirstStepWithOneLineAndNothingWritten()
    {
        var (root, model) = CliRunner.TinyModel("qwen2", "--seed", "7");
        var run = Path.Combine(root, "run");
        (int, string) Fails(string name, IEnumerable<string> lines, params string[] extra)
        {
            var data = Path.Combine(root, name);
            File.WriteAllLines(data, lines);
            var (code, _, stderr) = CliRunner.Run([.. Reward(model, data, run, "--max-steps", "1"), .. extra]);
            Assert.False(Directory.Exists(run));
            return (code, stderr.Trim());
        }
        string Good(int i, string margin = "") => $$"""{"prompt": "q{{i}}", "chosen": " a", "rejected": " b"{{margin}}}""";

        var (code, stderr) = Fails("bad.jsonl", [Good(0), Good(1), """{"prompt": "q", "chosen": " a", "rejected": 7}"""]);
        Assert.Equal(2, code);
        Assert.Equal($"error: {Path.Combine(root, "bad.jsonl")}:3: rejected: expected a string, got a number", stderr);

        (code, stderr) = Fails("margin.jsonl", [Good(0, ", \"margin\": 1"), Good(1, ", \"margin\": \"high\"")]);
        Assert.Equal(2, code);
        Assert.Equal($"error: {Path.Combine(root, "margin.jsonl")}:2: margin: expected a number, got a string", stderr);

        (code, stderr) = Fails("some.jsonl", [Good(0, ", \"margin\": 1"), Good(1)]);
        Assert.Equal(2, code);
        Assert.Equal($"error: {Path.Combine(root, "some.jsonl")}:2: margin: missing, but {Path.Combine(root, "some.jsonl")}:1 has one; give every record of a dataset a margin, or none", stderr);

        (code, stderr) = Fails("good.jsonl", [Good(0), Good(1)], "--center-rewards-coefficient", "-1");
        Assert.Equal(2, code);
        Assert.Equal("error: --center-rewards-coefficient: must be a non-negative number, got -1", stderr);
    }
}
