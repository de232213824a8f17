using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Tests.Checkpoints;

public class CheckpointTests
{
    static bool BitEqual(Tensor a, Tensor b) =>
        a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.contiguous().bytes.SequenceEqual(b.contiguous().bytes);

    static void AssertSameParameters(CausalLM a, CausalLM b, bool exact = true)
    {
        var pb = b.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var (name, p) in a.named_parameters())
        {
            Assert.True(pb.ContainsKey(name), name);
            Assert.True(exact ? BitEqual(p, pb[name]) : p.allclose(pb[name]), name);
        }
        Assert.Equal(a.named_parameters().Count(), pb.Count);
    }

    [Theory]
    [InlineData(Architecture.Qwen2, true)]
    [InlineData(Architecture.Qwen3, false)]
    [InlineData(Architecture.Llama, false)]
    public void SaveThenLoadIsBitExact(Architecture arch, bool tied)
    {
        var dir = Path.Combine(TestModels.TempDir(), "model");
        using var model = TestModels.Random(TestModels.Config(arch, tied), seed: 7);
        HfCheckpoint.Save(model, dir);
        Assert.True(File.Exists(Path.Combine(dir, "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir, "generation_config.json")));
        using var loaded = HfCheckpoint.Load(dir);
        AssertSameParameters(model, loaded);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        Assert.Equal(model.Config.ModelType, config["model_type"]!.GetValue<string>());
        Assert.Equal(model.Config.ArchitectureClass, config["architectures"]![0]!.GetValue<string>());
        Assert.Equal("float32", config["torch_dtype"]!.GetValue<string>());
    }

    [Fact]
    public void ShardedSaveWritesIndexAndLoadsBitExact()
    {
        var dir = Path.Combine(TestModels.TempDir(), "sharded");
        using var model = TestModels.Random(TestModels.Config(Architecture.Llama), seed: 8);
        HfCheckpoint.Save(model, dir, new SaveOptions { MaxShardBytes = 20_000 });
        var shards = Directory.GetFiles(dir, "model-*-of-*.safetensors");
        Assert.True(shards.Length > 2);
        Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, HfCheckpoint.IndexFile)))!;
        var weightMap = index["weight_map"]!.AsObject();
        Assert.Equal(model.named_parameters().Count(), weightMap.Count);
        long total = model.parameters().Sum(p => p.numel() * 4);
        Assert.Equal(total, index["metadata"]!["total_size"]!.GetValue<long>());
        Assert.Contains($"model-00001-of-{shards.Length:D5}.safetensors", weightMap.Select(kv => kv.Value!.GetValue<string>()));
        using var loaded = HfCheckpoint.Load(dir);
        AssertSameParameters(model, loaded);
    }

    [Fact]
    public void Bf16SaveRoundsOnceAndReloadsExactly()
    {
        var root = TestModels.TempDir();
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen3), seed: 9);
        HfCheckpoint.Save(model, Path.Combine(root, "a"), new SaveOptions { DType = ScalarType.BFloat16, MaxShardBytes = 30_000 });
        using var fromBf16 = HfCheckpoint.Load(Path.Combine(root, "a"));
        using var file = SafeTensorsFile.Open(Directory.GetFiles(Path.Combine(root, "a"), "*.safetensors")[0]);
        Assert.All(file.Tensors.Values, t => Assert.Equal("BF16", t.DType));
        var expected = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.to(ScalarType.BFloat16).to(ScalarType.Float32));
        foreach (var (name, p) in fromBf16.named_parameters())
            Assert.True(BitEqual(p, expected[name]), name);
        // Saving the reloaded model in BF16 again reproduces the same bytes.
        HfCheckpoint.Save(fromBf16, Path.Combine(root, "b"), new SaveOptions { DType = ScalarType.BFloat16, MaxShardBytes = 30_000 });
        foreach (var f in Directory.GetFiles(Path.Combine(root, "a"), "*.safetensors"))
            Assert.Equal(File.ReadAllBytes(f), File.ReadAllBytes(Path.Combine(root, "b", Path.GetFileName(f))));
    }

    [Fact]
    public void LoadsIntoBf16Compute()
    {
        var dir = Path.Combine(TestModels.TempDir(), "m");
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2), seed: 10);
        HfCheckpoint.Save(model, dir);
        using var bf16 = HfCheckpoint.Load(dir, ScalarType.BFloat16);
        Assert.All(bf16.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = TestModels.Ids([3, 4, 5, 6]);
        var diff = TestModels.MaxAbsDiff(model.Forward(ids), bf16.Forward(ids).to(ScalarType.Float32));
        Assert.True(diff < 0.1f, $"bf16 logits differ by {diff}");
    }

    static string SavedTiny(Architecture arch = Architecture.Qwen2)
    {
        var dir = Path.Combine(TestModels.TempDir(), "m");
        using var model = TestModels.Random(TestModels.Config(arch), seed: 11);
        HfCheckpoint.Save(model, dir);
        return dir;
    }

    static void Rewrite(string dir, Func<List<(string, TorchSharp.torch.Tensor)>, List<(string, TorchSharp.torch.Tensor)>> edit)
    {
        var path = Path.Combine(dir, "model.safetensors");
        List<(string, Tensor)> tensors;
        using (var file = SafeTensorsFile.Open(path))
            tensors = file.Tensors.Keys.Select(n => (n, file.Load(n))).ToList();
        File.Delete(path);
        SafeTensorsFile.Write(path, edit(tensors));
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var dir = SavedTiny();
        Rewrite(dir, ts => ts.Where(t => t.Item1 != "model.layers.1.mlp.up_proj.weight").ToList());
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains("missing tensor 'model.layers.1.mlp.up_proj.weight'", e.Message);
    }

    [Fact]
    public void UnexpectedTensorIsNamed()
    {
        var dir = SavedTiny();
        Rewrite(dir, ts => ts.Append(("model.layers.0.self_attn.extra.weight", zeros(2))).ToList());
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains("unexpected tensor 'model.layers.0.self_attn.extra.weight'", e.Message);
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void ShapeMismatchIsNamed()
    {
        var dir = SavedTiny();
        Rewrite(dir, ts => ts.Select(t => t.Item1 == "model.norm.weight" ? (t.Item1, ones(31)) : t).ToList());
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains("'model.norm.weight' has shape [31], the model expects [32]", e.Message);
    }

    [Fact]
    public void DtypeMismatchIsNamed()
    {
        var dir = SavedTiny();
        Rewrite(dir, ts => ts.Select(t => t.Item1 == "model.norm.weight" ? (t.Item1, ones(32, dtype: ScalarType.Int64)) : t).ToList());
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains("'model.norm.weight' has dtype I64", e.Message);
    }

    [Fact]
    public void TruncatedFileIsAnError()
    {
        var dir = SavedTiny();
        var path = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains(path, e.Message);
        Assert.Contains("truncated", e.Message);
        File.WriteAllBytes(path, bytes[..5]);
        Assert.Contains("truncated", Assert.Throws<InputError>(() => HfCheckpoint.Load(dir)).Message);
    }

    [Fact]
    public void NotSafetensorsIsAnError()
    {
        var dir = SavedTiny();
        File.WriteAllText(Path.Combine(dir, "model.safetensors"), "this is not a safetensors file at all");
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains("model.safetensors", e.Message);
    }

    [Fact]
    public void MisnamedShardIsNamed()
    {
        var dir = Path.Combine(TestModels.TempDir(), "sharded");
        using (var model = TestModels.Random(TestModels.Config(Architecture.Qwen2), seed: 12))
            HfCheckpoint.Save(model, dir, new SaveOptions { MaxShardBytes = 20_000 });
        var shard = Directory.GetFiles(dir, "model-00002-of-*.safetensors").Single();
        File.Move(shard, Path.Combine(dir, "model-2.safetensors"));
        var e = Assert.Throws<InputError>(() => HfCheckpoint.Load(dir));
        Assert.Contains(Path.GetFileName(shard), e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void MissingWeightsNameTheDirectory()
    {
        var dir = SavedTiny();
        File.Delete(Path.Combine(dir, "model.safetensors"));
        Assert.Contains("no model.safetensors", Assert.Throws<InputError>(() => HfCheckpoint.Load(dir)).Message);
    }

    [Fact]
    public void FailedSaveLeavesNothing()
    {
        var root = TestModels.TempDir();
        var target = Path.Combine(root, "out");
        Assert.Throws<InvalidOperationException>(() =>
            AtomicDirectory.Write(target, false, temp =>
            {
                File.WriteAllText(Path.Combine(temp, "config.json"), "{}");
                throw new InvalidOperationException("disk full");
            }));
        Assert.Empty(Directory.GetFileSystemEntries(root));
    }

    [Fact]
    public void ExistingNonEmptyOutputIsRefusedUnlessOverwrite()
    {
        var dir = SavedTiny();
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2), seed: 13);
        Assert.Contains("not empty", Assert.Throws<InputError>(() => HfCheckpoint.Save(model, dir)).Message);
        HfCheckpoint.Save(model, dir, new SaveOptions { Overwrite = true });
        using var loaded = HfCheckpoint.Load(dir);
        AssertSameParameters(model, loaded);
        Assert.Single(Directory.GetDirectories(Path.GetDirectoryName(dir)!));
    }
}
