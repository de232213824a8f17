using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Tokenization.Jinja;

namespace PostTrain.Tokenization;

/// <summary>
/// A conversation through a chat template, as apply_chat_template(messages, tools=,
/// add_generation_prompt=, **chat_template_kwargs, tokenize=False) renders it: the one place a
/// template error becomes a user's error (naming the input it came from).
/// </summary>
public static class ChatPrompt
{
    /// <summary>
    /// The rendered text (special tokens are in it: encode it without adding any). With the
    /// generation prompt, the text the assistant's reply continues; without, the whole conversation.
    /// </summary>
    /// <param name="where">Names the input in an error, e.g. "data.jsonl:3: messages".</param>
    public static string Render(ChatTemplate template, JsonArray messages, JsonArray? tools, IReadOnlyDictionary<string, object?>? variables,
        bool addGenerationPrompt, string where)
    {
        try
        {
            return template.Render(new ChatTemplateInput
            {
                Messages = messages, Tools = tools, AddGenerationPrompt = addGenerationPrompt, Variables = variables,
            }).Text;
        }
        catch (TemplateError e) // the interpreter wraps every rendering error in one
        {
            throw Error(e, where);
        }
    }

    /// <summary>A template error as a one-line input error naming <paramref name="where"/>.</summary>
    public static InputError Error(TemplateError e, string where) => new($"{where}: chat template: {e.Message}");

    /// <summary>The error for a conversation when the model has no chat template.</summary>
    public static InputError Missing(string where) =>
        new($"{where}: conversations need the model's chat template (chat_template in tokenizer_config.json, or chat_template.jinja)");
}

/// <summary>
/// Extra chat-template variables (TRL's and vLLM's chat_template_kwargs, e.g. enable_thinking
/// for Qwen3): a JSON object, or KEY=JSON items.
/// </summary>
public static class ChatTemplateKwargs
{
    /// <summary>Parses a JSON object or comma-separated KEY=JSON items; null or empty gives no variables.</summary>
    public static IReadOnlyDictionary<string, object?> Parse(string? text, string where)
    {
        if (string.IsNullOrWhiteSpace(text)) return new Dictionary<string, object?>();
        if (text.TrimStart().StartsWith('{'))
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(text);
            }
            catch (JsonException e)
            {
                throw new InputError($"{where}: not a JSON object: {e.Message}");
            }
            if (node is not JsonObject o) throw new InputError($"{where}: expected a JSON object");
            return o.ToDictionary(p => p.Key, p => (object?)p.Value?.DeepClone());
        }
        return Parse(SplitItems(text), where);
    }

    /// <summary>KEY=JSON items (a repeatable option's values).</summary>
    public static IReadOnlyDictionary<string, object?> Parse(IEnumerable<string> items, string where)
    {
        var variables = new Dictionary<string, object?>();
        foreach (var item in items)
        {
            int eq = item.IndexOf('=');
            if (eq <= 0) throw new InputError($"{where}: '{item}': expected KEY=JSON");
            var value = item[(eq + 1)..];
            try
            {
                variables[item[..eq].Trim()] = JsonNode.Parse(value);
            }
            catch (JsonException e)
            {
                // Strict: False or a bare word would otherwise become a (truthy) string.
                throw new InputError($"{where}: '{item}': value is not JSON (true/false, numbers, \"quoted strings\"): {e.Message}");
            }
        }
        return variables;
    }

    /// <summary>Splits KEY=JSON,KEY=JSON at the commas outside brackets and quotes.</summary>
    static IEnumerable<string> SplitItems(string text)
    {
        int depth = 0, start = 0;
        bool quoted = false;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (quoted)
            {
                if (c == '\\') i++;
                else if (c == '"') quoted = false;
            }
            else if (c == '"') quoted = true;
            else if (c is '[' or '{') depth++;
            else if (c is ']' or '}') depth--;
            else if (c == ',' && depth == 0)
            {
                if (i > start) yield return text[start..i].Trim();
                start = i + 1;
            }
        }
        if (start < text.Length && text[start..].Trim().Length > 0) yield return text[start..].Trim();
    }
}
