using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Tokenization;
using Xunit.Abstractions;

namespace PostTrain.Tests.Cli;

public class DpoCommandTests(ITestOutputHelper output)
{
    static readonly string[] TrlMetrics =
        ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected"];

    /// <summary>A tiny model with the tiny test tokenizer (ChatML template), and a directory to run in.</summary>
    static (string Root, string Model) Setup() => CliRunner.TinyModel("qwen2", "--seed", "3");

    static JsonObject User(string text) => new() { ["role"] = "user", ["content"] = text };
    static JsonObject Assistant(string text) => new() { ["role"] = "assistant", ["content"] = text };
    static string Question(int i) => $"Question {i}: who are you?";

    static string WriteLines(string root, string name, IEnumerable<JsonObject> lines)
    {
        var path = Path.Combine(root, name);
        File.WriteAllLines(path, lines.Select(l => l.ToJsonString()));
        return path;
    }

    /// <summary>Explicit-prompt conversational pairs (TRL's format).</summary>
    static string TrlPairs(string root, string name, IEnumerable<int> questions, string chosen, string rejected) =>
        WriteLines(root, name, questions.Select(i => new JsonObject
        {
            ["prompt"] = new JsonArray(User(Question(i))),
            ["chosen"] = new JsonArray(Assistant(chosen)),
            ["rejected"] = new JsonArray(Assistant(rejected)),
        }));

    /// <summary>The same pairs in OpenAI's DPO fine-tuning JSONL.</summary>
    static string OpenAiPairs(string root, string name, IEnumerable<int> questions, string chosen, string rejected) =>
        WriteLines(root, name, questions.Select(i => new JsonObject
        {
            ["input"] = new JsonObject { ["messages"] = new JsonArray(User(Question(i))) },
            ["preferred_output"] = new JsonArray(Assistant(chosen)),
            ["non_preferred_output"] = new JsonArray(Assistant(rejected)),
        }));

    static List<JsonObject> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    /// <summary>Greedy answer of the model in <paramref name="dir"/> to a question, through its chat template.</summary>
    static string Answer(string dir, string question)
    {
        var tokenizer = HfTokenizer.FromDirectory(dir);
        var prompt = ChatTemplate.FromModelDirectory(dir).Render(new ChatTemplateInput
        {
            Messages = new JsonArray(User(question)), AddGenerationPrompt = true,
        }).Text;
        using var model = HfCheckpoint.Load(dir);
        var engine = new GenerationEngine(model, ids => tokenizer.Decode(ids, skipSpecialTokens: true));
        var completion = engine.Generate([tokenizer.Encode(prompt)], new SamplingOptions { Temperature = 0, MaxNewTokens = 12 })[0][0];
        return completion.Text!;
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void DpoMakesAModelTaughtOneNamePreferAnother()
    {
        var (root, model) = Setup();
        // SFT: the model learns to answer "I am Ada.".
        var sftData = WriteLines(root, "sft.jsonl", Enumerable.Range(0, 24).Select(i => new JsonObject
        {
            ["messages"] = new JsonArray(User(Question(i)), Assistant("I am Ada.")),
        }));
        var sft = Path.Combine(root, "sft");
        var (code, stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", sftData, "--output", sft,
            "--epochs", "10", "--batch-size", "8", "--learning-rate", "0.01", "--logging-steps", "10", "--save-steps", "0");
        Assert.True(code == 0, stderr + stdout);
        var before = Answer(sft, Question(30));
        output.WriteLine($"after SFT: {before}");
        Assert.Equal("I am Ada.", before);

        // DPO from the SFT'd model, with it as the reference: prefer "I am Zed." to "I am Ada.".
        var train = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 24), "I am Zed.", "I am Ada.");
        var heldOut = OpenAiPairs(root, "eval.jsonl", Enumerable.Range(30, 8), "I am Zed.", "I am Ada.");
        // Before any update the policy is the reference: no held-out pair is preferred yet (learning rate 0, one step).
        var still = Path.Combine(root, "still");
        (code, stdout, stderr) = CliRunner.Run("dpo", "--model", sft, "--data", train, "--eval-data", heldOut, "--output", still,
            "--max-steps", "1", "--learning-rate", "0", "--beta", "0.5", "--save-steps", "0");
        Assert.True(code == 0, stderr + stdout);
        var start = Metrics(still).Single(m => m.ContainsKey("eval_loss"));
        output.WriteLine($"held-out at the start: eval_loss {start["eval_loss"]}, eval_rewards/accuracies {start["eval_rewards/accuracies"]}");
        Assert.Equal(0.0, start["eval_rewards/accuracies"]!.GetValue<double>());
        Assert.Equal(Math.Log(2), start["eval_loss"]!.GetValue<double>(), 1e-6);

        var dpo = Path.Combine(root, "dpo");
        (code, stdout, stderr) = CliRunner.Run("dpo", "--model", sft, "--ref-model", sft, "--data", train, "--eval-data", heldOut, "--output", dpo,
            "--epochs", "12", "--batch-size", "8", "--learning-rate", "0.005", "--beta", "0.5", "--rpo-alpha", "1", "--logging-steps", "6", "--eval-steps", "6", "--save-steps", "0");
        Assert.True(code == 0, stderr + stdout);
        output.WriteLine(stdout);
        Assert.Contains("Data: 24 pairs, conversational preference", stdout);

        var metrics = Metrics(dpo);
        var trainLines = metrics.Where(m => m.ContainsKey("loss")).ToList();
        var evalLines = metrics.Where(m => m.ContainsKey("eval_loss")).ToList();
        foreach (var key in TrlMetrics)
        {
            Assert.All(trainLines, m => Assert.True(m.ContainsKey(key), key));
            Assert.All(evalLines, m => Assert.True(m.ContainsKey("eval_" + key), "eval_" + key));
        }
        var accuracies = evalLines.Select(m => m["eval_rewards/accuracies"]!.GetValue<double>()).ToList();
        output.WriteLine("held-out rewards/accuracies: " + string.Join(", ", accuracies));
        Assert.Equal(1.0, accuracies[^1]);
        Assert.True(evalLines[^1]["eval_rewards/margins"]!.GetValue<double>() > 0);
        // The loss is the DPO loss plus --rpo-alpha 1 times the chosen answers' NLL (logged as nll_loss).
        Assert.True(evalLines[^1]["eval_loss"]!.GetValue<double>() - evalLines[^1]["eval_nll_loss"]!.GetValue<double>() < Math.Log(2));

        var after = Answer(dpo, Question(30));
        output.WriteLine($"after DPO: {after}");
        Assert.Equal("I am Zed.", after);
    }

    [Fact]
    public void WithLoraTheReferenceIsTheBaseWithAdaptersOff()
    {
        var (root, model) = Setup();
        var data = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 16), "I am Zed.", "I am Ada.");
        List<JsonObject> Run(string name, params string[] extra)
        {
            var run = Path.Combine(root, name);
            var (code, stdout, stderr) = CliRunner.Run(["dpo", "--model", model, "--data", data, "--eval-data", data, "--output", run, "--lora", "--lora-r", "8",
                "--lora-dropout", "0", "--batch-size", "4", "--logging-steps", "1", "--save-steps", "0", "--beta", "0.5", .. extra]);
            Assert.True(code == 0, stderr + stdout);
            return Metrics(run);
        }
        // Step 0: fresh adapters (B = 0) leave the policy equal to its base, the reference.
        var start = Run("start", "--max-steps", "1", "--learning-rate", "0").Single(m => m.ContainsKey("eval_loss"));
        Assert.Equal(Math.Log(2), start["eval_loss"]!.GetValue<double>(), 1e-6);
        Assert.Equal(0.0, start["eval_rewards/margins"]!.GetValue<double>(), 1e-9);

        // Training moves only the adapters; the base (adapters off) stays the reference: the same
        // run with the base loaded a second time as --ref-model gives the same metrics.
        var baseOff = Run("lora", "--max-steps", "8", "--learning-rate", "0.02");
        var separate = Run("separate", "--max-steps", "8", "--learning-rate", "0.02", "--ref-model", model);
        Assert.Equal(baseOff.Count, separate.Count);
        for (int i = 0; i < baseOff.Count; i++)
            foreach (var (key, value) in baseOff[i].Where(kv => kv.Key.Contains('/') || kv.Key.EndsWith("loss")))
                Assert.Equal(value!.GetValue<double>(), separate[i][key]!.GetValue<double>(), 1e-5);
        var end = baseOff.Last(m => m.ContainsKey("eval_loss"));
        output.WriteLine($"LoRA DPO: eval_loss {end["eval_loss"]}, eval_rewards/accuracies {end["eval_rewards/accuracies"]}, margins {end["eval_rewards/margins"]}");
        Assert.True(end["eval_rewards/margins"]!.GetValue<double>() > 0.1);
        Assert.True(end["eval_loss"]!.GetValue<double>() < Math.Log(2) - 0.05);
        Assert.True(File.Exists(Path.Combine(root, "lora", PeftAdapter.WeightsFile)));
        Assert.False(File.Exists(Path.Combine(root, "lora", HfCheckpoint.SingleFile)));
    }

    [Fact]
    public void PrecomputedReferenceLogpsGiveTheSameRunOnStringPairs()
    {
        var (root, model) = Setup();
        var names = new[] { "Ada", "Linus", "Grace", "Alan" };
        var data = WriteLines(root, "implicit.jsonl", Enumerable.Range(0, 12).Select(i => new JsonObject
        {
            ["chosen"] = $"Who wrote program {i}? {names[i % 4]} did.",
            ["rejected"] = $"Who wrote program {i}? Nobody did.",
        }));
        List<JsonObject> Run(string name, params string[] extra)
        {
            var run = Path.Combine(root, name);
            var (code, stdout, stderr) = CliRunner.Run(["dpo", "--model", model, "--data", data, "--eval-data", data, "--output", run, "--max-steps", "4",
                "--batch-size", "4", "--learning-rate", "0.001", "--logging-steps", "1", "--save-steps", "0", "--loss-type", "robust", "--label-smoothing", "0.1", .. extra]);
            Assert.True(code == 0, stderr + stdout);
            Assert.Contains("Data: 12 pairs, preference with implicit prompt", stdout);
            return Metrics(run);
        }
        var live = Run("live");
        var precomputed = Run("precomputed", "--precompute-ref-logps");
        Assert.Equal(live.Count, precomputed.Count);
        for (int i = 0; i < live.Count; i++)
            foreach (var (key, value) in live[i].Where(kv => kv.Key.Contains('/') || kv.Key.EndsWith("loss")))
                Assert.Equal(value!.GetValue<double>(), precomputed[i][key]!.GetValue<double>(), 1e-5);
        var config = File.ReadAllText(Path.Combine(root, "precomputed", "config.yaml"));
        Assert.Contains("loss-type: robust", config);
        Assert.Contains("precompute-ref-logps: true", config);
        Assert.Contains("beta: 0.1", config);
    }

    [Fact]
    public void BadInputFailsBeforeTheFirstStepWithNothingWritten()
    {
        var (root, model) = Setup();
        var data = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 6), "I am Zed.", "I am Ada.");
        var lines = File.ReadAllLines(data);
        lines[4] = """{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}""";
        File.WriteAllLines(data, lines);
        var run = Path.Combine(root, "run");
        var (code, stdout, stderr) = CliRunner.Run("dpo", "--model", model, "--data", data, "--output", run, "--max-steps", "1");
        Assert.Equal(2, code);
        Assert.Equal($"error: {data}:5: rejected: is a string, but this dataset's prompts and completions are message lists", stderr.Trim());
        Assert.False(Directory.Exists(run));
        (code, _, stderr) = CliRunner.Run("dpo", "--model", model, "--data", data, "--output", run, "--label-smoothing", "0.5");
        Assert.Equal(2, code);
        Assert.Contains("--label-smoothing: must be in [0, 0.5)", stderr);
        (code, _, stderr) = CliRunner.Run("dpo", "--model", model, "--data", data, "--output", run, "--loss-type", "kto");
        Assert.Equal(2, code);
        Assert.Contains("--loss-type: 'kto' is not one of sigmoid, robust, ipo, hinge", stderr);
        Assert.False(Directory.Exists(run));
        (code, stdout, stderr) = CliRunner.Run("dpo", "--model", model, "--data", data, "--output", run, "--max-steps", "1", "--skip-invalid", "--batch-size", "2");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("Skipped 1 invalid records", stdout);
        Assert.Contains("learning-rate: 1E-06", File.ReadAllText(Path.Combine(run, "config.yaml")));
    }

    [Fact]
    public void ResumeContinuesADpoRunExactly()
    {
        var (root, model) = Setup();
        var data = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 12), "I am Zed.", "I am Ada.");
        string[] common = ["dpo", "--model", model, "--data", data, "--max-steps", "6", "--batch-size", "4", "--logging-steps", "1", "--learning-rate", "0.002", "--precompute-ref-logps"];
        var full = Path.Combine(root, "full");
        var first = CliRunner.Run([.. common, "--output", full, "--save-steps", "0"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        var part = Path.Combine(root, "part");
        var second = CliRunner.Run([.. common, "--output", part, "--save-steps", "3"]);
        Assert.True(second.ExitCode == 0, second.Stderr);
        File.Delete(Path.Combine(part, "model.safetensors"));
        var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "3", "--resume", Path.Combine(part, "checkpoint-3")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Metrics(full);
        var b = Metrics(part);
        Assert.Equal(6, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in TrlMetrics)
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
    }

    /// <summary>An SFT LoRA adapter (lora_dropout 0.5) that answers "I am Ada.", trained by `posttrain sft --lora`.</summary>
    static string SftAdapter(string root, string model)
    {
        var sftData = WriteLines(root, "sft.jsonl", Enumerable.Range(0, 16).Select(i => new JsonObject
        {
            ["messages"] = new JsonArray(User(Question(i)), Assistant("I am Ada.")),
        }));
        var sft = Path.Combine(root, "sft");
        var (code, stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", sftData, "--output", sft, "--lora", "--lora-r", "8",
            "--lora-dropout", "0.5", "--max-steps", "6", "--batch-size", "8", "--learning-rate", "0.01", "--logging-steps", "6", "--save-steps", "0");
        Assert.True(code == 0, stderr + stdout);
        return sft;
    }

    [Fact]
    public void ContinuingAnSftAdapterTheReferenceIsTheSftModel()
    {
        var (root, model) = Setup();
        var sft = SftAdapter(root, model);
        var data = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 16), "I am Zed.", "I am Ada.");
        List<JsonObject> Run(string name, params string[] extra)
        {
            var run = Path.Combine(root, name);
            var (code, stdout, stderr) = CliRunner.Run(["dpo", "--model", model, "--adapter", sft, "--data", data, "--eval-data", data, "--output", run,
                "--batch-size", "4", "--logging-steps", "1", "--save-steps", "0", "--beta", "0.5", .. extra]);
            Assert.True(code == 0, stderr + stdout);
            return Metrics(run);
        }
        double Get(JsonObject m, string key) => m[key]!.GetValue<double>();

        // Before any update the policy is the SFT model, and so is the reference: margins 0, loss ln 2,
        // in training mode too, since dropout (the adapter's lora_dropout 0.5) is off by default, as in TRL.
        var start = Run("start", "--max-steps", "1", "--learning-rate", "0");
        var (train, eval) = (start.Single(m => m.ContainsKey("loss")), start.Single(m => m.ContainsKey("eval_loss")));
        Assert.Equal(Math.Log(2), Get(train, "loss"), 1e-7);
        Assert.Equal(0.0, Get(train, "rewards/margins"));
        Assert.Equal(0.0, Get(train, "rewards/chosen"));
        Assert.Equal(Math.Log(2), Get(eval, "eval_loss"), 1e-7);
        Assert.Contains("disable-dropout: true", File.ReadAllText(Path.Combine(root, "start", "config.yaml")));

        // --disable-dropout false (or disable-dropout: false in the --config file) keeps dropout in the
        // policy's training forward, so its log-probabilities move off the reference's; evaluation has none.
        foreach (var (name, args) in new (string, string[])[]
                 {
                     ("dropout", ["--disable-dropout", "false"]),
                     ("dropout-yaml", ["--config", WriteYaml(root, "disable-dropout: false\n")]),
                 })
        {
            var noisy = Run(name, ["--max-steps", "1", "--learning-rate", "0", .. args]);
            Assert.True(Math.Abs(Get(noisy.Single(m => m.ContainsKey("loss")), "loss") - Math.Log(2)) > 1e-4);
            Assert.Equal(Math.Log(2), Get(noisy.Single(m => m.ContainsKey("eval_loss")), "eval_loss"), 1e-7);
            Assert.Contains("disable-dropout: false", File.ReadAllText(Path.Combine(root, name, "config.yaml")));
        }

        // The bare base, the reference before, is not the SFT model: the margins start away from 0.
        var againstBase = Run("against-base", "--max-steps", "1", "--learning-rate", "0", "--ref-model", model);
        Assert.True(Math.Abs(Get(againstBase.Single(m => m.ContainsKey("loss")), "rewards/margins")) > 1e-3);

        // While the adapter trains, the reference stays base + SFT adapter: the same run against the
        // SFT model merged and loaded on its own gives the same metrics, and so does a run that
        // scores the reference once before training.
        var merged = Path.Combine(root, "merged");
        var (code, _, stderr) = CliRunner.Run("merge", "--model", model, "--adapter", sft, "--output", merged);
        Assert.True(code == 0, stderr);
        var frozen = Run("frozen", "--max-steps", "6", "--learning-rate", "0.02");
        var separate = Run("separate", "--max-steps", "6", "--learning-rate", "0.02", "--ref-model", merged);
        var precomputed = Run("precomputed", "--max-steps", "6", "--learning-rate", "0.02", "--precompute-ref-logps");
        foreach (var other in new[] { separate, precomputed })
        {
            Assert.Equal(frozen.Count, other.Count);
            for (int i = 0; i < frozen.Count; i++)
                foreach (var (key, value) in frozen[i].Where(kv => kv.Key.Contains('/') || kv.Key.EndsWith("loss")))
                    Assert.Equal(value!.GetValue<double>(), Get(other[i], key), 1e-5);
        }
        var end = frozen.Last(m => m.ContainsKey("eval_loss"));
        output.WriteLine($"DPO on the SFT adapter: eval_loss {end["eval_loss"]}, eval_rewards/margins {end["eval_rewards/margins"]}");
        Assert.True(Get(end, "eval_rewards/margins") > 0.1);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ResumingAContinuedAdapterKeepsTheAdapterAsLoadedAsReference()
    {
        var (root, model) = Setup();
        var sft = SftAdapter(root, model);
        var data = TrlPairs(root, "pairs.jsonl", Enumerable.Range(0, 12), "I am Zed.", "I am Ada.");
        string[] common = ["dpo", "--model", model, "--adapter", sft, "--data", data, "--max-steps", "6", "--batch-size", "4", "--logging-steps", "1",
            "--learning-rate", "0.02", "--beta", "0.5", "--disable-dropout", "false"];
        var full = Path.Combine(root, "full");
        var first = CliRunner.Run([.. common, "--output", full, "--save-steps", "0"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        var part = Path.Combine(root, "part");
        var second = CliRunner.Run([.. common, "--output", part, "--save-steps", "3"]);
        Assert.True(second.ExitCode == 0, second.Stderr);
        File.Delete(Path.Combine(part, PeftAdapter.WeightsFile));
        var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "3", "--resume", Path.Combine(part, "checkpoint-3")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Metrics(full);
        var b = Metrics(part);
        Assert.Equal(6, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in TrlMetrics)
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
    }

    static string WriteYaml(string root, string text)
    {
        var path = Path.Combine(root, $"settings-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, text);
        return path;
    }
}
