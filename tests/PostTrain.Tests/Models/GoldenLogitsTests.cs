using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

/// <summary>
/// Logits and log-probabilities against golden values from an independent reference of
/// transformers' Qwen2/Qwen3/Llama math (tests/reference/), on tiny checkpoints stored in F32,
/// BF16, F16 and shards, with single, padded and packed batches.
/// </summary>
public class GoldenLogitsTests
{
    public static string ModelDir(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "models", name);

    public static TheoryData<string> Models => new()
    {
        "qwen2", "qwen2-bf16", "qwen3", "qwen3-f16", "qwen3-rope-parameters", "llama", "llama-bias", "llama-sharded",
    };

    static Tensor? Long2D(JsonNode? node)
    {
        if (node is null) return null;
        var rows = node.AsArray().Select(r => r!.AsArray().Select(x => x!.GetValue<long>()).ToArray()).ToArray();
        return tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogitsMatchTheReference(string name)
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir(name), "golden.json")))!;
        using var model = HfCheckpoint.Load(ModelDir(name));
        foreach (var c in golden["cases"]!.AsArray())
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var ids = Long2D(c!["input_ids"])!;
            var logits = model.Forward(ids, Long2D(c["attention_mask"]), Long2D(c["position_ids"]));
            var expected = c["logits"]!.AsArray();
            var compare = c["compare_mask"]!.AsArray();
            float worst = 0;
            for (int b = 0; b < expected.Count; b++)
                for (int t = 0; t < expected[b]!.AsArray().Count; t++)
                {
                    if (compare[b]![t]!.GetValue<int>() == 0) continue;
                    var want = expected[b]![t]!.AsArray().Select(x => x!.GetValue<float>()).ToArray();
                    var got = logits[b, t].data<float>().ToArray();
                    for (int v = 0; v < want.Length; v++) worst = Math.Max(worst, Math.Abs(want[v] - got[v]));
                }
            Assert.True(worst < 1e-4f, $"{name}/{c["name"]}: logits differ by {worst}");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void LogProbsMatchTheReference(string name)
    {
        // The reference's single-row case scored through TokenScorer (what `posttrain logprobs` runs).
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(ModelDir(name), "golden.json")))!;
        var rightPadded = golden["cases"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "right_padded")!;
        var masks = rightPadded["compare_mask"]!.AsArray();
        var sequences = rightPadded["input_ids"]!.AsArray().Select((row, b) => row!.AsArray()
            .Where((_, t) => masks[b]![t]!.GetValue<int>() == 1).Select(x => x!.GetValue<int>()).ToArray()).ToArray();
        using var model = HfCheckpoint.Load(ModelDir(name));
        var scores = TokenScorer.LogProbs(model, sequences, batchSize: 2);
        for (int b = 0; b < sequences.Length; b++)
        {
            var want = rightPadded["logprobs"]![b]!.AsArray();
            Assert.True(float.IsNaN(scores[b][0]));
            for (int t = 1; t < sequences[b].Length; t++)
                Assert.Equal(want[t]!.GetValue<float>(), scores[b][t], 1e-4f);
            Assert.Equal(rightPadded["nll"]![b]!.GetValue<double>(), TokenScorer.MeanNll(scores[b]), 1e-4);
        }
    }

    [Fact]
    public void ConfigKeysOfBothTransformersGenerationsAreRead()
    {
        var v5 = HfCheckpoint.LoadConfig(ModelDir("qwen3-rope-parameters"));
        Assert.Equal(1000000.0, v5.RopeTheta);
        Assert.True(v5.OutputBias);
        Assert.Equal("float32", v5.TorchDtype);
        var llama = HfCheckpoint.LoadConfig(ModelDir("llama"));
        Assert.Equal(new RopeScaling("llama3", 8.0, 1.0, 4.0, 256), llama.RopeScaling);
        Assert.Equal(1, llama.NumKeyValueHeads);
    }
}
