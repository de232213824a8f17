using PostTrain.Data;
using PostTrain.Tokenization;

namespace PostTrain.Trainers;

/// <summary>
/// Prompts to token ids as TRL's GRPOTrainer and RLOOTrainer tokenize them: a conversation through
/// the chat template with the generation prompt, tokenized without added special tokens (the
/// template writes them); a plain string with the tokenizer's special tokens (Llama 3's BOS), as
/// processing_class(text=prompts) does. Prompts longer than <c>maxPrompt</c> keep their last tokens.
/// </summary>
public sealed class PromptTokenization(HfTokenizer tokenizer, ChatTemplate? template, IReadOnlyDictionary<string, object?>? templateVariables,
    string promptField, int maxPrompt)
{
    public List<PromptUnit> Tokenize(PromptDataset set, TextWriter log, string split)
    {
        int truncated = 0;
        var units = set.Examples.Select((e, i) =>
        {
            string text;
            int[] ids;
            if (e.Messages is null)
            {
                text = e.Text!;
                ids = tokenizer.Encode(text, addSpecialTokens: true);
            }
            else
            {
                text = ChatPrompt.Render(template ?? throw ChatPrompt.Missing(e.Source), e.Messages, e.Tools, templateVariables,
                    addGenerationPrompt: true, $"{e.Source}: {promptField}");
                ids = tokenizer.Encode(text);
            }
            if (ids.Length == 0) throw new InputError($"{e.Source}: {promptField}: the prompt has no tokens");
            if (ids.Length > maxPrompt)
            {
                truncated++;
                ids = ids[^maxPrompt..]; // keep the end, as TRL's max_prompt_length does
            }
            return new PromptUnit(i, ids, text, e);
        }).ToList();
        if (truncated > 0) log.WriteLine($"Truncated {truncated} {split} prompts to their last {maxPrompt} tokens (--max-length, and room for --max-completion-length)");
        return units;
    }
}
