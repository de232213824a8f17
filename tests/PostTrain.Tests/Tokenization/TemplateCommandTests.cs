using System.Text.Json.Nodes;
using PostTrain.Tokenization;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Tests.Tokenization;

public class TemplateModelDirectoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("posttrain-template-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private void Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
    }

    [Fact]
    public void ReadsStringTemplateAndTokenObjects()
    {
        Write("tokenizer_config.json", """{"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}", "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null}""");
        var t = ChatTemplate.FromModelDirectory(_dir);
        Assert.Equal("<s>hi</s>", t.Render(new ChatTemplateInput { Messages = [new JsonObject { ["role"] = "user", ["content"] = "hi" }] }).Text);
        Assert.False(t.SpecialTokens.ContainsKey("pad_token"));
    }

    [Fact]
    public void ChatTemplateJinjaWinsAndNamedListsWork()
    {
        Write("tokenizer_config.json", """{"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T{{ tools | length }}"}]}""");
        Assert.Equal("D", ChatTemplate.FromModelDirectory(_dir).Render(new ChatTemplateInput { Messages = [] }).Text);
        Assert.Equal("T1", ChatTemplate.FromModelDirectory(_dir, "tool_use").Render(new ChatTemplateInput { Messages = [], Tools = [new JsonObject()] }).Text);
        var e = Assert.Throws<InputError>(() => ChatTemplate.FromModelDirectory(_dir, "nope"));
        Assert.Contains("no template named 'nope'", e.Message);
        Write("chat_template.jinja", "J\n");
        Assert.Equal("J", ChatTemplate.FromModelDirectory(_dir).Render(new ChatTemplateInput { Messages = [] }).Text);
    }

    [Fact]
    public void MalformedConfigNamesTheFile()
    {
        Write("tokenizer_config.json", "{ not json");
        var e = Assert.Throws<InputError>(() => ChatTemplate.FromModelDirectory(_dir));
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Fact]
    public void SyntaxErrorNamesFileLineAndColumn()
    {
        Write("chat_template.jinja", "ok\n{% for x in messages %}\n  {{ x.content + }}\n{% endfor %}");
        var e = Assert.Throws<InputError>(() => ChatTemplate.FromModelDirectory(_dir));
        Assert.Contains("chat_template.jinja:3:", e.Message);
    }

    [Fact]
    public void RuntimeErrorNamesLineAndColumn()
    {
        var t = ChatTemplate.Parse("line1\n{{ messages[0].content.missing.x }}", "tmpl.jinja");
        var e = Assert.Throws<TemplateError>(() => t.Render(new ChatTemplateInput { Messages = [new JsonObject { ["content"] = "c" }] }));
        Assert.Equal(2, e.Line);
        Assert.StartsWith("tmpl.jinja:2:", e.Message);
        Assert.Contains("'str object' has no attribute 'missing'", e.Message);
    }

    [Fact]
    public void RealQwen3TemplateFromDirectory()
    {
        var spec = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(TemplateFixtures.Dir, "templates", "qwen3.json")))!;
        Write("tokenizer_config.json", new JsonObject { ["chat_template"] = (string)spec["chat_template"]!, ["eos_token"] = "<|im_end|>" }.ToJsonString());
        var t = ChatTemplate.FromModelDirectory(_dir);
        var text = t.Render(new ChatTemplateInput { Messages = [new JsonObject { ["role"] = "user", ["content"] = "hi" }], AddGenerationPrompt = true,
            Variables = new Dictionary<string, object?> { ["enable_thinking"] = false } }).Text;
        Assert.Equal("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", text);
    }
}

public class TemplateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("posttrain-template-cli-").FullName;
    public void Dispose() => Directory.Delete(_dir, true);

    private (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = PostTrain.Cli.Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private string Model()
    {
        var spec = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(TemplateFixtures.Dir, "templates", "qwen3.json")))!;
        var model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"),
            new JsonObject { ["chat_template"] = (string)spec["chat_template"]!, ["eos_token"] = "<|im_end|>" }.ToJsonString());
        return model;
    }

    [Fact]
    public void RendersJsonlWithSpans()
    {
        var model = Model();
        var input = Path.Combine(_dir, "in.jsonl");
        File.WriteAllText(input, """
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello 👋"}]}

            {"messages": [{"role": "user", "content": "Q"}], "tools": [{"type": "function", "function": {"name": "f"}}]}
            """);
        var output = Path.Combine(_dir, "out.jsonl");
        var (code, _, err) = Run("template", "--model", model, "--input", input, "--output", output, "--set", "enable_thinking=false");
        Assert.True(code == 0, err);
        var lines = File.ReadAllLines(output);
        Assert.Equal(2, lines.Length);
        var first = JsonNode.Parse(lines[0])!;
        var text = (string)first["text"]!;
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello 👋<|im_end|>\n", text);
        var span = first["assistant_spans"]!.AsArray().Single()!.AsArray();
        Assert.Equal("Hello 👋<|im_end|>", text[(int)span[0]!..(int)span[1]!]);
        Assert.Empty(JsonNode.Parse(lines[1])!["assistant_spans"]!.AsArray());
    }

    [Fact]
    public void AddGenerationPromptToStdout()
    {
        var model = Model();
        var input = Path.Combine(_dir, "in.jsonl");
        File.WriteAllText(input, """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Bye"}]}""" + "\n");
        var (code, stdout, err) = Run("template", "--model", model, "--input", input, "--add-generation-prompt");
        Assert.True(code == 0, err);
        var record = JsonNode.Parse(stdout)!;
        var text = (string)record["text"]!;
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n", text);
        var span = record["assistant_spans"]!.AsArray().Single()!.AsArray();
        Assert.Equal("Yo<|im_end|>", text[(int)span[0]!..(int)span[1]!]);
    }

    [Theory]
    [InlineData("""{"messages": "nope"}""", "in.jsonl:2: messages")]
    [InlineData("""{"messages": [{"content": "x"}]}""", "in.jsonl:2: messages[0].role")]
    [InlineData("""{"messages": [{"role": "user", "content": "ok"}], "tools": {}}""", "in.jsonl:2: tools")]
    [InlineData("""{"messages": [""", "in.jsonl:2")]
    public void BadLineIsOneErrorLineWithExitCode2(string line, string expected)
    {
        var model = Model();
        var input = Path.Combine(_dir, "in.jsonl");
        File.WriteAllText(input, """{"messages": [{"role": "user", "content": "ok"}]}""" + "\n" + line + "\n");
        var (code, _, err) = Run("template", "--model", model, "--input", input);
        Assert.Equal(2, code);
        Assert.True(err.Contains(expected), err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    [Fact]
    public void BadSetValue()
    {
        var (code, _, err) = Run("template", "--model", Model(), "--input", "x.jsonl", "--set", "enable_thinking");
        Assert.Equal(2, code);
        Assert.Contains("--set: 'enable_thinking': expected KEY=JSON", err);
    }
}
