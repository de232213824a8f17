using System.Text.Json.Nodes;
using PostTrain.Data;

namespace PostTrain.Tests.Data;

public class SftDatasetTests
{
    static string Write(params string[] lines)
    {
        var path = Path.Combine(TestModels.TempDir(), "d.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    [Fact]
    public void DetectsEachFormat()
    {
        Assert.Equal(new DatasetFormat(DatasetKind.LanguageModeling, false), SftDataset.Load(Write("""{"text": "hello"}""")).Format);
        Assert.Equal(new DatasetFormat(DatasetKind.PromptCompletion, false), SftDataset.Load(Write("""{"prompt": "2+2=", "completion": "4"}""")).Format);
        var chat = SftDataset.Load(Write("""{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"""));
        Assert.Equal(new DatasetFormat(DatasetKind.LanguageModeling, true), chat.Format);
        var pc = SftDataset.Load(Write("""{"prompt": [{"role": "user", "content": "hi"}], "completion": [{"role": "assistant", "content": "hello"}]}"""));
        Assert.Equal(new DatasetFormat(DatasetKind.PromptCompletion, true), pc.Format);
        var example = Assert.IsType<ConversationExample>(pc.Examples[0]);
        Assert.Equal(1, example.PromptLength);
        Assert.Equal(2, example.Messages.Count);
    }

    [Fact]
    public void OpenAiChatFineTuningLinesWithToolsAreConversations()
    {
        var d = SftDataset.Load(Write("""
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "assistant", "content": "Sunny.", "weight": 1}], "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]}
            """));
        var example = Assert.IsType<ConversationExample>(d.Examples[0]);
        Assert.NotNull(example.Tools);
        Assert.Equal(5, example.Messages.Count);
    }

    [Fact]
    public void BadLine9000Of10000IsNamedWithItsField()
    {
        var lines = Enumerable.Range(1, 10_000).Select(i => i == 9_000
            ? """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "contents": "a"}]}"""
            : """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}""").ToArray();
        var path = Write(lines);
        var e = Assert.Throws<DatasetError>(() => SftDataset.Load(path));
        Assert.Equal([$"{path}:9000: messages[1].content: missing"], e.Errors);
        Assert.Equal($"{path}:9000: messages[1].content: missing", e.Message);
    }

    [Fact]
    public void EveryBadRecordIsReportedAndSkipInvalidCountsThem()
    {
        var path = Write(
            """{"prompt": "a", "completion": "b"}""",
            """{"prompt": "a", "completion": 5}""",
            """{"prompt": "a"}""",
            """{"text": "x"}""",
            """{"prompt": ["x"], "completion": "b"}""",
            """{"prompt": "c", "completion": "d"}""");
        var e = Assert.Throws<DatasetError>(() => SftDataset.Load(path));
        Assert.Equal(4, e.Errors.Count);
        Assert.Equal($"{path}:2: completion: expected a string, got a number", e.Errors[0]);
        Assert.Equal($"{path}:3: completion: missing", e.Errors[1]);
        Assert.StartsWith($"{path}:4: is language modelling", e.Errors[2]);
        Assert.Equal($"{path}:5: prompt: is a message list, but this dataset's prompts are strings", e.Errors[3]);
        Assert.EndsWith("4 bad records (use --skip-invalid to drop them)", e.Message);
        var skipped = SftDataset.Load(path, skipInvalid: true);
        Assert.Equal(2, skipped.Examples.Count);
        Assert.Equal(4, skipped.Skipped);
    }

    [Theory]
    [InlineData("""{"messages": [{"role": "wizard", "content": "x"}]}""", "messages[0].role: unknown role 'wizard'")]
    [InlineData("""{"messages": [{"content": "x"}]}""", "messages[0].role: missing")]
    [InlineData("""{"messages": "hello"}""", "messages: expected a list of messages, got a string")]
    [InlineData("""{"messages": []}""", "messages: is empty")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}]}""", "messages: has no assistant message")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}""", "messages[1].weight: expected 0 or 1")]
    [InlineData("""{"nothing": 1}""", "no known fields")]
    public void MessageProblemsNameTheirField(string line, string expected)
    {
        var path = Write(line);
        var e = Assert.Throws<DatasetError>(() => SftDataset.Load(path));
        Assert.Contains($"{path}:1: {expected}", e.Message);
    }
}
