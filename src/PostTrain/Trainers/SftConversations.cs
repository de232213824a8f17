using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// Conversations through the model's chat template, as TRL's SFTTrainer prepares them: the
/// whole conversation is rendered and tokenized (the template supplies BOS, turn markers and
/// the end-of-turn token). Trained tokens: the assistant turns by default (from
/// {% generation %} blocks, or by rendering successive prefixes for any other template; an
/// OpenAI-style "weight": 0 leaves a turn untrained), every token with <c>allTokens</c>. For the
/// conversational prompt-completion form, the tokens past the prompt rendered with the
/// generation prompt are trained.
/// </summary>
public sealed class SftConversations(HfTokenizer tokenizer, ChatTemplate template, bool allTokens,
    IReadOnlyDictionary<string, object?>? templateVariables = null)
{
    public TokenizedSequence Tokenize(ConversationExample example)
    {
        string Render(JsonArray messages, bool generationPrompt) =>
            ChatPrompt.Render(template, messages, example.Tools, templateVariables, generationPrompt, example.Source);

        try
        {
            string full = Render(example.Messages, false);
            if (example.PromptLength > 0)
            {
                var prompt = new JsonArray(example.Messages.Take(example.PromptLength).Select(m => m!.DeepClone()).ToArray());
                int promptLength = tokenizer.Encode(Render(prompt, true)).Length;
                var ids = tokenizer.Encode(full);
                return new TokenizedSequence(ids, ids.Select((_, t) => t > 0 && (allTokens || t >= promptLength)).ToArray());
            }
            var encoding = tokenizer.EncodeWithOffsets(full);
            if (allTokens)
                return new TokenizedSequence(encoding.Ids, encoding.Ids.Select((_, t) => t > 0).ToArray());
            var spans = TrainedSpans(example);
            var trained = new bool[encoding.Ids.Length];
            for (int t = 1; t < trained.Length; t++)
            {
                var o = encoding.Offsets[t];
                trained[t] = spans.Any(s => o.Start < s.End && (o.End > s.Start || (o.End == o.Start && o.Start >= s.Start)));
            }
            return new TokenizedSequence(encoding.Ids, trained);
        }
        catch (PostTrain.Tokenization.Jinja.TemplateError e) // from the assistant-span search
        {
            throw ChatPrompt.Error(e, example.Source);
        }
    }

    /// <summary>Character spans of the assistant turns to train on (weight 0 turns left out).</summary>
    IReadOnlyList<CharSpan> TrainedSpans(ConversationExample example)
    {
        var spans = template.AssistantSpans(example.Messages, example.Tools, variables: templateVariables);
        var assistants = example.Messages.Where(m => m!["role"]!.GetValue<string>() == "assistant").ToList();
        if (!assistants.Any(m => m!["weight"] is JsonValue w && w.GetValue<int>() == 0)) return spans;
        if (spans.Count != assistants.Count)
            throw new InputError($"{example.Source}: messages: \"weight\" needs one assistant span per assistant message; the chat template gives {spans.Count} for {assistants.Count}");
        return spans.Where((_, i) => !(assistants[i]!["weight"] is JsonValue w && w.GetValue<int>() == 0)).ToList();
    }
}
