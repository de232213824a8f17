using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;

namespace PostTrain.Tests.Cli;

public class GrpoCommandTests
{
    static (string Root, string Model) Setup() => CliRunner.TinyModel("qwen2");

    static string Write(string root, string name, IEnumerable<JsonObject> lines)
    {
        var path = Path.Combine(root, name);
        File.WriteAllLines(path, lines.Select(l => l.ToJsonString()));
        return path;
    }

    static List<JsonObject> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void GrpoOnGsm8kFieldsWithMathAndFormatRewards()
    {
        var (root, model) = Setup();
        var data = Write(root, "gsm8k.jsonl", Enumerable.Range(1, 8).Select(i => new JsonObject
        {
            ["question"] = $"What is {i} plus {i}?",
            ["answer"] = $"{i} plus {i} makes {2 * i}.\n#### {2 * i}",
        }));
        var run = Path.Combine(root, "run");
        var (code, stdout, stderr) = CliRunner.Run("grpo", "--model", model, "--data", data, "--output", run, "--prompt-field", "question",
            "--reward", "math,format", "--format-pattern", ".*\\d.*", "--reward-weights", "1,0.5", "--num-generations", "4", "--batch-size", "8",
            "--max-completion-length", "8", "--max-steps", "3", "--logging-steps", "1", "--log-completions-steps", "2", "--loss-type", "dr_grpo",
            "--learning-rate", "0.001", "--save-steps", "2");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("Data: 8 prompts, text prompts", stdout);
        var metrics = Metrics(run);
        Assert.Equal(3, metrics.Count);
        foreach (var key in new[] { "loss", "reward", "reward_std", "rewards/math/mean", "rewards/format/mean", "clip_ratio/low_mean", "clip_ratio/high_mean",
                     "clip_ratio/region_mean", "completions/mean_length", "completions/clipped_ratio", "entropy", "frac_reward_zero_std", "learning_rate", "grad_norm" })
            Assert.All(metrics, m => Assert.True(m.ContainsKey(key), key));
        Assert.DoesNotContain(metrics, m => m.ContainsKey("kl")); // beta 0: no reference at all
        var logged = File.ReadAllLines(Path.Combine(run, "completions.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([0, 2], logged.Select(l => l["step"]!.GetValue<int>()).Distinct());
        Assert.Equal(16, logged.Count); // 2 sampled steps x 2 prompts x 4 samples
        Assert.All(logged, l =>
        {
            Assert.StartsWith("What is", l["prompt"]!.GetValue<string>());
            Assert.NotNull(l["rewards"]!["math"]);
            double math = l["rewards"]!["math"]!.GetValue<double>(), format = l["rewards"]!["format"]!.GetValue<double>();
            Assert.Equal(math + 0.5 * format, l["reward"]!.GetValue<double>(), 9);
        });
        var config = File.ReadAllText(Path.Combine(run, "config.yaml"));
        Assert.Contains("loss-type: dr_grpo", config);
        Assert.True(File.Exists(Path.Combine(run, "checkpoint-2", "optimizer.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, HfCheckpoint.SingleFile)));
        // The saved settings read back as a --config file.
        (code, stdout, stderr) = CliRunner.Run("grpo", "--config", Path.Combine(run, "config.yaml"), "--output", Path.Combine(root, "again"), "--max-steps", "1");
        Assert.True(code == 0, stderr + stdout);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ResumeContinuesAGrpoRunExactly()
    {
        var (root, model) = Setup();
        var data = Write(root, "p.jsonl", Enumerable.Range(1, 6).Select(i => new JsonObject { ["prompt"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = $"Say {i}." }), ["answer"] = $"{i}" }));
        string[] common = ["grpo", "--model", model, "--data", data, "--reward", "math", "--num-generations", "3", "--batch-size", "6", "--max-completion-length", "6",
            "--max-steps", "6", "--num-iterations", "2", "--logging-steps", "1", "--learning-rate", "0.01", "--beta", "0.1", "--lora", "--lora-dropout", "0.1"];
        var full = Path.Combine(root, "full");
        var first = CliRunner.Run([.. common, "--output", full, "--save-steps", "0"]);
        Assert.True(first.ExitCode == 0, first.Stderr + first.Stdout);
        Assert.Contains("Data: 6 prompts, conversational prompts", first.Stdout);
        var part = Path.Combine(root, "part");
        Assert.Equal(0, CliRunner.Run([.. common, "--output", part, "--save-steps", "2"]).ExitCode);
        File.Delete(Path.Combine(part, PeftAdapter.WeightsFile));
        var (code, stdout, stderr) = CliRunner.Run([.. common, "--output", part, "--save-steps", "2", "--resume", Path.Combine(part, "checkpoint-2")]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Resumed from", stdout);
        var a = Metrics(full);
        var b = Metrics(part);
        Assert.Equal(6, b.Count);
        Assert.All(a, m => Assert.True(m.ContainsKey("kl")));
        for (int i = 0; i < a.Count; i++)
            foreach (var key in new[] { "loss", "reward", "kl", "entropy", "grad_norm" })
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
        Assert.Equal(0, a[0]["kl"]!.GetValue<double>(), 9); // fresh adapters: the policy is its base, the reference
    }

    [Fact]
    public void RlooAndBadInput()
    {
        var (root, model) = Setup();
        var data = Write(root, "p.jsonl", Enumerable.Range(1, 4).Select(i => new JsonObject { ["prompt"] = $"Count to {i}:", ["answer"] = $"{i}" }));
        var run = Path.Combine(root, "rloo");
        var (code, stdout, stderr) = CliRunner.Run("rloo", "--model", model, "--data", data, "--output", run, "--reward", "math", "--num-generations", "2",
            "--batch-size", "4", "--max-completion-length", "4", "--max-steps", "2", "--logging-steps", "1");
        Assert.True(code == 0, stderr + stdout);
        Assert.All(Metrics(run), m => Assert.True(m.ContainsKey("kl"))); // RLOO's default beta 0.05 loads a reference
        Assert.Contains("beta: null", File.ReadAllText(Path.Combine(run, "config.yaml")));

        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--num-generations", "4", "--batch-size", "6"], "--batch-size: counts completions and must be a multiple of --num-generations (4)"),
                     (["--reward", "magic"], "--reward: unknown reward 'magic'"),
                     (["--num-generations", "1", "--batch-size", "1"], "--num-generations: must be at least 2"),
                     (["--answer-field", "solution"], "p.jsonl:1: solution: missing (the math reward's reference answer"),
                     (["--prompt-field", "question"], "no \"question\" field"),
                     (["--loss-type", "ppo"], "--loss-type: 'ppo' is not one of grpo, bnpo, dr_grpo, dapo"),
                 })
        {
            var dir = Path.Combine(root, "bad-" + Guid.NewGuid().ToString("N"));
            string[] batching = args.Contains("--batch-size") ? [] : ["--num-generations", "2", "--batch-size", "4"];
            (code, _, stderr) = CliRunner.Run(["grpo", "--model", model, "--data", data, "--output", dir, "--max-steps", "1", "--max-completion-length", "4", .. batching, .. args]);
            Assert.Equal(2, code);
            Assert.Contains(message, stderr);
            if (!message.StartsWith("no ")) Assert.Single(stderr.Trim().Split('\n')); // a missing field is listed for every record
            Assert.False(Directory.Exists(dir));
        }
    }

    [Fact]
    public void ContinuingAnAdapterTheKlIsToThatAdapterAsLoaded()
    {
        var (root, model) = Setup();
        // An adapter that changes the model (B not zero), with lora_dropout 0.5.
        var adapter = Path.Combine(root, "adapter");
        Directory.CreateDirectory(adapter);
        using (var tuned = HfCheckpoint.Load(model))
        {
            LoraAdapters.Attach(tuned, new LoraConfig { R = 4, Alpha = 8, Dropout = 0.5, BaseModel = model }, seed: 1);
            var g = new TorchSharp.torch.Generator(7);
            using (TorchSharp.torch.no_grad())
                foreach (var (_, p) in tuned.Projections())
                    p.Adapter!.Value.B.normal_(0, 0.1, g);
            PeftAdapter.WriteInto(tuned, adapter);
        }
        var data = Write(root, "p.jsonl", Enumerable.Range(1, 4).Select(i => new JsonObject { ["prompt"] = $"Count to {i}:", ["answer"] = $"{i}" }));
        double Kl(string verb, string name, params string[] extra)
        {
            var run = Path.Combine(root, name);
            var (code, stdout, stderr) = CliRunner.Run([verb, "--model", model, "--adapter", adapter, "--data", data, "--output", run, "--reward", "math",
                "--num-generations", "2", "--batch-size", "4", "--max-completion-length", "4", "--max-steps", "1", "--logging-steps", "1",
                "--learning-rate", "0", .. extra]);
            Assert.True(code == 0, stderr + stdout);
            return Metrics(run).Single()["kl"]!.GetValue<double>();
        }
        // Before any update the policy is the adapter as loaded, and so is the reference: KL 0.
        Assert.Equal(0.0, Kl("grpo", "grpo", "--beta", "0.1", "--disable-dropout"));
        Assert.Contains("disable-dropout: true", File.ReadAllText(Path.Combine(root, "grpo", "config.yaml")));
        Assert.Equal(0.0, Kl("rloo", "rloo")); // RLOO: the sequence KL at sampling time, beta 0.05 by default
        // GRPO keeps dropout by default (as TRL's GRPOConfig): the policy's forward drops adapter inputs.
        Assert.True(Kl("grpo", "dropout", "--beta", "0.1") > 1e-4);
        Assert.Contains("disable-dropout: false", File.ReadAllText(Path.Combine(root, "dropout", "config.yaml")));
        // The bare base is not the starting policy.
        Assert.True(Kl("grpo", "base", "--beta", "0.1", "--disable-dropout", "--ref-model", model) > 1e-4);
    }
}
