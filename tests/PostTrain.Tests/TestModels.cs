using PostTrain.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace PostTrain.Tests;

/// <summary>Tiny models built in the test: well under 1M parameters.</summary>
public static class TestModels
{
    public static ModelConfig Config(Architecture arch, bool tied = false, int kvHeads = 2, int? headDim = null,
        RopeScaling? scaling = null, int vocab = 96) =>
        ModelConfig.Create(arch, vocabSize: vocab, hiddenSize: 32, intermediateSize: 48, layers: 2, heads: 4,
            kvHeads: kvHeads, headDim: headDim ?? (arch == Architecture.Qwen3 ? 16 : 8), maxPositions: 256,
            ropeTheta: arch == Architecture.Llama ? 500000.0 : 1000000.0, ropeScaling: scaling,
            tieWordEmbeddings: tied, bosTokenId: 1, eosTokenIds: [2]);

    /// <summary>A model whose every parameter is random and matters (norm weights near 1, biases non-zero).</summary>
    public static CausalLM Random(ModelConfig config, long seed = 0, double std = 0.2)
    {
        var model = new CausalLM(config);
        var g = new Generator((ulong)seed);
        using var noGrad = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.uniform_(0.5, 1.5, g);
            else p.normal_(0.0, std, g);
        }
        return model;
    }

    public static Tensor Ids(params int[][] rows)
    {
        int width = rows.Max(r => r.Length);
        return tensor(rows.SelectMany(r => r.Select(x => (long)x)).ToArray(), [rows.Length, width]);
    }

    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "posttrain-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    public static float MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
