using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Models;

namespace PostTrain.Tests.Cli;

public class InitAndLogprobsTests
{
    static string InitTiny(string arch = "qwen2", params string[] extra)
    {
        var dir = Path.Combine(TestModels.TempDir(), "model");
        var (code, stdout, stderr) = CliRunner.Run(["init", "--arch", arch, "--output", dir, "--seed", "3", .. extra]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"Created a {arch} model", stdout);
        return dir;
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("llama")]
    public void InitWritesALoadableModel(string arch)
    {
        var dir = InitTiny(arch);
        using var model = HfCheckpoint.Load(dir);
        Assert.Equal(arch, model.Config.ModelType);
        Assert.True(model.Config.ParameterCount() < 1_000_000);
    }

    [Fact]
    public void InitIsDeterministicForASeed()
    {
        var a = InitTiny("llama");
        var b = InitTiny("llama");
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "model.safetensors")), File.ReadAllBytes(Path.Combine(b, "model.safetensors")));
    }

    [Fact]
    public void InitRefusesANonEmptyOutputBeforeAnyOtherWork()
    {
        var dir = TestModels.TempDir();
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "mine");
        // A shape that could not even be allocated: the output is refused first, in no time.
        var (code, _, stderr) = CliRunner.Run("init", "--arch", "qwen2", "--preset", "qwen2.5-0.5b", "--layers", "100000000", "--output", dir);
        Assert.Equal(2, code);
        Assert.Equal($"error: {dir}: output directory exists and is not empty (--overwrite replaces it)", stderr.Trim());
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void InitShapeOptionsAndBf16()
    {
        var dir = InitTiny("qwen3", "--layers", "3", "--hidden-size", "48", "--heads", "6", "--kv-heads", "3",
            "--intermediate-size", "96", "--vocab-size", "300", "--dtype", "bf16");
        var config = HfCheckpoint.LoadConfig(dir);
        Assert.Equal((3, 48, 6, 3, 8, 96, 300), (config.NumHiddenLayers, config.HiddenSize, config.NumAttentionHeads,
            config.NumKeyValueHeads, config.HeadDim, config.IntermediateSize, config.VocabSize));
        Assert.Equal("bfloat16", config.TorchDtype);
    }

    [Fact]
    public void InitWithTokenizerFollowsItsVocabulary()
    {
        using var tokenizers = new PostTrain.Tests.Tokenization.TokenizerFixture();
        var dir = InitTiny("qwen3", "--tokenizer", tokenizers.Dir("qwen3"));
        var config = HfCheckpoint.LoadConfig(dir);
        Assert.Equal(151669, config.VocabSize); // len(tokenizer) of Qwen3
        Assert.Equal([151645], config.EosTokenIds); // <|im_end|>, from tokenizer_config.json
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(dir, "tokenizer_config.json")));
        var real = HfCheckpoint.LoadConfig(InitTiny("qwen3", "--preset", "qwen3-0.6b", "--layers", "1", "--hidden-size", "32", "--heads", "2", "--kv-heads", "1", "--head-dim", "16", "--intermediate-size", "32", "--tokenizer", tokenizers.Dir("qwen3")));
        Assert.Equal(151936, real.VocabSize); // a real preset keeps its padded embedding size
    }

    [Fact]
    public void LogprobsScoresEveryLineInOrder()
    {
        var dir = InitTiny();
        var root = Path.GetDirectoryName(dir)!;
        var input = Path.Combine(root, "in.jsonl");
        int[][] rows = [[1, 2, 3, 4, 5, 6], [7], [9, 10], [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]];
        File.WriteAllLines(input, rows.Select(r => new JsonObject { ["input_ids"] = new JsonArray(r.Select(x => (JsonNode)x).ToArray()) }.ToJsonString()));
        var output = Path.Combine(root, "out.jsonl");
        var (code, _, stderr) = CliRunner.Run("logprobs", "--model", dir, "--input", input, "--output", output, "--batch-size", "3");
        Assert.True(code == 0, stderr);
        var lines = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(rows.Length, lines.Length);

        using var model = HfCheckpoint.Load(dir);
        var expected = TokenScorer.LogProbs(model, rows, batchSize: 1);
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(rows[i], lines[i]["input_ids"]!.AsArray().Select(x => x!.GetValue<int>()));
            var lps = lines[i]["logprobs"]!.AsArray();
            Assert.Null(lps[0]);
            for (int t = 1; t < rows[i].Length; t++)
                Assert.Equal(expected[i][t], lps[t]!.GetValue<float>(), 1e-5f);
            if (rows[i].Length == 1) Assert.Null(lines[i]["nll"]);
            else Assert.Equal(-expected[i].Skip(1).Average(), lines[i]["nll"]!.GetValue<double>(), 1e-5);
        }
    }

    static (int, string, string, string) LogprobsOn(string dir, string content)
    {
        var root = Path.GetDirectoryName(dir)!;
        var input = Path.Combine(root, "in.jsonl");
        File.WriteAllText(input, content);
        var output = Path.Combine(root, "out.jsonl");
        var (code, _, stderr) = CliRunner.Run("logprobs", "--model", dir, "--input", input, "--output", output);
        return (code, stderr, input, output);
    }

    [Fact]
    public void BadJsonLineIsNamedAndNothingIsWritten()
    {
        var dir = InitTiny();
        var (code, stderr, input, output) = LogprobsOn(dir, "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2\n");
        Assert.Equal(2, code);
        Assert.StartsWith($"error: {input}:2: not valid JSON", stderr);
        Assert.Single(stderr.TrimEnd().Split('\n'));
        Assert.False(File.Exists(output));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(output)!)); // only the input
    }

    [Fact]
    public void IdOutsideVocabularyIsNamed()
    {
        var dir = InitTiny();
        var (code, stderr, input, output) = LogprobsOn(dir, "{\"input_ids\": [1, 2]}\n\n{\"input_ids\": [3, 512]}\n");
        Assert.Equal(2, code);
        Assert.Equal($"error: {input}:3: input_ids[1]: token id 512 is outside the vocabulary (0..511)", stderr.TrimEnd());
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingFieldIsNamed()
    {
        var dir = InitTiny();
        var (code, stderr, input, _) = LogprobsOn(dir, "{\"ids\": [1, 2]}\n");
        Assert.Equal(2, code);
        Assert.Equal($"error: {input}:1: input_ids: missing (give input_ids, text or messages)", stderr.TrimEnd());
    }

    [Fact]
    public void MissingConfigKeyIsNamed()
    {
        var dir = InitTiny();
        var configPath = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config.Remove("num_hidden_layers");
        File.WriteAllText(configPath, config.ToJsonString());
        var (code, stderr, _, output) = LogprobsOn(dir, "{\"input_ids\": [1, 2]}\n");
        Assert.Equal(2, code);
        Assert.Equal($"error: {configPath}: num_hidden_layers: missing", stderr.TrimEnd());
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void BadOptionValuesExitWithCode2()
    {
        var dir = Path.Combine(TestModels.TempDir(), "m");
        var (code, _, stderr) = CliRunner.Run("init", "--arch", "gpt2", "--output", dir);
        Assert.Equal(2, code);
        Assert.Contains("gpt2", stderr);
        (code, _, stderr) = CliRunner.Run("init", "--arch", "qwen2", "--preset", "llama-3.2-1b", "--output", dir);
        Assert.Equal(2, code);
        Assert.Contains("--preset", stderr);
        (code, _, stderr) = CliRunner.Run("init", "--arch", "qwen2", "--dtype", "fp8", "--output", dir);
        Assert.Equal(2, code);
        Assert.Equal("error: --dtype: 'fp8' is not one of float32, bfloat16, float16 (or f32, fp32, bf16, f16, fp16)", stderr.Trim());
        Assert.False(Directory.Exists(dir));
    }
}
