using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;
using PostTrain.Trainers;

namespace PostTrain.Tests.Training;

public class SftTokenizationTests
{
    static (HfTokenizer, ChatTemplate) Tiny()
    {
        var dir = TestModels.TempDir();
        TestTokenizers.WriteTiny(dir);
        return (HfTokenizer.FromDirectory(dir), ChatTemplate.FromModelDirectory(dir));
    }

    static string TrainedText(HfTokenizer tok, TokenizedSequence s) =>
        tok.Decode(s.InputIds.Where((_, t) => s.Trained[t]).ToArray());

    static JsonArray Chat(params (string Role, string Content)[] turns) =>
        new(turns.Select(t => (JsonNode)new JsonObject { ["role"] = t.Role, ["content"] = t.Content }).ToArray());

    [Fact]
    public void ConversationsTrainAssistantTurnsWithTheirEndOfTurnToken()
    {
        var (tok, template) = Tiny();
        var example = new ConversationExample("t", Chat(("system", "Be brief."), ("user", "Hi there"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "See you.")), null);
        var s = new SftTokenization(tok, template, allTokens: false).Tokenize(example);
        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nSee you.<|im_end|>\n",
            tok.Decode(s.InputIds));
        Assert.Equal("Hello!<|im_end|>See you.<|im_end|>", TrainedText(tok, s));
        var all = new SftTokenization(tok, template, allTokens: true).Tokenize(example);
        Assert.Equal(all.Length - 1, all.TrainedCount);
    }

    [Fact]
    public void WeightZeroTurnsAreNotTrained()
    {
        var (tok, template) = Tiny();
        var messages = Chat(("user", "a"), ("assistant", "first"), ("user", "b"), ("assistant", "second"));
        messages[1]!["weight"] = 0;
        var s = new SftTokenization(tok, template, false).Tokenize(new ConversationExample("t", messages, null));
        Assert.Equal("second<|im_end|>", TrainedText(tok, s));
    }

    [Fact]
    public void ConversationalPromptCompletionTrainsTheCompletion()
    {
        var (tok, template) = Tiny();
        var example = new ConversationExample("t", Chat(("user", "2+2?"), ("assistant", "4")), null, PromptLength: 1);
        var s = new SftTokenization(tok, template, false).Tokenize(example);
        Assert.Equal("4<|im_end|>\n", TrainedText(tok, s));
    }

    [Fact]
    public void TextAndPromptCompletionStrings()
    {
        var (tok, template) = Tiny();
        var sft = new SftTokenization(tok, template, false);
        var text = sft.Tokenize(new TextExample("t", "the cat"));
        Assert.Equal("the cat<|im_end|>", tok.Decode(text.InputIds)); // EOS appended
        Assert.Equal(text.Length - 1, text.TrainedCount);
        var pc = sft.Tokenize(new PromptCompletionExample("t", "Q: the answer? A:", " yes"));
        Assert.Equal(" yes<|im_end|>", TrainedText(tok, pc));
    }

    [Fact]
    public void ConversationsNeedAChatTemplate()
    {
        var dir = TestModels.TempDir();
        TestTokenizers.WriteTiny(dir, chatTemplate: null);
        var sft = new SftTokenization(HfTokenizer.FromDirectory(dir), null, false);
        var e = Assert.Throws<InputError>(() => sft.Tokenize(new ConversationExample("data.jsonl:3", Chat(("user", "a"), ("assistant", "b")), null)));
        Assert.StartsWith("data.jsonl:3: conversations need the model's chat template", e.Message);
    }
}
