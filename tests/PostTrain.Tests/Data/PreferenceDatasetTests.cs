using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;
using PostTrain.Trainers;

namespace PostTrain.Tests.Data;

public class PreferenceDatasetTests
{
    static string Write(params string[] lines)
    {
        var path = Path.Combine(TestModels.TempDir(), "d.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    static string Texts(JsonArray messages) => string.Join("|", messages.Select(m => $"{m!["role"]}:{m["content"]}"));

    [Fact]
    public void ExplicitPromptAsStrings()
    {
        var d = PreferenceDataset.Load(Write("""{"prompt": "2+2=", "chosen": "4", "rejected": "5"}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.ExplicitPrompt, false), d.Format);
        Assert.Equal(new TextPreferenceExample(d.Examples[0].Source, "2+2=", "4", "5"), d.Examples[0]);
    }

    [Fact]
    public void ExplicitPromptAsMessages()
    {
        var d = PreferenceDataset.Load(Write(
            """{"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}], "rejected": [{"role": "assistant", "content": "go away"}]}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.ExplicitPrompt, true), d.Format);
        var e = Assert.IsType<ConversationPreferenceExample>(d.Examples[0]);
        Assert.Equal("system:s|user:hi", Texts(e.Prompt));
        Assert.Equal("assistant:hello", Texts(e.Chosen));
        Assert.Equal("assistant:go away", Texts(e.Rejected));
    }

    [Fact]
    public void ImplicitPromptIsTheSharedBeginningOfTheConversations()
    {
        var d = PreferenceDataset.Load(Write(
            """{"chosen": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Yes."}], "rejected": [{"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "No."}]}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.ImplicitPrompt, true), d.Format);
        var e = Assert.IsType<ConversationPreferenceExample>(d.Examples[0]);
        Assert.Equal("user:Sky?|assistant:Blue.|user:Sure?", Texts(e.Prompt));
        Assert.Equal("assistant:Yes.", Texts(e.Chosen));
        Assert.Equal("assistant:No.", Texts(e.Rejected));
    }

    [Fact]
    public void ImplicitPromptAsStringsLeavesTheSpaceToTheCompletions()
    {
        // TRL's extract_prompt: the prompt ends before the space that precedes the first difference.
        var d = PreferenceDataset.Load(Write("""{"chosen": "Who are you? I am Ada.", "rejected": "Who are you? I am Bob."}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.ImplicitPrompt, false), d.Format);
        var e = Assert.IsType<TextPreferenceExample>(d.Examples[0]);
        Assert.Equal(("Who are you? I am", " Ada.", " Bob."), (e.Prompt, e.Chosen, e.Rejected));
        // A string prompt beside message-list completions is ignored, as TRL's maybe_extract_prompt does.
        var m = PreferenceDataset.Load(Write(
            """{"prompt": "x", "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.ImplicitPrompt, true), m.Format);
    }

    [Fact]
    public void OpenAiDpoJsonlWithTools()
    {
        var d = PreferenceDataset.Load(Write(
            """{"input": {"messages": [{"role": "user", "content": "Hello, can you tell me how cold San Francisco is today?"}], "tools": [{"type": "function", "function": {"name": "get_weather"}}], "parallel_tool_calls": true}, "preferred_output": [{"role": "assistant", "content": "Today in San Francisco, it is not quite cold as expected."}], "non_preferred_output": [{"role": "assistant", "content": "It is not particularly cold in San Francisco today."}]}"""));
        Assert.Equal(new PreferenceFormat(PreferenceLayout.OpenAi, true), d.Format);
        var e = Assert.IsType<ConversationPreferenceExample>(d.Examples[0]);
        Assert.Single(e.Prompt);
        Assert.NotNull(e.Tools);
        Assert.StartsWith("assistant:Today", Texts(e.Chosen));
    }

    [Fact]
    public void EveryBadRecordIsNamedWithLineAndFieldAndSkipInvalidCountsThem()
    {
        var path = Write(
            """{"prompt": "a", "chosen": "b", "rejected": "c"}""",
            """{"prompt": "a", "chosen": 5, "rejected": "c"}""",
            """{"prompt": "a", "chosen": "b"}""",
            """{"prompt": ["x"], "chosen": ["y"], "rejected": "c"}""",
            """{"text": "hello"}""",
            """{"prompt": "a", "chosen": "b", "rejected": null}""",
            """{"prompt": "d", "chosen": "e", "rejected": "f"}""");
        var e = Assert.Throws<DatasetError>(() => PreferenceDataset.Load(path));
        Assert.Equal(
        [
            $"{path}:2: chosen: expected a string, got a number",
            $"{path}:3: rejected: missing",
            $"{path}:4: prompt: is a message list, but this dataset's prompts and completions are strings",
            $"{path}:5: prompt: missing",
            $"{path}:6: rejected: is null",
        ], e.Errors);
        var skipped = PreferenceDataset.Load(path, skipInvalid: true);
        Assert.Equal(2, skipped.Examples.Count);
        Assert.Equal(5, skipped.Skipped);
    }

    [Theory]
    [InlineData("""{"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "user", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""", "preferred_output[0].role: expected \"assistant\"")]
    [InlineData("""{"input": {"messages": [{"role": "user"}]}, "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""", "input.messages[0].content: missing")]
    [InlineData("""{"input": "q", "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""", "input: expected an object {\"messages\": [...]}, got a string")]
    [InlineData("""{"input": {"messages": [{"role": "user", "content": "q"}]}, "preferred_output": [{"role": "assistant", "content": "a"}]}""", "non_preferred_output: missing")]
    [InlineData("""{"input": {"messages": [{"role": "user", "content": "q"}], "tools": 3}, "preferred_output": [{"role": "assistant", "content": "a"}], "non_preferred_output": [{"role": "assistant", "content": "b"}]}""", "input.tools: expected a list of tool definitions, got a number")]
    [InlineData("""{"chosen": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}]}""", "rejected: shares no first message with \"chosen\"")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "wizard", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]}""", "chosen[0].role: unknown role 'wizard'")]
    [InlineData("""{"prompt": [{"role": "user", "content": "q"}], "chosen": [], "rejected": [{"role": "assistant", "content": "b"}]}""", "chosen: is empty")]
    [InlineData("""{"question": "q"}""", "no preference fields")]
    public void BadRecordsNameTheirField(string line, string message)
    {
        var path = Write("", line);
        var e = Assert.Throws<DatasetError>(() => PreferenceDataset.Load(path));
        Assert.StartsWith($"{path}:2: {message}", Assert.Single(e.Errors));
    }

    [Fact]
    public void StringPairsGetEosAndCompletionsAreTheTokensPastThePrompt()
    {
        var dir = TestModels.TempDir();
        TestTokenizers.WriteTiny(dir);
        var tokenizer = HfTokenizer.FromDirectory(dir);
        var tokenization = new DpoTokenization(tokenizer, null);
        var pair = tokenization.Tokenize(new TextPreferenceExample("x", "Who are you?", " I am Ada.", " I am Bob.<|im_end|>"));
        Assert.Equal(tokenizer.Encode("Who are you?", addSpecialTokens: true), pair.PromptIds);
        Assert.Equal(tokenizer.Encode("Who are you? I am Ada.<|im_end|>", addSpecialTokens: true)[pair.PromptIds.Length..], pair.ChosenIds);
        Assert.Equal(" I am Ada.<|im_end|>", tokenizer.Decode(pair.ChosenIds));
        Assert.Equal(" I am Bob.<|im_end|>", tokenizer.Decode(pair.RejectedIds)); // EOS not doubled
        Assert.Equal(0, tokenization.PrefixMismatches);
    }

    [Fact]
    public void ConversationsPromptWithTheGenerationPromptAndCompleteWithTheTemplatesEndOfTurn()
    {
        var dir = TestModels.TempDir();
        TestTokenizers.WriteTiny(dir);
        var tokenizer = HfTokenizer.FromDirectory(dir);
        var tokenization = new DpoTokenization(tokenizer, ChatTemplate.FromModelDirectory(dir));
        var d = PreferenceDataset.Load(Write(
            """{"prompt": [{"role": "user", "content": "Who are you?"}], "chosen": [{"role": "assistant", "content": "Zed."}], "rejected": [{"role": "assistant", "content": "Ada."}]}"""));
        var pair = tokenization.Tokenize(d.Examples[0]);
        Assert.Equal("<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\n", tokenizer.Decode(pair.PromptIds));
        Assert.Equal("Zed.<|im_end|>\n", tokenizer.Decode(pair.ChosenIds));
        Assert.Equal("Ada.<|im_end|>\n", tokenizer.Decode(pair.RejectedIds));
        // keep_start truncation to --max-length; a prompt that fills it drops the pair.
        var cut = pair.Truncate(pair.PromptIds.Length + 2)!;
        Assert.Equal(pair.ChosenIds[..2], cut.ChosenIds);
        Assert.Null(pair.Truncate(pair.PromptIds.Length));
    }
}
