using System.Text.Json.Nodes;
using PostTrain.Checkpoints;

namespace PostTrain.Tests.Cli;

public class LoraCommandTests
{
    static (string Root, string Model, string Data) Setup()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var data = Path.Combine(root, "train.jsonl");
        var names = new[] { "Ada", "Linus", "Grace", "Alan" };
        File.WriteAllLines(data, Enumerable.Range(0, 24).Select(i => new JsonObject
        {
            ["prompt"] = $"Who wrote program {i}? ",
            ["completion"] = $"{names[i % names.Length]} did.",
        }.ToJsonString()));
        return (root, model, data);
    }

    static List<double> Losses(string output) =>
        File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject())
            .Where(m => m.ContainsKey("loss")).Select(m => m["loss"]!.GetValue<double>()).ToList();

    static string[] Sft(string model, string data, string output, params string[] extra) =>
        ["sft", "--model", model, "--data", data, "--output", output, "--batch-size", "4", "--logging-steps", "1",
         .. extra.Contains("--learning-rate") ? Array.Empty<string>() : ["--learning-rate", "0.01"], .. extra];

    [Fact]
    public void SftWithLoraWritesAPeftAdapterThatGenerateLogprobsAndMergeUse()
    {
        var (root, model, data) = Setup();
        var output = Path.Combine(root, "lora");
        var (code, stdout, stderr) = CliRunner.Run(Sft(model, data, output, "--lora", "--lora-r", "8", "--lora-alpha", "16", "--max-steps", "12", "--lora-dropout", "0"));
        Assert.True(code == 0, stderr + stdout);
        var losses = Losses(output);
        Assert.True(losses[^1] < losses[0] - 0.2, string.Join(", ", losses));
        // Only the adapter and the tokenizer: PEFT's layout.
        Assert.True(File.Exists(Path.Combine(output, PeftAdapter.ConfigFile)));
        Assert.True(File.Exists(Path.Combine(output, PeftAdapter.WeightsFile)));
        Assert.True(File.Exists(Path.Combine(output, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(output, HfCheckpoint.SingleFile)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(output, PeftAdapter.ConfigFile)))!;
        Assert.Equal(Path.GetFullPath(model), config["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal(7, config["target_modules"]!.AsArray().Count);
        Assert.Contains("lora: true", File.ReadAllText(Path.Combine(output, "config.yaml")));

        // Scores with the adapter equal scores of the merged model; without it, the base's.
        var input = Path.Combine(root, "score.jsonl");
        File.WriteAllText(input, "{\"text\": \"Who wrote program 5? Linus did.\"}\n{\"input_ids\": [5, 6, 7, 8]}\n");
        var withAdapter = CliRunner.Run("logprobs", "--model", model, "--adapter", output, "--input", input);
        Assert.True(withAdapter.ExitCode == 0, withAdapter.Stderr);
        var adapterOnly = CliRunner.Run("logprobs", "--model", output, "--input", input); // the adapter names its base
        Assert.Equal(withAdapter.Stdout, adapterOnly.Stdout);
        var baseScores = CliRunner.Run("logprobs", "--model", model, "--input", input);
        Assert.NotEqual(withAdapter.Stdout, baseScores.Stdout);

        var merged = Path.Combine(root, "merged");
        (code, stdout, stderr) = CliRunner.Run("merge", "--model", model, "--adapter", output, "--output", merged);
        Assert.True(code == 0, stderr);
        Assert.Contains("Merged the adapter (r 8, alpha 16, 14 layers)", stdout);
        var mergedScores = CliRunner.Run("logprobs", "--model", merged, "--input", input);
        Assert.True(mergedScores.ExitCode == 0, mergedScores.Stderr);
        static double[] Values(string jsonl) => jsonl.Trim().Split('\n').SelectMany(l => JsonNode.Parse(l)!["logprobs"]!.AsArray().Skip(1).Select(v => v!.GetValue<double>())).ToArray();
        var a = Values(withAdapter.Stdout);
        var b = Values(mergedScores.Stdout);
        Assert.Equal(a.Length, b.Length);
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], b[i], 1e-5);
        // In bfloat16, base and adapter together: the same scores to bfloat16's precision.
        var bf16 = CliRunner.Run("logprobs", "--model", model, "--adapter", output, "--input", input, "--dtype", "bf16");
        Assert.True(bf16.ExitCode == 0, bf16.Stderr);
        Assert.NotEqual(withAdapter.Stdout, bf16.Stdout);
        var c = Values(bf16.Stdout);
        for (int i = 0; i < a.Length; i++) Assert.Equal(a[i], c[i], 0.3);

        // Generation with the adapter says what it learned.
        var prompts = Path.Combine(root, "prompts.jsonl");
        File.WriteAllText(prompts, "{\"prompt\": \"Who wrote program 2? \"}\n");
        (code, stdout, stderr) = CliRunner.Run("generate", "--model", model, "--adapter", output, "--input", prompts, "--temperature", "0", "--max-new-tokens", "6");
        Assert.True(code == 0, stderr);
        Assert.Contains("\"completions\"", stdout);

        // merge refuses to overwrite.
        (code, _, stderr) = CliRunner.Run("merge", "--model", model, "--adapter", output, "--output", merged);
        Assert.Equal(2, code);
        Assert.Contains("exists and is not empty", stderr);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void LoraRunsResumeExactlyAndContinueFromAnAdapter()
    {
        var (root, model, data) = Setup();
        string[] lora = ["--lora", "--lora-r", "4", "--lora-dropout", "0.1", "--max-steps", "8", "--gradient-checkpointing"];
        var full = Path.Combine(root, "full");
        Assert.Equal(0, CliRunner.Run(Sft(model, data, full, [.. lora, "--save-steps", "100"])).ExitCode);
        var part = Path.Combine(root, "part");
        Assert.Equal(0, CliRunner.Run(Sft(model, data, part, [.. lora, "--save-steps", "4"])).ExitCode);
        Assert.True(File.Exists(Path.Combine(part, "checkpoint-4", PeftAdapter.WeightsFile)));
        Assert.False(File.Exists(Path.Combine(part, "checkpoint-4", HfCheckpoint.SingleFile)));
        File.Delete(Path.Combine(part, PeftAdapter.WeightsFile));
        var (code, stdout, stderr) = CliRunner.Run(Sft(model, data, part, [.. lora, "--save-steps", "4", "--resume"]));
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Losses(full);
        var b = Losses(part);
        Assert.Equal(8, b.Count);
        for (int i = 0; i < a.Count; i++) Assert.Equal(a[i], b[i], 1e-6); // dropout masks included

        // A new run can continue the adapter: it starts where the first ended.
        var more = Path.Combine(root, "more");
        (code, stdout, stderr) = CliRunner.Run(Sft(model, data, more, "--adapter", full, "--max-steps", "2", "--learning-rate", "0"));
        Assert.True(code == 0, stderr);
        Assert.True(Losses(more)[0] < a[0] - 0.1, $"{Losses(more)[0]} vs {a[0]}");
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void BfloatBaseAndBadLoraSettings()
    {
        var (root, model, data) = Setup();
        var output = Path.Combine(root, "bf16");
        var (code, stdout, stderr) = CliRunner.Run(Sft(model, data, output, "--lora", "--base-dtype", "bf16", "--max-steps", "6", "--lora-targets", "q_proj,v_proj"));
        Assert.True(code == 0, stderr + stdout);
        var losses = Losses(output);
        Assert.True(losses[^1] < losses[0], string.Join(", ", losses));
        Assert.Equal(["q_proj", "v_proj"], JsonNode.Parse(File.ReadAllText(Path.Combine(output, PeftAdapter.ConfigFile)))!["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));

        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--base-dtype", "bf16"], "--base-dtype: bfloat16 holds a frozen base: it needs --lora"),
                     (["--lora", "--lora-targets", "q_proj,lm_head"], "--lora-targets: 'lm_head' is not a linear layer"),
                     (["--lora", "--lora-r", "0"], "--lora-r: must be positive"),
                     (["--lora", "--lora-dropout", "1.5"], "--lora-dropout: must be in [0, 1)"),
                     (["--adapter", Path.Combine(root, "nowhere")], "not a LoRA adapter (no adapter_config.json)"),
                 })
        {
            var dir = Path.Combine(root, "bad-" + Guid.NewGuid().ToString("N"));
            (code, _, stderr) = CliRunner.Run(Sft(model, data, dir, [.. args, "--max-steps", "1"]));
            Assert.Equal(2, code);
            Assert.Contains(message, stderr);
            Assert.Single(stderr.Trim().Split('\n'));
        }
        (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--adapter", model, "--input", data);
        Assert.Equal(2, code);
        Assert.Contains("not a LoRA adapter", stderr);
    }
}
