using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Cli;

public class DemoCommandTests
{
    [Trait("Category", "Slow")]
    [Fact]
    public void QuickDemoRunsEveryStageAndWritesTheReport()
    {
        var root = TestModels.TempDir();
        var output = Path.Combine(root, "demo");
        var (code, stdout, stderr) = CliRunner.Run("demo", "--quick", "--output", output, "--seed", "3");
        Assert.True(code == 0, stderr + stdout);

        // The tokenizer learned from the corpus loads, with its chat template.
        var tokenizer = HfTokenizer.FromDirectory(Path.Combine(output, "tokenizer"));
        Assert.Equal("<|im_end|>", tokenizer.EosToken);
        Assert.NotNull(ChatTemplate.FromModelDirectory(Path.Combine(output, "tokenizer")));

        // Every stage is an ordinary run directory, evaluated with lm-eval's outputs.
        foreach (var run in new[] { "base", "sft", "dpo", "grpo", "ppo" })
        {
            Assert.True(File.Exists(Path.Combine(output, run, "metrics.jsonl")), run);
            Assert.True(File.Exists(Path.Combine(output, run, "config.yaml")), run);
            Assert.True(File.Exists(Path.Combine(output, run, "model.safetensors")), run);
            var results = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "eval", run, "results.json")))!["results"]!;
            foreach (var task in new[] { "arithmetic", "arithmetic_practised", "identity_orca", "identity_qwen", "capitals" })
                Assert.NotNull(results[task]);
            Assert.True(File.Exists(Path.Combine(output, "eval", run, "samples_arithmetic.jsonl")));
        }

        // PPO's reward model: a sequence classifier trained on pairs made from the DPO model's sampled answers,
        // each a right answer (by the math checker) chosen over a wrong one; PPO's value model beside its policy.
        var samples = File.ReadAllLines(Path.Combine(output, "data", "reward_samples.jsonl"));
        Assert.Equal(File.ReadAllLines(Path.Combine(output, "data", "reward_prompts.jsonl")).Length, samples.Length);
        Assert.All(samples, l => Assert.Equal(2, JsonNode.Parse(l)!["completions"]!.AsArray().Count));
        var pairs = File.ReadAllLines(Path.Combine(output, "data", "reward.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.NotEmpty(pairs);
        foreach (var pair in pairs)
        {
            var chosen = pair["chosen"]![0]!["content"]!.GetValue<string>();
            var rejected = pair["rejected"]![0]!["content"]!.GetValue<string>();
            Assert.NotEqual(chosen, rejected);
            Assert.Matches(@"#### \d+", chosen);
        }
        var rewardConfig = JsonNode.Parse(File.ReadAllText(Path.Combine(output, "reward", "config.json")))!;
        Assert.EndsWith("ForSequenceClassification", rewardConfig["architectures"]![0]!.GetValue<string>());
        Assert.True(File.Exists(Path.Combine(output, "reward", "metrics.jsonl")));
        Assert.True(File.Exists(Path.Combine(output, "ppo", "value_model", "config.json")));
        Assert.Contains(File.ReadLines(Path.Combine(output, "ppo", "metrics.jsonl")), l => l.Contains("\"objective/scores\""));
        // The math reward rides along with weight 0: every logged completion has its score, none counts in the total.
        var logged = File.ReadAllLines(Path.Combine(output, "ppo", "completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.NotEmpty(logged);
        Assert.All(logged, c =>
        {
            Assert.Contains(c["rewards"]!["math"]!.GetValue<double>(), new[] { 0.0, 1.0 });
            Assert.Equal(c["rewards"]!["model"]!.GetValue<double>(), c["reward"]!.GetValue<double>(), 1e-6);
        });
        Assert.True(File.Exists(Path.Combine(output, "compare", "dpo-ppo", "comparison.json")));

        // The report: the table with a column per stage, the commands, a PNG.
        var report = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("| task | base | sft | dpo | grpo | ppo |", report);
        Assert.Contains("## How the held-out addition problems were worked", report);
        foreach (var stage in new[] { "base", "sft", "dpo", "grpo", "ppo" }) Assert.Matches($@"\| {stage} \| \d+ \(\d+\) \| \d+ \(\d+\) \| \d+ \| \d+ \| \d+ \|", report);
        Assert.Contains("./posttrain sft --model", report);
        Assert.Contains("./posttrain dpo --model", report);
        Assert.Contains("./posttrain grpo --model", report);
        Assert.Contains("./posttrain generate --model", report);
        Assert.Contains("./posttrain reward --model", report);
        Assert.Contains("./posttrain ppo --model", report);
        Assert.Contains("./posttrain eval --model", report);
        var png = File.ReadAllBytes(Path.Combine(output, "report.png"));
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], png.Take(4));
        Assert.Contains("| task | base | sft | dpo | grpo | ppo |", stdout);

        // A second run replaces the demo; a directory that holds something else is refused.
        (code, stdout, stderr) = CliRunner.Run("demo", "--quick", "--output", output, "--seed", "3");
        Assert.True(code == 0, stderr + stdout);
        var other = Path.Combine(root, "other");
        Directory.CreateDirectory(other);
        File.WriteAllText(Path.Combine(other, "keep.txt"), "mine");
        (code, _, stderr) = CliRunner.Run("demo", "--quick", "--output", other);
        Assert.Equal(2, code);
        Assert.Contains("holds no earlier demo", stderr);
        Assert.True(File.Exists(Path.Combine(other, "keep.txt")));
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void QuickLoraDemoTrainsAdaptersAndMergesThemBetweenStages()
    {
        var output = Path.Combine(TestModels.TempDir(), "demo");
        var (code, stdout, stderr) = CliRunner.Run("demo", "--quick", "--lora", "--output", output);
        Assert.True(code == 0, stderr + stdout);
        foreach (var run in new[] { "sft", "dpo", "grpo", "ppo" })
            Assert.True(File.Exists(Path.Combine(output, run, "adapter_config.json")), run);
        Assert.True(File.Exists(Path.Combine(output, "sft-merged", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "dpo-merged", "model.safetensors")));
        var report = File.ReadAllText(Path.Combine(output, "report.md"));
        Assert.Contains("--lora", report);
        Assert.Contains("./posttrain merge --model", report);
    }
}
