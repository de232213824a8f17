using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Tests.Cli;
using PostTrain.Trainers;
using PostTrain.Training;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

public class PpoTests(ITestOutputHelper output)
{
    sealed class Fixed(string name, Func<RewardSample, double?> f) : IRewardFunction
    {
        public string Name => name;
        public double?[] Score(IReadOnlyList<RewardSample> samples) => samples.Select(f).ToArray();
    }

    // The share of even token ids in the completion: dense, so every rollout carries a signal.
    static readonly IRewardFunction EvenTokens = new Fixed("even", s => s.CompletionIds.Length == 0 ? 0 : s.CompletionIds.Count(t => t % 2 == 0) / (double)s.CompletionIds.Length);

    static SequenceClassifier ValueModel(ModelConfig config, long seed)
    {
        var decoder = new CausalLM(config, outputLayer: false);
        var g = new TorchSharp.torch.Generator((ulong)seed);
        using (no_grad())
            foreach (var (name, p) in decoder.named_parameters())
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.uniform_(0.5, 1.5, g);
                else p.normal_(0.0, 0.1, g);
        var value = new SequenceClassifier(decoder, nn.Linear(config.HiddenSize, 1, hasBias: false));
        value.InitializeScore(seed);
        return value;
    }

    static List<JsonObject> Run(PpoOptions options, string dir, string? resumeFrom = null)
    {
        var config = TestModels.Config(Architecture.Qwen2, tied: true);
        using var model = TestModels.Random(config, seed: 1, std: 0.1);
        using var value = ValueModel(config, 4);
        var random = new Random(3);
        var units = Enumerable.Range(0, 16).Select(i => new PromptUnit(i, Enumerable.Range(0, 4).Select(_ => random.Next(3, 96)).ToArray(), $"p{i}",
            new PromptExample($"x:{i}", $"p{i}", null, null, new JsonObject()))).ToList();
        using var reference = new ReferenceModel(TestModels.Random(config, seed: 1, std: 0.1));
        var method = new PpoMethod(options, new Rollouts(new RewardSet([EvenTokens]), null, [2], reference), value, 0, Path.Combine(dir, "completions.jsonl"));
        new Trainer<PromptUnit>(model, method, units, null, options, dir, null).Train(TextWriter.Null, resumeFrom);
        return File.ReadAllLines(Path.Combine(dir, RunLog.MetricsFile)).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
    }

    static PpoOptions Toy(int steps, int saveSteps = 0) => new()
    {
        BatchSize = 8, GradientAccumulationSteps = 2, MaxCompletionLength = 6, Temperature = 1.0, LearningRate = 0.01,
        NumPpoEpochs = 2, NumMiniBatches = 2, KlCoef = 0.01, MaxSteps = steps, LoggingSteps = 4, SaveSteps = saveSteps,
        LogCompletionsSteps = 4, MaxGradNorm = 1.0, Seed = 7,
    };

    [Fact]
    public void CompletionsAreLoggedForTheRolloutsWhoseStepsReachEveryNth()
    {
        // 4 optimiser steps per rollout (2 epochs x 2 mini-batches) and --log-completions-steps 4:
        // each rollout feeds a 4th step (the check once ran only at a rollout's first step, and never matched).
        var dir = TestModels.TempDir();
        Run(Toy(8), dir);
        var logged = File.ReadAllLines(Path.Combine(dir, "completions.jsonl")).Select(l => JsonNode.Parse(l)!["step"]!.GetValue<int>()).Distinct().ToList();
        Assert.Equal([1, 5], logged);
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void ScoresRiseOnACheckableTaskWithTrlsMetrics()
    {
        var dir = TestModels.TempDir();
        var metrics = Run(Toy(48), dir);
        var scores = metrics.Select(m => m["objective/scores"]!.GetValue<double>()).ToList();
        output.WriteLine("objective/scores every 4 steps: " + string.Join(" ", scores.Select(s => s.ToString("0.000"))));
        Assert.True(scores[^1] > scores[0] + 0.2, $"objective/scores {scores[0]} -> {scores[^1]}");
        foreach (var key in new[] { "objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward", "objective/scores",
                     "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "policy/entropy_avg",
                     "val/ratio", "val/num_eos_tokens", "eps", "loss", "grad_norm", "learning_rate" })
            Assert.All(metrics, m => Assert.True(m.ContainsKey(key) && m[key] is not null, key));
        // The value model trains with the policy and is saved beside it, as a sequence classifier.
        Assert.True(File.Exists(Path.Combine(dir, "value_model", "config.json")));
        Assert.Contains("ForSequenceClassification", File.ReadAllText(Path.Combine(dir, "value_model", "config.json")));
    }

    [Fact]
    public void ResumesExactlyWithTheValueModel()
    {
        var full = TestModels.TempDir();
        var a = Run(Toy(8), full);
        var part = TestModels.TempDir();
        Run(Toy(8, saveSteps: 4), part);
        File.Delete(Path.Combine(part, RunLog.MetricsFile)); // as a run killed after its checkpoint (resume keeps the lines up to it)
        File.Copy(Path.Combine(full, RunLog.MetricsFile), Path.Combine(part, RunLog.MetricsFile));
        Assert.True(File.Exists(Path.Combine(part, "checkpoint-4", "extra_modules.safetensors")));
        var b = Run(Toy(8, saveSteps: 4), part, Path.Combine(part, "checkpoint-4"));
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
            foreach (var key in new[] { "loss", "objective/scores", "loss/value_avg", "grad_norm" })
                Assert.Equal(a[i][key]!.GetValue<double>(), b[i][key]!.GetValue<double>(), 1e-6);
    }

    [Fact]
    public void CliRunsPpoAndRejectsBadOptions()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Path.Combine(root, "p.jsonl");
        File.WriteAllLines(data, Enumerable.Range(1, 4).Select(i => new JsonObject { ["prompt"] = $"Count to {i}:", ["answer"] = $"{i}" }.ToJsonString()));
        var run = Path.Combine(root, "ppo");
        var (code, stdout, stderr) = CliRunner.Run("ppo", "--model", model, "--data", data, "--output", run, "--reward", "math", "--batch-size", "4",
            "--max-completion-length", "4", "--max-steps", "4", "--logging-steps", "1", "--missing-eos-penalty", "1");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("decoder and a new score head", stdout);
        Assert.True(File.Exists(Path.Combine(run, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(run, "value_model", "model.safetensors")));
        Assert.Contains("kl-estimator: k1", File.ReadAllText(Path.Combine(run, "config.yaml")));
        // The saved value model is a --value-model for the next run.
        var again = Path.Combine(root, "again");
        (code, stdout, stderr) = CliRunner.Run("ppo", "--model", run, "--value-model", Path.Combine(run, "value_model"), "--data", data, "--output", again,
            "--reward", "math", "--batch-size", "4", "--max-completion-length", "4", "--max-steps", "4");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("with its score head", stdout);

        foreach (var (args, message) in new (string[], string)[]
                 {
                     (["--num-mini-batches", "3", "--save-steps", "10"], "--save-steps: must be a multiple of --num-ppo-epochs x --num-mini-batches (12): a checkpoint inside a rollout's updates could not resume it exactly"),
                     (["--cliprange", "1.5"], "--cliprange: must be in (0, 1)"),
                     (["--kl-estimator", "k2"], "--kl-estimator: 'k2' is not one of k1, k3"),
                 })
        {
            var bad = CliRunner.Run(["ppo", "--model", model, "--data", data, "--output", Path.Combine(root, "bad"), .. args]);
            Assert.Equal(2, bad.ExitCode);
            Assert.Equal($"error: {message}", bad.Stderr.Trim());
            Assert.False(Directory.Exists(Path.Combine(root, "bad")));
        }
    }
}
