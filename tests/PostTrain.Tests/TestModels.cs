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

    static readonly System.Collections.Concurrent.ConcurrentQueue<string> tempDirs = new();

    /// <summary>A new empty directory, removed after the test that made it (<see cref="RemoveTempDirectoriesAttribute"/>).</summary>
    public static string TempDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "posttrain-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        tempDirs.Enqueue(dir);
        return dir;
    }

    /// <summary>Deletes every directory <see cref="TempDir"/> made so far.</summary>
    public static void RemoveTempDirs()
    {
        while (tempDirs.TryDequeue(out var dir))
        {
            try
            {
                if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
            }
            catch (IOException) { } // a file still open (a crashed test's writer): left to the OS's temp cleaning
            catch (UnauthorizedAccessException) { }
        }
    }

    public static float MaxAbsDiff(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
