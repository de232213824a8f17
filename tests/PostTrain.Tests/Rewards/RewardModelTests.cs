using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Tests.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests.Rewards;

/// <summary>
/// The reward model against golden pooled logits from the independent reference
/// (tests/reference/make_reward_goldens.py: transformers' ...ForSequenceClassification math), and
/// the text it reads, batching, and layout errors.
/// </summary>
public class RewardModelTests
{
    static long[][] Rows(JsonNode node) => node.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();

    static Tensor Long2D(long[][] rows) => tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);

    [Theory]
    [InlineData("qwen2-reward")]
    [InlineData("llama-reward")]
    public void Pooled_logits_of_a_right_padded_batch_match_the_reference(string name)
    {
        var dir = GoldenLogitsTests.ModelDir(name);
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "golden.json")))!;
        using var model = RewardModel.LoadClassifier(dir);
        Assert.Equal(golden["num_labels"]!.GetValue<int>(), model.NumLabels);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = Long2D(Rows(golden["input_ids"]!));
        var mask = Long2D(Rows(golden["attention_mask"]!));
        long pad = golden["pad_token_id"]!.GetValue<long>();

        // The last row ends with real tokens equal to the pad id: pooling skips them, as transformers does.
        var positions = SequenceClassifier.PooledPositions(ids, pad).data<long>().ToArray();
        Assert.Equal(golden["pooled_positions"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray(), positions);

        var logits = model.Forward(ids, mask, pad);
        var expected = golden["logits"]!.AsArray();
        Assert.Equal([expected.Count, model.NumLabels], logits.shape);
        for (int b = 0; b < expected.Count; b++)
            for (int l = 0; l < model.NumLabels; l++)
            {
                float want = expected[b]![l]!.GetValue<float>(), got = logits[b, l].item<float>();
                Assert.True(Math.Abs(want - got) < 1e-4f, $"{name} row {b} label {l}: {got} vs {want}");
            }
    }

    /// <summary>The qwen2-reward fixture with the tiny ChatML tokenizer (vocab 269 of the model's 272; pad 266 = config's pad_token_id).</summary>
    static string RewardDir(string fixture = "qwen2-reward")
    {
        var dir = TestModels.TempDir();
        foreach (var f in Directory.GetFiles(GoldenLogitsTests.ModelDir(fixture)))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        TestTokenizers.WriteTiny(dir);
        return dir;
    }

    static RewardSample Text(string prompt, string completion) => new(prompt, null, completion, [], new JsonObject());

    static RewardSample Chat(string user, string completion) =>
        new("(rendered by the policy's template)", new JsonArray(new JsonObject { ["role"] = "user", ["content"] = user }), completion, [], new JsonObject());

    [Fact]
    public void Conversations_render_with_the_reward_models_template_and_text_is_prompt_plus_completion()
    {
        using var reward = RewardModel.Load(RewardDir());
        Assert.Equal("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n", reward.Text(Chat("What is 2+2?", "4")));
        Assert.Equal("Question: 2+2? Answer: 4", reward.Text(Text("Question: 2+2? Answer:", " 4")));
        Assert.Equal(266, reward.PadTokenId);
        Assert.Equal("model", reward.Name);
    }

    [Fact]
    public void Scores_equal_each_sample_scored_alone_whatever_the_batching()
    {
        var dir = RewardDir();
        var samples = new[]
        {
            Chat("What is 2+2?", "The answer is 4."), Text("the sun", " rises in the east"), Chat("hi", ""),
            Text("a", "b"), Chat("Tell me a story about the sea.", "Once there was a sailor who loved the sea."),
        };
        using var batched = RewardModel.Load(dir, batchSize: 2);
        var scores = batched.Score(samples);
        using var reward = RewardModel.Load(dir);
        var tokenizer = PostTrain.Tokenization.HfTokenizer.FromDirectory(dir);
        for (int i = 0; i < samples.Length; i++)
        {
            var alone = reward.ScoreIds([tokenizer.Encode(reward.Text(samples[i]))])[0];
            Assert.NotNull(scores[i]);
            Assert.True(Math.Abs(alone - scores[i]!.Value) < 1e-5, $"sample {i}: batched {scores[i]} vs alone {alone}");
        }
        var oneBatch = reward.Score(samples); // batch size 16: one batch, the same scores up to float rounding
        for (int i = 0; i < samples.Length; i++) Assert.True(Math.Abs(oneBatch[i]!.Value - scores[i]!.Value) < 1e-5);
        Assert.True(scores.Distinct().Count() == samples.Length, "different texts, different scores");
    }

    [Fact]
    public void Scores_the_label_0_logit_when_there_are_several_labels()
    {
        var dir = RewardDir("llama-reward");
        // llama-reward's vocabulary is 108: score token ids directly.
        using var reward = RewardModel.Load(dir);
        using var classifier = RewardModel.LoadClassifier(dir);
        Assert.Equal(2, reward.NumLabels);
        int[] row = [5, 17, 33, 90];
        using var logits = classifier.Forward(tensor(row.Select(x => (long)x).ToArray(), [1, row.Length]), null, null);
        Assert.Equal(logits[0, 0].item<float>(), reward.ScoreIds([row])[0], 1e-6f);
        var e = Assert.Throws<InputError>(() => reward.Score([Text("the sun rises", "!")]));
        Assert.Contains("vocab_size 108", e.Message);
    }

    [Fact]
    public void Live_tensors_do_not_grow_over_scoring_calls()
    {
        using var reward = RewardModel.Load(RewardDir(), batchSize: 2);
        var samples = new[] { Chat("hi", "hello"), Text("x", "yz"), Text("abc", "") };
        reward.Score(samples);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++) reward.Score(samples);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void A_causal_lm_checkpoint_is_an_error_naming_config_json_and_architectures()
    {
        var e = Assert.Throws<InputError>(() => RewardModel.LoadClassifier(GoldenLogitsTests.ModelDir("qwen2")));
        Assert.Contains("config.json: architectures", e.Message);
        Assert.Contains("Qwen2ForCausalLM", e.Message);
        Assert.Contains("Qwen2ForSequenceClassification", e.Message);
    }

    [Fact]
    public void A_checkpoint_without_score_weight_is_an_error_naming_the_file_and_tensor()
    {
        var dir = RewardDir();
        var path = Path.Combine(dir, HfCheckpoint.SingleFile);
        var tensors = new List<(string, Tensor)>();
        using (var file = SafeTensorsFile.Open(path))
            foreach (var name in file.Tensors.Keys.Where(n => n != "score.weight"))
                tensors.Add((name, file.Load(name)));
        File.Delete(path);
        SafeTensorsFile.Write(path, tensors);
        foreach (var (_, t) in tensors) t.Dispose();
        var e = Assert.Throws<InputError>(() => RewardModel.Load(dir));
        Assert.Contains(path, e.Message);
        Assert.Contains("'score.weight'", e.Message);
    }

    [Fact]
    public void A_head_of_the_wrong_shape_is_an_error_naming_the_file_tensor_and_shapes()
    {
        var dir = RewardDir();
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["id2label"] = new JsonObject { ["0"] = "a", ["1"] = "b", ["2"] = "c" };
        File.WriteAllText(configPath, config.ToJsonString());
        var e = Assert.Throws<InputError>(() => RewardModel.Load(dir));
        Assert.Contains(Path.Combine(dir, HfCheckpoint.SingleFile), e.Message);
        Assert.Contains("'score.weight' has shape [1, 32], the model expects [3, 32]", e.Message);
    }

    [Fact]
    public void The_registry_creates_the_model_reward_and_needs_its_directory()
    {
        var e = Assert.Throws<InputError>(() => BuiltInRewards.Create("model", new RewardSettings()));
        Assert.Contains("--reward-model", e.Message);
        var reward = BuiltInRewards.Create("model", new RewardSettings { RewardModel = RewardDir() });
        Assert.Equal("model", reward.Name);
        Assert.IsType<RewardModel>(reward);
        ((IDisposable)reward).Dispose();
    }
}
