using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// Turns validated preference examples into token ids as TRL's DPOTrainer prepares them
/// (_prepare_dataset's tokenize_fn):
/// <list type="bullet">
/// <item>strings: the EOS token is appended to chosen and rejected unless they end with it;
/// prompt_ids = tokenizer(prompt) and chosen_ids = tokenizer(prompt + chosen)[len(prompt_ids):]
/// (with the tokenizer's special tokens, e.g. Llama's BOS);</item>
/// <item>conversations: the prompt rendered by the chat template with the generation prompt,
/// prompt + chosen rendered without it, each tokenized as apply_chat_template(tokenize=True)
/// does (no added special tokens: the template writes them); chosen_ids are the tokens past the
/// prompt's.</item>
/// </list>
/// When the prompt's tokens are not a prefix of prompt + completion's (a template that renders
/// the prompt differently, or a merge across the boundary), TRL warns and still cuts at the
/// prompt's length; <see cref="PrefixMismatches"/> counts those pairs.
/// </summary>
public sealed class DpoTokenization(HfTokenizer tokenizer, ChatTemplate? template, IReadOnlyDictionary<string, object?>? templateVariables = null)
{
    public HfTokenizer Tokenizer => tokenizer;

    /// <summary>Pairs whose prompt tokens were not a prefix of the prompt + completion tokens.</summary>
    public int PrefixMismatches { get; private set; }

    public PreferencePair Tokenize(PreferenceExample example) => example switch
    {
        TextPreferenceExample t => Text(t),
        ConversationPreferenceExample c => Conversation(c),
        _ => throw new ArgumentException($"unknown example type {example.GetType().Name}"),
    };

    string WithEos(string text) =>
        tokenizer.EosToken is { } eos && !text.EndsWith(eos, StringComparison.Ordinal) ? text + eos : text;

    PreferencePair Text(TextPreferenceExample e)
    {
        var prompt = tokenizer.Encode(e.Prompt, addSpecialTokens: true);
        var chosen = tokenizer.Encode(e.Prompt + WithEos(e.Chosen), addSpecialTokens: true);
        var rejected = tokenizer.Encode(e.Prompt + WithEos(e.Rejected), addSpecialTokens: true);
        return Split(prompt, chosen, rejected);
    }

    PreferencePair Conversation(ConversationPreferenceExample e)
    {
        if (template is null) throw ChatPrompt.Missing(e.Source);
        string Render(IEnumerable<JsonNode?> messages, bool generationPrompt) => ChatPrompt.Render(template,
            new JsonArray(messages.Select(m => m!.DeepClone()).ToArray()), e.Tools is null ? null : (JsonArray)e.Tools.DeepClone(),
            templateVariables, generationPrompt, e.Source);
        var prompt = tokenizer.Encode(Render(e.Prompt, true));
        var chosen = tokenizer.Encode(Render(e.Prompt.Concat(e.Chosen), false));
        var rejected = tokenizer.Encode(Render(e.Prompt.Concat(e.Rejected), false));
        return Split(prompt, chosen, rejected);
    }

    PreferencePair Split(int[] prompt, int[] promptChosen, int[] promptRejected)
    {
        bool Prefix(int[] full) => full.Length >= prompt.Length && full.AsSpan(0, prompt.Length).SequenceEqual(prompt);
        if (!Prefix(promptChosen) || !Prefix(promptRejected)) PrefixMismatches++;
        int n = prompt.Length;
        return new PreferencePair(prompt, promptChosen.Length > n ? promptChosen[n..] : [], promptRejected.Length > n ? promptRejected[n..] : []);
    }
}
