using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Tests.Tokenization;

public class AssistantSpansTemplateTests
{
    private static List<string> SpanTexts(string template, string conversation, IReadOnlyDictionary<string, object?>? vars = null)
    {
        var t = TemplateFixtures.Template(template);
        var conv = TemplateFixtures.Conversation(conversation);
        var messages = conv["messages"]!.AsArray();
        var tools = conv["tools"]?.AsArray();
        var documents = conv["documents"]?.AsArray();
        var full = t.Render(new ChatTemplateInput { Messages = messages, Tools = tools, Documents = documents, Variables = vars }).Text;
        return t.AssistantSpans(messages, tools, documents, vars).Select(s => full[s.Start..s.End]).ToList();
    }

    [Fact]
    public void Qwen3EarlierTurnsWithoutReasoningLastTurnWithThink()
    {
        var spans = SpanTexts("qwen3", "reasoning_content");
        Assert.Equal(["Yes, 17 is prime.<|im_end|>", "<think>\n21/3 = 7.\n</think>\n\nNo: 21 = 3 × 7.<|im_end|>"], spans);
    }

    [Fact]
    public void Qwen3InlineThinkStrippedFromEarlierTurns()
    {
        var spans = SpanTexts("qwen3", "inline_think");
        Assert.Equal(["Seven.<|im_end|>", "<think>\nAvoid seven.\n</think>\n\nThree.<|im_end|>"], spans);
    }

    [Fact]
    public void Qwen3EnableThinkingFalse()
    {
        var vars = new Dictionary<string, object?> { ["enable_thinking"] = false };
        var spans = SpanTexts("qwen3", "system_multi_turn", vars);
        Assert.Equal(["4<|im_end|>", "6\n<|im_end|>", "You're welcome.<|im_end|>"], spans);
    }

    [Fact]
    public void Qwen3ToolCalls()
    {
        var spans = SpanTexts("qwen3", "tools_dict_args");
        Assert.Equal(2, spans.Count);
        Assert.StartsWith("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\", \"unit\": \"c\"}}\n</tool_call><|im_end|>", spans[0].TrimStart('\n').Replace("<think>\n\n</think>\n\n", ""));
        Assert.EndsWith("It is 21.5 °C and clear in Zürich.<|im_end|>", spans[1]);
    }

    [Fact]
    public void Llama3EndsWithEotId()
    {
        var spans = SpanTexts("llama3", "system_multi_turn");
        Assert.Equal(["4<|eot_id|>", "6<|eot_id|>", "You're welcome.<|eot_id|>"], spans);
    }

    [Fact]
    public void MistralIncludesEos()
    {
        var spans = SpanTexts("mistral-instruct", "single_turn");
        Assert.Equal(["\n         Hi there. How can I help?</s>"], spans); // this template leaves indentation before the turn
    }

    [Fact]
    public void GptOssFinalTurnEndsWithReturnEarlierWithEnd()
    {
        var spans = SpanTexts("gpt-oss", "tools_string_args_multi");
        Assert.Equal([
            " to=functions.add<|channel|>commentary json<|message|>\"{\\\"a\\\": 1.5, \\\"b\\\": 2}\"<|call|>",
            "<|channel|>final<|message|>1.5+2 = 3.5 and 3*4 = 12.<|end|>",
            "<|channel|>final<|message|>4.<|return|>"], spans);
    }

    [Fact]
    public void TemplateNotLoopingOverMessagesUsesSentinelFallback()
    {
        var t = ChatTemplate.Parse(
            "{% for i in range(messages | length) %}{% set m = messages[i] %}<|{{ m.role }}|>{{ m.content | trim }}<|end|>\n{% endfor %}" +
            "{% if add_generation_prompt %}<|assistant|>{% endif %}", "indexed.jinja");
        var messages = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = "Hi" },
            new JsonObject { ["role"] = "assistant", ["content"] = "Hello\n" },
            new JsonObject { ["role"] = "user", ["content"] = "Bye" },
            new JsonObject { ["role"] = "assistant", ["content"] = "Ciao" });
        var full = t.Render(new ChatTemplateInput { Messages = messages }).Text;
        var spans = t.AssistantSpans(messages).Select(s => full[s.Start..s.End]).ToList();
        Assert.Equal(["Hello<|end|>", "Ciao<|end|>"], spans);
    }

    [Fact]
    public void GenerationBlocksAreUsedWhenPresent()
    {
        var spans = SpanTexts("chatml-generation", "system_multi_turn");
        Assert.Equal(["4<|im_end|>", "6\n<|im_end|>", "You're welcome.<|im_end|>"], spans);
    }

    [Fact]
    public void EverySpanCoversItsAssistantContent()
    {
        foreach (var template in new[] { "qwen3", "qwen2.5-instruct", "llama3", "phi-3", "granite-3.0-instruct", "zephyr", "gemma-it" })
        {
            var spans = SpanTexts(template, "single_turn");
            Assert.Single(spans);
            Assert.Contains("Hi there. How can I help?", spans[0]);
            Assert.False(char.IsWhiteSpace(spans[0][^1]), template);
        }
    }
}

public class AssistantSpansAllTemplatesTests
{
    public static IEnumerable<object[]> Cases()
    {
        var names = Directory.GetFiles(Path.Combine(TemplateFixtures.Dir, "templates"), "*.json")
            .Select(Path.GetFileNameWithoutExtension).Where(n => n is not ("conversations" or "expected")).Order();
        var convs = TemplateFixtures.Load("templates/conversations.json").Select(c => (string)c!["name"]!).ToList();
        foreach (var n in names) foreach (var c in convs) yield return [n!, c];
    }

    /// <summary>For every template and conversation that renders: spans are ordered, disjoint, end on non-whitespace, and hold each assistant answer.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void SpansHoldAssistantContent(string template, string conversation)
    {
        var t = TemplateFixtures.Template(template);
        var conv = TemplateFixtures.Conversation(conversation);
        var messages = conv["messages"]!.AsArray();
        var input = new ChatTemplateInput { Messages = messages, Tools = conv["tools"]?.AsArray(), Documents = conv["documents"]?.AsArray() };
        string full;
        try { full = t.Render(input).Text; }
        catch (PostTrain.Tokenization.Jinja.TemplateError) { return; } // e.g. a template that rejects a system message
        var spans = t.AssistantSpans(messages, input.Tools, input.Documents);
        int prev = 0;
        foreach (var s in spans)
        {
            Assert.True(s.Start >= prev && s.End > s.Start && s.End <= full.Length);
            Assert.False(char.IsWhiteSpace(full[s.End - 1]));
            prev = s.End;
        }
        var answers = messages.Where(m => (string)m!["role"]! == "assistant" && m["tool_calls"] is null)
            .Select(m => ((string?)m!["content"] ?? "").Split("</think>")[^1].Trim()).Where(a => a.Length > 0).ToList();
        if (!t.HasGenerationBlocks) Assert.Equal(messages.Count(m => (string)m!["role"]! == "assistant"), spans.Count);
        foreach (var a in answers) Assert.Contains(spans, s => full[s.Start..s.End].Contains(a));
    }
}
