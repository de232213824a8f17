using System.Text.Json.Nodes;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Tests.Models;

public class ModelConfigTests
{
    static JsonObject Minimal(string type) => new()
    {
        ["model_type"] = type, ["vocab_size"] = 100, ["hidden_size"] = 32, ["intermediate_size"] = 64,
        ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4,
    };

    [Fact]
    public void DefaultsFollowTransformers()
    {
        var qwen2 = ModelConfig.FromJson(Minimal("qwen2"));
        Assert.Equal(8, qwen2.HeadDim);
        Assert.Equal(4, qwen2.NumKeyValueHeads);
        Assert.True(qwen2.QkvBias);
        Assert.False(qwen2.OutputBias);
        Assert.Equal(10000.0, qwen2.RopeTheta);
        var qwen3 = ModelConfig.FromJson(Minimal("qwen3"));
        Assert.Equal(128, qwen3.HeadDim); // Qwen3Config's default head_dim
        Assert.False(qwen3.QkvBias);
        Assert.True(qwen3.QkNorm);
        var llama = ModelConfig.FromJson(Minimal("llama"));
        Assert.False(llama.QkvBias);
        Assert.False(llama.MlpBias);
    }

    [Fact]
    public void RopeParametersAndFlatKeysAgree()
    {
        var flat = Minimal("llama");
        flat["rope_theta"] = 500000.0;
        flat["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 };
        var nested = Minimal("llama");
        nested["rope_parameters"] = new JsonObject { ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 };
        var a = ModelConfig.FromJson(flat);
        var b = ModelConfig.FromJson(nested);
        Assert.Equal(500000.0, b.RopeTheta);
        Assert.Equal(a.RopeScaling, b.RopeScaling);
        var legacy = Minimal("llama");
        legacy["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 };
        Assert.Equal("linear", ModelConfig.FromJson(legacy).RopeScaling!.Type);
    }

    [Theory]
    [InlineData("hidden_size", "config.json: hidden_size: missing")]
    [InlineData("vocab_size", "config.json: vocab_size: missing")]
    [InlineData("model_type", "config.json: model_type: missing")]
    public void MissingKeyIsNamed(string key, string message)
    {
        var raw = Minimal("qwen2");
        raw.Remove(key);
        Assert.Equal(message, Assert.Throws<InputError>(() => ModelConfig.FromJson(raw)).Message);
    }

    [Fact]
    public void UnsupportedValuesAreNamed()
    {
        var raw = Minimal("mistral");
        Assert.Contains("model_type: unsupported model type 'mistral'", Assert.Throws<InputError>(() => ModelConfig.FromJson(raw)).Message);
        raw = Minimal("llama");
        raw["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 };
        Assert.Contains("rope_scaling.rope_type: RoPE type 'yarn' is not supported", Assert.Throws<InputError>(() => ModelConfig.FromJson(raw)).Message);
        raw = Minimal("qwen2");
        raw["num_key_value_heads"] = 3;
        Assert.Contains("num_key_value_heads", Assert.Throws<InputError>(() => ModelConfig.FromJson(raw)).Message);
    }

    [Fact]
    public void Llama3RopeMatchesHandComputation()
    {
        var scaling = new RopeScaling("llama3", 8.0, 1.0, 4.0, 64);
        using var inv = RotaryEmbedding.InverseFrequencies(16, 500000.0, scaling);
        var values = inv.data<float>().ToArray();
        for (int i = 0; i < 8; i++)
        {
            double f = 1.0 / Math.Pow(500000.0, 2.0 * i / 16);
            double wavelen = 2 * Math.PI / f;
            double expected = wavelen < 64 / 4.0 ? f                                  // high frequency: kept
                : wavelen > 64 / 1.0 ? f / 8                                          // low frequency: scaled
                : ((1 - (64 / wavelen - 1) / 3) / 8 + (64 / wavelen - 1) / 3) * f;    // smoothed between
            Assert.Equal(expected, values[i], 1e-6 * Math.Max(1, expected));
        }
    }

    [Fact]
    public void ParameterCountMatchesModel()
    {
        foreach (var arch in new[] { Architecture.Qwen2, Architecture.Qwen3, Architecture.Llama })
            foreach (var tied in new[] { true, false })
            {
                var config = TestModels.Config(arch, tied);
                using var model = new CausalLM(config);
                Assert.Equal(model.parameters().Sum(p => p.numel()), config.ParameterCount());
            }
    }

    [Fact]
    public void CreatedConfigRoundTrips()
    {
        var config = Preset.Get("llama-3.2-1b", Architecture.Llama).ToConfig();
        var again = ModelConfig.FromJson((JsonObject)JsonNode.Parse(config.ToJson())!);
        Assert.Equal(config.RopeScaling, again.RopeScaling);
        Assert.Equal(1_235_814_400, again.ParameterCount()); // Llama 3.2 1B
        Assert.Equal(494_032_768, Preset.Get("qwen2.5-0.5b", Architecture.Qwen2).ToConfig().ParameterCount());
        Assert.Equal(596_049_920, Preset.Get("qwen3-0.6b", Architecture.Qwen3).ToConfig().ParameterCount());
    }
}
