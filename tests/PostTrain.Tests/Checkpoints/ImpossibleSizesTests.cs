using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Trainers;

namespace PostTrain.Tests.Checkpoints;

/// <summary>
/// A config.json or adapter_config.json that asks for sizes its weight files do not hold is an
/// error naming the file, the field and the size asked for, found from the headers before
/// anything is allocated; and the files a shard index names are files of the model directory.
/// </summary>
public class ImpossibleSizesTests
{
    static string SavedTiny(bool tied = false)
    {
        var dir = Path.Combine(TestModels.TempDir(), "m");
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied), seed: 5);
        HfCheckpoint.Save(model, dir);
        return dir;
    }

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var o = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(o);
        File.WriteAllText(path, o.ToJsonString());
    }

    static InputError FailsFast(Action load)
    {
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<InputError>(load);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"took {watch.Elapsed}");
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Theory]
    [InlineData("vocab_size", 2_000_000_000, "vocab_size: 2,000,000,000 asked for")]
    [InlineData("hidden_size", 1_000_000_000, "hidden_size: 1,000,000,000 asked for")]
    [InlineData("num_hidden_layers", 1_000_000_000, "num_hidden_layers: 1,000,000,000 asked for, but the weight files hold 2 layers")]
    [InlineData("num_hidden_layers", 1_000_000, "num_hidden_layers: 1,000,000 asked for")]
    [InlineData("intermediate_size", 1_000_000_000, "intermediate_size: 1,000,000,000 asked for")]
    [InlineData("head_dim", 1_000_000, "num_attention_heads × head_dim: 4,000,000 asked for")]
    public void AConfigAskingForMoreThanItsWeightsHoldIsNamedBeforeAllocating(string field, long value, string expected)
    {
        var dir = SavedTiny();
        var config = Path.Combine(dir, "config.json");
        EditJson(config, o =>
        {
            o[field] = value;
            if (field == "hidden_size") o["head_dim"] = 8; // keeps the heads' arithmetic valid
        });
        var e = FailsFast(() => HfCheckpoint.Load(dir).Dispose());
        Assert.StartsWith($"{config}: {expected}", e.Message);
    }

    [Theory]
    [InlineData("vocab_size", 0, "vocab_size: must be positive, got 0")]
    [InlineData("intermediate_size", -5, "intermediate_size: must be positive, got -5")]
    [InlineData("num_hidden_layers", -1, "num_hidden_layers: must not be negative, got -1")]
    [InlineData("head_dim", -8, "head_dim: must be positive, got -8")]
    public void NegativeOrZeroSizesAreNamed(string field, int value, string expected)
    {
        var dir = SavedTiny();
        var config = Path.Combine(dir, "config.json");
        EditJson(config, o => o[field] = value);
        Assert.StartsWith($"{config}: {expected}", FailsFast(() => HfCheckpoint.Load(dir).Dispose()).Message);
    }

    [Fact]
    public void AVocabularyOfATrillionIsAlreadyRefusedAsNotAnInt()
    {
        var dir = SavedTiny();
        EditJson(Path.Combine(dir, "config.json"), o => o["vocab_size"] = 1_000_000_000_000);
        Assert.Contains("vocab_size: expected an integer", FailsFast(() => HfCheckpoint.Load(dir).Dispose()).Message);
    }

    [Fact]
    public void ATiedModelWithAStoredHeadAndAnUntiedOneStillLoad()
    {
        using (HfCheckpoint.Load(SavedTiny(tied: true))) { }
        using (HfCheckpoint.Load(SavedTiny(tied: false))) { }
    }

    [Fact]
    public void ASequenceClassifierCheckpointIsCheckedToo()
    {
        var dir = Path.Combine(TestModels.TempDir(), "rm");
        Directory.CreateDirectory(dir);
        using (var classifier = new SequenceClassifier(TestModels.Config(Architecture.Qwen2), numLabels: 1))
            HfCheckpoint.WriteInto(classifier, dir, new SaveOptions(), padTokenId: 0);
        using (RewardModel.LoadClassifier(dir)) { }
        var config = Path.Combine(dir, "config.json");
        EditJson(config, o => o["num_hidden_layers"] = 1_000_000_000);
        Assert.StartsWith($"{config}: num_hidden_layers: 1,000,000,000 asked for",
            FailsFast(() => RewardModel.LoadClassifier(dir).Dispose()).Message);
        Assert.StartsWith($"{config}: num_hidden_layers: 1,000,000,000 asked for",
            FailsFast(() => RewardRun.LoadClassifier(dir, 0, TorchSharp.torch.ScalarType.Float32, TextWriter.Null).Dispose()).Message);
        EditJson(config, o => { o["num_hidden_layers"] = 2; o["num_labels"] = 1_000_000_000; });
        Assert.StartsWith($"{config}: num_labels: 1,000,000,000 asked for",
            FailsFast(() => RewardModel.LoadClassifier(dir).Dispose()).Message);
    }

    [Fact]
    public void ATensorShapeThatOverflowsIsAHeaderError()
    {
        var dir = Path.Combine(TestModels.TempDir(), "m");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "model.safetensors");
        // 2^32 × 2^32 × 4 bytes wraps to 0 in 64-bit arithmetic: offsets [0, 0] must not pass for it.
        var header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header]);
        var e = FailsFast(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains("'w': shape [4294967296, 4294967296] is too large", e.Message);
    }

    [Fact]
    public void AnAdapterWhoseRankIsNotItsTensorsIsNamedBeforeAttaching()
    {
        var dir = Path.Combine(TestModels.TempDir(), "adapter");
        Directory.CreateDirectory(dir);
        var config = TestModels.Config(Architecture.Qwen2);
        using (var model = TestModels.Random(config, seed: 3))
        {
            LoraAdapters.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, seed: 1);
            PeftAdapter.WriteInto(model, dir);
        }
        var adapterConfig = Path.Combine(dir, "adapter_config.json");
        EditJson(adapterConfig, o => o["r"] = 1_000_000_000);
        using var fresh = TestModels.Random(config, seed: 3);
        var e = FailsFast(() => PeftAdapter.Load(fresh, dir));
        Assert.StartsWith($"{adapterConfig}: r: 1,000,000,000 asked for, but adapter_model.safetensors holds rank 4", e.Message);
        Assert.Null(fresh.Lora);
    }

    [Fact]
    public void ANewAdapterOfARankBeyondTheMachinesMemoryIsRefusedBeforeAllocating()
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2), seed: 3);
        var e = FailsFast(() => LoraAdapters.Attach(model, new LoraConfig { R = 1_000_000_000, Alpha = 8, Dropout = 0 }, seed: 1));
        Assert.StartsWith("--lora-r: a rank of 1,000,000,000 makes adapters of", e.Message);
        Assert.Null(model.Lora);
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }

    [Theory]
    [InlineData("/etc/passwd")]
    [InlineData("../../../../../../etc/passwd")]
    [InlineData("../m2/model-00001-of-00002.safetensors")]
    [InlineData("sub/model.safetensors")]
    [InlineData("sub\\\\model.safetensors")]
    [InlineData("..")]
    [InlineData("")]
    public void AShardIndexNamesOnlyFilesOfTheModelDirectory(string shard)
    {
        var dir = Path.Combine(TestModels.TempDir(), "sharded");
        using (var model = TestModels.Random(TestModels.Config(Architecture.Qwen2), seed: 12))
            HfCheckpoint.Save(model, dir, new SaveOptions { MaxShardBytes = 20_000 });
        var index = Path.Combine(dir, "model.safetensors.index.json");
        EditJson(index, o => o["weight_map"]!["model.norm.weight"] = shard);
        var e = FailsFast(() => HfCheckpoint.Load(dir).Dispose());
        Assert.StartsWith($"{index}: weight_map.model.norm.weight: shard '{shard}' is not a file name inside the model directory", e.Message);
    }

    [Fact]
    public void AFileThatIsNotSafetensorsNeverHasItsBytesPrintedAsANumber()
    {
        var dir = SavedTiny();
        var path = Path.Combine(dir, "model.safetensors");
        File.WriteAllText(path, "root:x:0:0:root:/root:/bin/bash\n");
        var e = FailsFast(() => HfCheckpoint.Load(dir).Dispose());
        Assert.Equal($"{path}: not a safetensors file or truncated (the header length its first 8 bytes give is larger than the file's 32 bytes)", e.Message);
        Assert.DoesNotContain(BitConverter.ToUInt64(Encoding.ASCII.GetBytes("root:x:0")).ToString(), e.Message);
        // A plausible length over a header that is not JSON: the parser's message (which quotes the bytes) is not passed on.
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(16UL), .. Encoding.ASCII.GetBytes("secret-text-here")]);
        var e2 = FailsFast(() => HfCheckpoint.Load(dir).Dispose());
        Assert.Equal($"{path}: not a safetensors file (its header is not valid JSON at byte 8)", e2.Message);
    }
}
