using System.Text.Json;

namespace PostTrain.Tests.Tokenization;

public sealed class TokenizeCliTests(TokenizerFixture fx) : IClassFixture<TokenizerFixture>
{
    (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = PostTrain.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    string Temp(string name, string content)
    {
        var path = Path.Combine(fx.Root, "cli-" + Guid.NewGuid().ToString("N") + "-" + name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void EncodesText()
    {
        var (code, output, err) = Cli("tokenize", "--model", fx.Dir("qwen3"), "--text", "Hello, world!");
        Assert.True(code == 0, err);
        Assert.Equal("""{"ids":[9707,11,1879,0],"tokens":["Hello",",","Ġworld","!"]}""", output.Trim());
    }

    [Fact]
    public void EncodesWithSpecialTokensAndDecodes()
    {
        var (code, output, err) = Cli("tokenize", "--model", fx.Dir("llama3-template"), "--text", "Hello", "--add-special-tokens");
        Assert.True(code == 0, err);
        Assert.Equal("""{"ids":[128000,9906],"tokens":["<|begin_of_text|>","Hello"]}""", output.Trim());
        (code, output, err) = Cli("tokenize", "--model", fx.Dir("llama3-template"), "--decode", "--text", "[128000, 9906]");
        Assert.True(code == 0, err);
        Assert.Equal("""{"text":"<|begin_of_text|>Hello"}""", output.Trim());
        (code, output, _) = Cli("tokenize", "--model", fx.Dir("llama3-template"), "--decode", "--skip-special-tokens", "--text", "128000 9906");
        Assert.Equal("""{"text":"Hello"}""", output.Trim());
    }

    [Fact]
    public void JsonlRoundTripThroughFiles()
    {
        var texts = new[] { "héllo wörld", "<|im_start|>user\nhi<|im_end|>", "", "日本語 😀 𝐀𝑥" };
        var input = Temp("in.jsonl", string.Join("\n", texts.Select(t => JsonSerializer.Serialize(new { text = t }))) + "\n");
        var encoded = Path.Combine(fx.Root, "cli-" + Guid.NewGuid().ToString("N") + "-enc.jsonl");
        var (code, _, err) = Cli("tokenize", "--model", fx.Dir("qwen3"), "--input", input, "--output", encoded);
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(encoded);
        Assert.Equal(texts.Length, lines.Length);
        var tok = fx.Get("qwen3");
        for (int i = 0; i < texts.Length; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            Assert.Equal(tok.Encode(texts[i]), doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
            Assert.Equal(doc.RootElement.GetProperty("ids").GetArrayLength(), doc.RootElement.GetProperty("tokens").GetArrayLength());
        }
        var decoded = Path.Combine(fx.Root, "cli-" + Guid.NewGuid().ToString("N") + "-dec.jsonl");
        (code, _, err) = Cli("tokenize", "--model", fx.Dir("qwen3"), "--decode", "--input", encoded, "--output", decoded);
        Assert.True(code == 0, err);
        var back = File.ReadAllLines(decoded).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()).ToArray();
        Assert.Equal(texts, back);
    }

    [Theory]
    [InlineData("{\"text\": \"ok\"}\n{\"txt\": \"x\"}\n", false, ":2: text: missing")]
    [InlineData("{\"text\": 5}\n", false, ":1: text: expected a string")]
    [InlineData("{\"text\": \"ok\"}\nnot json\n", false, ":2: not valid JSON")]
    [InlineData("[1]\n", false, ":1: expected a JSON object")]
    [InlineData("{\"ids\": [1, 2]}\n{\"ids\": [1, 99999999]}\n", true, ":2: ids: id 99999999 is outside the vocabulary")]
    [InlineData("{\"ids\": [1, \"a\"]}\n", true, ":1: ids: element 1 is not an integer")]
    [InlineData("{\"ids\": [-1]}\n", true, ":1: ids: id -1 is outside the vocabulary")]
    public void BadLinesAreInputErrorsWithFileAndLine(string content, bool decode, string expected)
    {
        var input = Temp("bad.jsonl", content);
        var args = new List<string> { "tokenize", "--model", fx.Dir("qwen3"), "--input", input };
        if (decode) args.Add("--decode");
        var (code, _, err) = Cli([.. args]);
        Assert.Equal(2, code);
        Assert.StartsWith("error: " + input + expected, err.Trim());
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void UsageErrors()
    {
        var (code, _, err) = Cli("tokenize", "--model", fx.Dir("qwen3"));
        Assert.Equal(2, code);
        Assert.Contains("exactly one of --text and --input", err);
        (code, _, err) = Cli("tokenize", "--model", Path.Combine(fx.Root, "nope"), "--text", "x");
        Assert.Equal(2, code);
        Assert.Contains("not found", err);
        (code, _, err) = Cli("tokenize", "--text", "x");
        Assert.Equal(2, code);
    }
}
