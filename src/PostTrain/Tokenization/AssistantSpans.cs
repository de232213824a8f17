using System.Text.Json.Nodes;

namespace PostTrain.Tokenization;

/// <summary>
/// Finds the character spans of assistant turns in a conversation's full render
/// (add_generation_prompt=false), for any chat template.
///
/// The rule:
/// <list type="bullet">
/// <item>If the template has {% generation %} blocks, the spans are exactly those blocks
/// (what transformers' return_assistant_tokens_mask uses).</item>
/// <item>Otherwise, for each message i with role "assistant":
///   the span STARTS where the render of messages[:i] with add_generation_prompt=true ends,
///   when the full render starts with it (so the generation prompt, e.g.
///   "&lt;|im_start|&gt;assistant\n", is not part of the span); when it does not (a template
///   whose generation prompt differs from how that turn is rendered in the full conversation,
///   e.g. Qwen3 with enable_thinking=false), it starts where the two renders first differ.
///   The span ENDS where that assistant turn's rendering ends, including whatever the template
///   emits to close the turn (e.g. "&lt;|im_end|&gt;", "&lt;|eot_id|&gt;", "&lt;/s&gt;"), but
///   not pure whitespace that follows: the end is where the render of messages[:i+1] ends, when
///   the full render starts with it; otherwise (templates such as Qwen3 that render earlier
///   assistant turns differently once later turns exist) the turn's end is located in the full
///   render by marking the end of the message's content with a sentinel, rendering both the
///   full conversation and messages[:i+1] with it, and taking the length of what follows the
///   sentinel in the latter (the turn's closing text) from the sentinel's place in the former.
///   Trailing whitespace (spaces, newlines) is then dropped from the span.</item>
/// </list>
/// Spans always refer to the full render; nothing assumes a particular format such as ChatML.
/// </summary>
public static class AssistantSpans
{
    private const string Sentinel = "\uE000PostTrainEndOfContent\uE001";

    public static IReadOnlyList<CharSpan> Find(ChatTemplate template, JsonArray messages, JsonArray? tools = null,
        JsonArray? documents = null, IReadOnlyDictionary<string, object?>? variables = null)
    {
        string Render(JsonArray msgs, bool agp) => template.Render(new ChatTemplateInput
        {
            Messages = msgs, Tools = tools, Documents = documents, AddGenerationPrompt = agp, Variables = variables,
        }).Text;

        if (template.HasGenerationBlocks)
        {
            var result = template.Render(new ChatTemplateInput
            {
                Messages = messages, Tools = tools, Documents = documents, AddGenerationPrompt = false, Variables = variables,
            });
            return result.GenerationSpans.Where(s => s.End > s.Start).ToList();
        }

        string full = Render(messages, false);
        var spans = new List<CharSpan>();
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject m || (string?)(m["role"] as JsonValue) != "assistant") continue;
            string prompt = Render(Slice(messages, i), true);
            int start = full.StartsWith(prompt, StringComparison.Ordinal) ? prompt.Length : CommonPrefix(full, prompt);

            string upTo = Render(Slice(messages, i + 1), false);
            int end;
            if (full.StartsWith(upTo, StringComparison.Ordinal)) end = upTo.Length;
            else end = SentinelEnd(messages, i, full, Render) ?? CommonPrefix(full, upTo);

            while (end > start && StringMethodsIsSpace(full[end - 1])) end--;
            if (end > start) spans.Add(new CharSpan(start, end));
        }
        return spans;
    }

    private static bool StringMethodsIsSpace(char c) => Jinja.StringMethods.IsSpace(c);

    private static JsonArray Slice(JsonArray messages, int count)
    {
        var result = new JsonArray();
        for (int i = 0; i < count; i++) result.Add(messages[i]?.DeepClone());
        return result;
    }

    private static int CommonPrefix(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length), i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }

    /// <summary>Locates the end of assistant turn i in the full render with a sentinel appended to its content.</summary>
    private static int? SentinelEnd(JsonArray messages, int i, string full, Func<JsonArray, bool, string> render)
    {
        var marked = Slice(messages, messages.Count);
        var msg = (JsonObject)marked[i]!;
        if (msg["content"] is not JsonValue content || content.GetValueKind() != System.Text.Json.JsonValueKind.String) return null;
        msg["content"] = content.GetValue<string>() + Sentinel;
        string markedFull, markedTurn;
        try
        {
            markedFull = render(marked, false);
            markedTurn = render(Slice(marked, i + 1), false);
        }
        catch (Jinja.TemplateError)
        {
            return null;
        }
        int p = markedFull.IndexOf(Sentinel, StringComparison.Ordinal);
        int q = markedTurn.IndexOf(Sentinel, StringComparison.Ordinal);
        if (p < 0 || q < 0 || markedFull.IndexOf(Sentinel, p + 1, StringComparison.Ordinal) >= 0) return null;
        if (markedFull.Remove(p, Sentinel.Length) != full) return null;
        string closing = markedTurn[(q + Sentinel.Length)..];
        return p + CommonPrefix(full[p..], closing);
    }
}
