using System.Text.Json.Nodes;
using PostTrain.Checkpoints;

namespace PostTrain.Tests.Cli;

public class SftCommandTests
{
    /// <summary>A tiny model with the tiny test tokenizer, and a directory to run in.</summary>
    static (string Root, string Model) Setup() => CliRunner.TinyModel("qwen2");

    static string PromptCompletionData(string root, int count, string name = "train.jsonl")
    {
        var path = Path.Combine(root, name);
        var names = new[] { "Ada", "Linus", "Grace", "Alan", "Barbara" };
        File.WriteAllLines(path, Enumerable.Range(0, count).Select(i => new JsonObject
        {
            ["prompt"] = $"Who wrote program {i}? ",
            ["completion"] = $"{names[i % names.Length]} did.",
        }.ToJsonString()));
        return path;
    }

    static List<JsonObject> Metrics(string output) =>
        File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void SftRunLeavesMetricsTensorBoardCheckpointsAndAFinalModel()
    {
        var (root, model) = Setup();
        var data = PromptCompletionData(root, 40);
        var eval = PromptCompletionData(root, 10, "eval.jsonl");
        var output = Path.Combine(root, "run");
        File.WriteAllText(Path.Combine(root, "sft.yaml"), "learning-rate: 0.003\nbatch-size: 8\nlogging-steps: 5\n# a comment\nsave-steps: 10\n");
        var (code, stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--eval-data", eval, "--output", output,
            "--config", Path.Combine(root, "sft.yaml"), "--max-steps", "20", "--batch-size", "4", "--eval-steps", "10");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("Data: 40 records, prompt-completion", stdout);

        var metrics = Metrics(output);
        var train = metrics.Where(m => m.ContainsKey("loss")).ToList();
        Assert.Equal([5L, 10L, 15L, 20L], train.Select(m => m["step"]!.GetValue<long>()));
        foreach (var key in new[] { "step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second", "mean_token_accuracy", "num_tokens" })
            Assert.All(train, m => Assert.True(m.ContainsKey(key), key));
        Assert.True(train[^1]["loss"]!.GetValue<double>() < train[0]["loss"]!.GetValue<double>());
        var evals = metrics.Where(m => m.ContainsKey("eval_loss")).ToList();
        Assert.Equal([10L, 20L], evals.Select(m => m["step"]!.GetValue<long>()));
        Assert.Equal(1.0, metrics.Single(m => m.ContainsKey("loss") && m["step"]!.GetValue<long>() == 10)["epoch"]!.GetValue<double>()); // 40 records in batches of 4

        Assert.NotEmpty(Directory.GetFiles(Path.Combine(output, "tensorboard"), "events.out.tfevents*", SearchOption.AllDirectories));
        Assert.True(Directory.Exists(Path.Combine(output, "checkpoint-10")));
        Assert.True(File.Exists(Path.Combine(output, "checkpoint-10", "optimizer.safetensors")));
        var config = File.ReadAllText(Path.Combine(output, "config.yaml"));
        Assert.Contains("learning-rate: 0.003", config);  // from the file
        Assert.Contains("batch-size: 4", config);         // the command line overrides it
        Assert.Contains("max-steps: 20", config);

        // The final model carries its tokenizer and scores text.
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        var input = Path.Combine(root, "score.jsonl");
        File.WriteAllText(input, "{\"text\": \"Who wrote program 3? Alan did.\"}\n{\"input_ids\": [5, 6, 7]}\n");
        (code, stdout, stderr) = CliRunner.Run("logprobs", "--model", output, "--input", input);
        Assert.True(code == 0, stderr);
        Assert.Equal(2, stdout.Trim().Split('\n').Length);
    }

    [Fact]
    public void ResumeContinuesTheRunExactly()
    {
        var (root, model) = Setup();
        var data = PromptCompletionData(root, 24);
        string[] common = ["sft", "--model", model, "--data", data, "--max-steps", "12", "--batch-size", "4", "--logging-steps", "1", "--learning-rate", "0.002", "--warmup-steps", "3"];
        var full = Path.Combine(root, "full");
        var first = CliRunner.Run([.. common, "--output", full, "--save-steps", "100"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        var part = Path.Combine(root, "part");
        var second = CliRunner.Run([.. common, "--output", part, "--save-steps", "5"]);
        Assert.True(second.ExitCode == 0, second.Stderr);
        // Lose everything after checkpoint-5, then resume from the latest checkpoint.
        foreach (var d in Directory.GetDirectories(part, "checkpoint-*").Where(d => !d.EndsWith("checkpoint-5"))) Directory.Delete(d, true);
        File.Delete(Path.Combine(part, "model.safetensors"));
        var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "5", "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Metrics(full);
        var b = Metrics(part);
        Assert.Equal(12, b.Count);
        for (int i = 0; i < a.Count; i++)
            Assert.Equal(a[i]["loss"]!.GetValue<double>(), b[i]["loss"]!.GetValue<double>(), 1e-6);
        // A run directory is not reused by accident.
        (code, _, stderr) = CliRunner.Run([.. common, "--output", full]);
        Assert.Equal(2, code);
        Assert.Contains("already holds a run", stderr);
    }

    [Fact]
    public void BadRecordFailsBeforeTheFirstStep()
    {
        var (root, model) = Setup();
        var data = PromptCompletionData(root, 30);
        var lines = File.ReadAllLines(data);
        lines[26] = "{\"prompt\": \"x\", \"completion\": null}";
        File.WriteAllLines(data, lines);
        var output = Path.Combine(root, "run");
        var (code, _, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--output", output, "--max-steps", "2");
        Assert.Equal(2, code);
        Assert.Equal($"error: {data}:27: completion: is null", stderr.Trim());
        Assert.False(Directory.Exists(output));
        (code, var stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--output", output, "--max-steps", "2", "--skip-invalid");
        Assert.True(code == 0, stderr);
        Assert.Contains("Skipped 1 invalid records", stdout);
    }

    [Fact]
    public void BadSettingsNameTheirSource()
    {
        var (root, model) = Setup();
        var data = PromptCompletionData(root, 4);
        File.WriteAllText(Path.Combine(root, "bad.yaml"), "learning-rate: 0.1\nbatch-sise: 3\n");
        var (code, _, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--output", Path.Combine(root, "o"), "--config", Path.Combine(root, "bad.yaml"));
        Assert.Equal(2, code);
        Assert.Equal($"error: {Path.Combine(root, "bad.yaml")}:2: batch-sise: unknown setting", stderr.Trim());
        (code, _, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--output", Path.Combine(root, "o"), "--lr-scheduler", "sawtooth");
        Assert.Equal(2, code);
        Assert.Contains("--lr-scheduler: 'sawtooth' is not one of constant, linear, cosine", stderr);
        (code, _, stderr) = CliRunner.Run("sft", "--data", data, "--output", Path.Combine(root, "o"));
        Assert.Equal(2, code);
        Assert.Contains("--model: required", stderr);
    }

    [Fact]
    public void ConversationalSftLearnsTheAssistantTurns()
    {
        var (root, model) = Setup();
        var data = Path.Combine(root, "chats.jsonl");
        var capitals = new[] { ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Peru", "Lima") };
        File.WriteAllLines(data, Enumerable.Range(0, 40).Select(i =>
        {
            var (country, city) = capitals[i % capitals.Length];
            return new JsonObject
            {
                ["messages"] = new JsonArray(
                    new JsonObject { ["role"] = "user", ["content"] = $"Capital of {country}?" },
                    new JsonObject { ["role"] = "assistant", ["content"] = $"{city}." }),
            }.ToJsonString();
        }));
        var score = Path.Combine(root, "score.jsonl");
        File.WriteAllText(score, "{\"messages\": [{\"role\": \"user\", \"content\": \"Capital of Peru?\"}, {\"role\": \"assistant\", \"content\": \"Lima.\"}]}\n");
        double Nll(string dir)
        {
            var (code, stdout, stderr) = CliRunner.Run("logprobs", "--model", dir, "--input", score);
            Assert.True(code == 0, stderr);
            return JsonNode.Parse(stdout.Trim())!["nll"]!.GetValue<double>();
        }
        double before = Nll(model);
        var output = Path.Combine(root, "run");
        var (code, stdout, stderr) = CliRunner.Run("sft", "--model", model, "--data", data, "--output", output,
            "--epochs", "8", "--batch-size", "8", "--learning-rate", "0.005", "--logging-steps", "10", "--save-steps", "0");
        Assert.True(code == 0, stderr);
        Assert.Contains("conversational", stdout);
        Assert.True(Nll(output) < before - 0.5, $"NLL before {before}, after {Nll(output)}");
    }
}
