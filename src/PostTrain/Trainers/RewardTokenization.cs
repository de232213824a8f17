using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// Turns validated preference examples into the two sequences TRL's RewardTrainer scores
/// (_prepare_dataset: add_eos, then tokenize_fn):
/// <list type="bullet">
/// <item>strings: the EOS token is appended to chosen and to rejected unless they end with it,
/// then each is tokenized whole after the prompt, tokenizer(prompt + chosen), with the
/// tokenizer's special tokens (e.g. Llama's BOS);</item>
/// <item>conversations: prompt + chosen messages (and prompt + rejected) rendered by the chat
/// template without the generation prompt, with the record's tools, and tokenized as
/// apply_chat_template(tokenize=True) does (no added special tokens: the template writes them).</item>
/// </list>
/// An implicit prompt was split off by the reader; putting it back gives TRL's whole chosen and
/// rejected again (TRL's reward trainer does not extract prompts).
/// </summary>
public sealed class RewardTokenization(HfTokenizer tokenizer, ChatTemplate? template, IReadOnlyDictionary<string, object?>? templateVariables = null)
{
    public HfTokenizer Tokenizer => tokenizer;

    public RewardPair Tokenize(PreferenceExample example) => example switch
    {
        TextPreferenceExample t => new RewardPair(
            tokenizer.Encode(t.Prompt + WithEos(t.Chosen), addSpecialTokens: true),
            tokenizer.Encode(t.Prompt + WithEos(t.Rejected), addSpecialTokens: true), t.Margin, t.Source),
        ConversationPreferenceExample c => new RewardPair(
            tokenizer.Encode(Render(c, c.Chosen)), tokenizer.Encode(Render(c, c.Rejected)), c.Margin, c.Source),
        _ => throw new ArgumentException($"unknown example type {example.GetType().Name}"),
    };

    string WithEos(string text) =>
        tokenizer.EosToken is { } eos && !text.EndsWith(eos, StringComparison.Ordinal) ? text + eos : text;

    string Render(ConversationPreferenceExample e, JsonArray completion)
    {
        if (template is null) throw ChatPrompt.Missing(e.Source);
        var messages = new JsonArray(e.Prompt.Concat(completion).Select(m => m!.DeepClone()).ToArray());
        return ChatPrompt.Render(template, messages, e.Tools is null ? null : (JsonArray)e.Tools.DeepClone(), templateVariables,
            addGenerationPrompt: false, e.Source);
    }
}
