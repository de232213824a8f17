using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// Turns validated SFT examples into token ids and the mask of trained tokens, as TRL's
/// SFTTrainer prepares them:
/// <list type="bullet">
/// <item>text: tokenized with the tokenizer's special tokens, EOS appended when the text does
/// not end with it; every token trained.</item>
/// <item>prompt-completion strings: prompt + completion + EOS tokenized together; the tokens
/// past the prompt's own tokenization are trained (all with <c>allTokens</c>).</item>
/// </list>
/// Conversations go through the chat template (<see cref="SftConversations"/>).
/// </summary>
public sealed class SftTokenization(HfTokenizer tokenizer, ChatTemplate? template, bool allTokens,
    IReadOnlyDictionary<string, object?>? templateVariables = null)
{
    readonly SftConversations? conversations = template is null ? null : new SftConversations(tokenizer, template, allTokens, templateVariables);

    public HfTokenizer Tokenizer => tokenizer;

    public TokenizedSequence Tokenize(SftExample example) => example switch
    {
        TextExample t => Text(t.Text),
        PromptCompletionExample pc => PromptCompletion(pc.Prompt, pc.Completion),
        ConversationExample c => (conversations ?? throw ChatPrompt.Missing(c.Source)).Tokenize(c),
        _ => throw new ArgumentException($"unknown example type {example.GetType().Name}"),
    };

    string WithEos(string text) =>
        tokenizer.EosToken is { } eos && !text.EndsWith(eos, StringComparison.Ordinal) ? text + eos : text;

    TokenizedSequence Text(string text)
    {
        var ids = tokenizer.Encode(WithEos(text), addSpecialTokens: true);
        return new TokenizedSequence(ids, ids.Select((_, t) => t > 0).ToArray());
    }

    TokenizedSequence PromptCompletion(string prompt, string completion)
    {
        int promptLength = tokenizer.Encode(prompt, addSpecialTokens: true).Length;
        var ids = tokenizer.Encode(WithEos(prompt + completion), addSpecialTokens: true);
        return new TokenizedSequence(ids, ids.Select((_, t) => t > 0 && (allTokens || t >= promptLength)).ToArray());
    }
}
