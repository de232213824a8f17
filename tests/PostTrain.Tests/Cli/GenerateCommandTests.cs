using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Tests.Tokenization;

namespace PostTrain.Tests.Cli;

public class GenerateCommandTests(TokenizerFixture tokenizers) : IClassFixture<TokenizerFixture>
{
    static string InitTiny(params string[] extra)
    {
        var dir = Path.Combine(TestModels.TempDir(), "model");
        var (code, _, stderr) = CliRunner.Run(["init", "--arch", "qwen2", "--output", dir, "--seed", "5", .. extra]);
        Assert.True(code == 0, stderr);
        return dir;
    }

    static string Write(params string[] lines)
    {
        var path = Path.Combine(TestModels.TempDir(), "in.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    static JsonObject[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!.AsObject()).ToArray();

    [Fact]
    public void GreedyPromptIdsMatchTheEngineInInputOrder()
    {
        var model = InitTiny();
        var input = Write("{\"prompt_ids\": [1, 2, 3]}", "", "{\"prompt_ids\": [7, 8, 9, 10, 11, 12, 13]}", "{\"prompt_ids\": [400]}");
        var output = Path.Combine(TestModels.TempDir(), "out.jsonl");
        var (code, _, stderr) = CliRunner.Run("generate", "--model", model, "--input", input, "--output", output,
            "--temperature", "0", "--max-new-tokens", "6", "--batch-size", "2");
        Assert.True(code == 0, stderr);
        var lines = Lines(File.ReadAllText(output));
        Assert.Equal(3, lines.Length);
        int[][] prompts = [[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [400]];
        using var lm = HfCheckpoint.Load(model);
        var expected = new GenerationEngine(lm).Generate(prompts, new SamplingOptions { Temperature = 0, MaxNewTokens = 6, EosTokenIds = [] });
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(prompts[i], lines[i]["prompt_ids"]!.AsArray().Select(x => (int)x!).ToArray());
            var c = lines[i]["completions"]!.AsArray().Single()!.AsObject();
            Assert.Equal(expected[i][0].TokenIds, c["token_ids"]!.AsArray().Select(x => (int)x!).ToArray());
            Assert.Equal("length", (string)c["finish_reason"]!);
            Assert.Null(c["text"]);
            Assert.Equal(6, c["logprobs"]!.AsArray().Count);
        }
    }

    [Fact]
    public void Bf16RunsTheModelInBf16()
    {
        var model = InitTiny();
        var input = Write("{\"prompt_ids\": [1, 2, 3]}", "{\"prompt_ids\": [40, 41]}");
        var (code, stdout, stderr) = CliRunner.Run("generate", "--model", model, "--input", input,
            "--temperature", "0", "--max-new-tokens", "5", "--dtype", "bf16");
        Assert.True(code == 0, stderr);
        var lines = Lines(stdout);
        int[][] prompts = [[1, 2, 3], [40, 41]];
        using var lm = HfCheckpoint.Load(model, TorchSharp.torch.ScalarType.BFloat16);
        var expected = new GenerationEngine(lm).Generate(prompts, new SamplingOptions { Temperature = 0, MaxNewTokens = 5, EosTokenIds = [] });
        for (int i = 0; i < 2; i++)
        {
            var c = lines[i]["completions"]!.AsArray().Single()!.AsObject();
            Assert.Equal(expected[i][0].TokenIds, c["token_ids"]!.AsArray().Select(x => (int)x!).ToArray());
            Assert.Equal(expected[i][0].LogProbs, c["logprobs"]!.AsArray().Select(x => (float)x!).ToArray());
        }
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void TextPromptsWithTheTokenizerSampleReproduciblyAndStop()
    {
        var model = InitTiny("--tokenizer", tokenizers.Dir("qwen3"));
        var input = Write("{\"prompt\": \"Hello, world\"}", "{\"prompt_ids\": [9707, 11]}");
        string[] args = ["generate", "--model", model, "--input", input, "--temperature", "0.8", "--top-p", "0.9",
            "--n", "3", "--max-new-tokens", "5", "--seed", "4"];
        var (code, first, stderr) = CliRunner.Run(args);
        Assert.True(code == 0, stderr);
        var (_, second, _) = CliRunner.Run(args);
        Assert.Equal(first, second);
        var lines = Lines(first);
        Assert.Equal("Hello, world", (string)lines[0]["prompt"]!);
        var tok = tokenizers.Get("qwen3");
        foreach (var c in lines[0]["completions"]!.AsArray())
        {
            var ids = c!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();
            Assert.Equal(tok.Decode(ids, skipSpecialTokens: true), (string)c["text"]!);
        }
        Assert.Equal(3, lines[1]["completions"]!.AsArray().Count);

        // A stop string taken from a completion cuts it there.
        var text = (string)lines[0]["completions"]![0]!["text"]!;
        if (text.Length >= 2)
        {
            var stop = text.Substring(text.Length / 2, 1);
            var (code2, stopped, err2) = CliRunner.Run([.. args, "--stop", stop]);
            Assert.True(code2 == 0, err2);
            var c = Lines(stopped)[0]["completions"]![0]!;
            Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], (string)c["text"]!);
            Assert.Equal("stop", (string)c["finish_reason"]!);
        }
    }

    [Theory]
    [InlineData("{\"prompt_ids\": [1, 512]}", new string[0], "in.jsonl:1: prompt_ids[1]: token id 512 is outside the vocabulary")]
    [InlineData("{\"prompt_ids\": []}", new string[0], "in.jsonl:1: prompt_ids: the prompt has no tokens")]
    [InlineData("{\"prompt\": \"hi\"}", new string[0], "no tokenizer.json")]
    [InlineData("{\"input_ids\": [1]}", new string[0], "in.jsonl:1: expected one of")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--temperature", "-1" }, "--temperature: must be 0 (greedy) or positive")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--top-p", "1.5" }, "--top-p: must be in (0, 1]")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--top-p", "0" }, "--top-p: must be in (0, 1]")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--n", "0" }, "--n: must be positive")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--max-new-tokens", "0" }, "--max-new-tokens: must be positive")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--stop", "x" }, "--stop need the model's tokenizer")]
    [InlineData("{\"prompt_ids\": [1]}", new[] { "--dtype", "int8" }, "int8")]
    public void BadInputIsOneLineExitTwoAndNoOutput(string line, string[] extra, string message)
    {
        var model = InitTiny();
        var input = Write(line);
        var output = Path.Combine(TestModels.TempDir(), "out.jsonl");
        var (code, _, stderr) = CliRunner.Run(["generate", "--model", model, "--input", input, "--output", output, .. extra]);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void APromptLongerThanTheContextIsAnErrorBeforeGenerating()
    {
        var model = InitTiny();
        var ids = string.Join(", ", Enumerable.Repeat(3, 2049));
        var input = Write("{\"prompt_ids\": [1, 2]}", $"{{\"prompt_ids\": [{ids}]}}");
        var (code, stdout, stderr) = CliRunner.Run("generate", "--model", model, "--input", input, "--temperature", "0");
        Assert.Equal(2, code);
        Assert.Contains("in.jsonl:2: prompt_ids: the prompt has 2049 tokens, more than the model's context of 2048", stderr);
        Assert.Equal("", stdout);
    }
}

public class ChatAndMessagesTests(TokenizerFixture tokenizers) : IClassFixture<TokenizerFixture>
{
    string InitWithTokenizer()
    {
        var dir = Path.Combine(TestModels.TempDir(), "model");
        var (code, _, stderr) = CliRunner.Run("init", "--arch", "qwen3", "--output", dir, "--seed", "2", "--tokenizer", tokenizers.Dir("qwen3"));
        Assert.True(code == 0, stderr);
        return dir;
    }

    [Trait("Category", "Slow")]
    [Fact]
    public void MessagesArePromptedThroughTheChatTemplate()
    {
        var model = InitWithTokenizer();
        var input = Path.Combine(TestModels.TempDir(), "in.jsonl");
        File.WriteAllText(input, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi there\"}]}\n");
        var (code, stdout, stderr) = CliRunner.Run("generate", "--model", model, "--input", input, "--temperature", "0", "--max-new-tokens", "4");
        Assert.True(code == 0, stderr);
        var line = JsonNode.Parse(stdout.Trim())!.AsObject();
        Assert.Equal("Hi there", (string)line["messages"]![0]!["content"]!);
        var ids = line["completions"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray();

        // The same as generating from the rendered prompt's ids.
        var template = PostTrain.Tokenization.ChatTemplate.FromModelDirectory(model);
        var rendered = template.Render(new PostTrain.Tokenization.ChatTemplateInput
        {
            Messages = JsonNode.Parse("[{\"role\": \"user\", \"content\": \"Hi there\"}]")!.AsArray(),
            AddGenerationPrompt = true,
        }).Text;
        Assert.EndsWith("<|im_start|>assistant\n", rendered);
        var promptIds = tokenizers.Get("qwen3").Encode(rendered);
        File.WriteAllText(input, $"{{\"prompt_ids\": [{string.Join(",", promptIds)}]}}\n");
        var (code2, stdout2, stderr2) = CliRunner.Run("generate", "--model", model, "--input", input, "--temperature", "0", "--max-new-tokens", "4");
        Assert.True(code2 == 0, stderr2);
        Assert.Equal(ids, JsonNode.Parse(stdout2.Trim())!["completions"]![0]!["token_ids"]!.AsArray().Select(x => (int)x!).ToArray());
    }

    [Fact]
    public void ChatStreamsRepliesKeepsTheConversationAndExits()
    {
        var model = InitWithTokenizer();
        PostTrain.Cli.Commands.ChatCommand.Input.Value = new StringReader("Hello\nHow are you?\n/reset\nAgain\n/exit\nnever read\n");
        try
        {
            var (code, stdout, stderr) = CliRunner.Run("chat", "--model", model, "--system", "Be brief.", "--temperature", "0", "--max-new-tokens", "5");
            Assert.True(code == 0, stderr);
            Assert.Contains("(conversation reset)", stdout);
            // Five prompts shown (three user turns, /reset, /exit); the line after /exit is never read.
            Assert.Equal(6, stdout.Split("> ").Length);
            Assert.StartsWith("Chatting with", stdout);
        }
        finally
        {
            PostTrain.Cli.Commands.ChatCommand.Input.Value = null;
        }
    }
}
