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
/// <item>Otherwise, for each message i with role "assistant", the engine records which output the
/// template wrote during its for-loop iteration over that message object (templates loop over
/// `messages`, a slice such as `messages[1:]`, or a filtered copy; the message dicts are the same
/// objects). That iteration's output is the turn: the header, the content, tool calls, and the
/// closing marker the template emits ("&lt;|im_end|&gt;", "&lt;|eot_id|&gt;", "&lt;|end|&gt;",
/// "&lt;/s&gt;", ...). This holds for templates such as Qwen3 that render earlier assistant turns
/// differently once later turns exist, because it reads the full render itself.
/// <para>START: the generation prompt is not part of the span. If the full render starts with the
/// render of messages[:i] with add_generation_prompt=true, and that ends inside the turn, the span
/// starts there; otherwise the generation prompt G (what add_generation_prompt=true appends to the
/// render of messages[:i]) is matched at the start of the turn's output, and the span starts after
/// the longest prefix of G found there.</para>
/// <para>END: where the turn's iteration output ends, INCLUDING the end-of-turn marker, EXCLUDING
/// trailing whitespace/newlines.</para>
/// If a template does not loop over the message objects, the end is found by appending a sentinel to
/// the message's content and locating it in the full render (see <c>SentinelEnd</c>), else by comparing
/// with the render of messages[:i+1].</item>
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

        var (fullResult, turns) = template.RenderTracked(new ChatTemplateInput
        {
            Messages = messages, Tools = tools, Documents = documents, AddGenerationPrompt = false, Variables = variables,
        });
        string full = fullResult.Text;
        var spans = new List<CharSpan>();
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject m || (string?)(m["role"] as JsonValue) != "assistant") continue;
            string prompt = Render(Slice(messages, i), true);
            int start, end;
            if (turns.TryGetValue(i, out var turn))
            {
                end = turn.End;
                if (full.StartsWith(prompt, StringComparison.Ordinal) && prompt.Length >= turn.Start && prompt.Length <= turn.End)
                    start = prompt.Length;
                else
                {
                    string before = Render(Slice(messages, i), false);
                    string g = prompt.StartsWith(before, StringComparison.Ordinal) ? prompt[before.Length..] : prompt[CommonPrefix(prompt, before)..];
                    start = turn.Start + CommonPrefix(full[turn.Start..turn.End], g);
                }
            }
            else
            {
                start = full.StartsWith(prompt, StringComparison.Ordinal) ? prompt.Length : CommonPrefix(full, prompt);
                end = SentinelEnd(messages, i, full, Render) ?? -1;
                if (end < 0)
                {
                    string upTo = Render(Slice(messages, i + 1), false);
                    end = full.StartsWith(upTo, StringComparison.Ordinal) ? upTo.Length : SuffixEnd(full, upTo, start);
                }
            }

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

    /// <summary>
    /// The turn renders differently as the last message (e.g. Qwen3 adds an empty think block): the end
    /// is where the longest tail of the turn's text in <paramref name="upTo"/> first occurs in the full
    /// render after <paramref name="start"/>.
    /// </summary>
    private static int SuffixEnd(string full, string upTo, int start)
    {
        string turn = upTo[Math.Min(start, upTo.Length)..].TrimEnd();
        for (int k = turn.Length, tries = 0; k > 0 && tries < 4096; k--, tries++)
        {
            int idx = full.IndexOf(turn[^k..], start, StringComparison.Ordinal);
            if (idx >= 0) return idx + k;
        }
        return CommonPrefix(full, upTo);
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
        if (messages[i]?["content"] is not JsonValue content || content.GetValueKind() != System.Text.Json.JsonValueKind.String) return null;
        var text = content.GetValue<string>();
        if (text.Length == 0) return null;
        // The sentinel goes after the content, or (for templates that trim it) after its trimmed end.
        return SentinelEnd(messages, i, full, render, text + Sentinel)
            ?? (text.TrimEnd() != text ? SentinelEnd(messages, i, full, render, text.TrimEnd() + Sentinel) : null);
    }

    private static int? SentinelEnd(JsonArray messages, int i, string full, Func<JsonArray, bool, string> render, string markedContent)
    {
        var marked = Slice(messages, messages.Count);
        var msg = (JsonObject)marked[i]!;
        msg["content"] = markedContent;
        string markedFull, asLast;
        string? withNext = null;
        try
        {
            markedFull = render(marked, false);
            var turn = Slice(marked, i + 1);
            asLast = render(turn, false);
            turn.Add(new JsonObject { ["role"] = "user", ["content"] = "\uE002" });
            try { withNext = render(turn, false); } catch (Jinja.TemplateError) { }
        }
        catch (Jinja.TemplateError)
        {
            return null;
        }
        int p = markedFull.IndexOf(Sentinel, StringComparison.Ordinal);
        if (p < 0 || markedFull.IndexOf(Sentinel, p + 1, StringComparison.Ordinal) >= 0) return null;
        if (markedFull.Remove(p, Sentinel.Length) != full) return null;
        string? After(string text)
        {
            int q = text.IndexOf(Sentinel, StringComparison.Ordinal);
            return q < 0 ? null : text[(q + Sentinel.Length)..];
        }
        var closingLast = After(asLast);
        if (closingLast is null) return null;
        var closingNext = withNext is null ? null : After(withNext);
        string closing = closingLast;
        if (closingNext is not null)
        {
            closing = closingLast[..CommonPrefix(closingLast, closingNext)];
            if (closing.Length < closingLast.Length && closing.Length < closingNext.Length) closing = CutOpening(closing);
        }
        return p + CommonPrefix(full[p..], closing);
    }

    /// <summary>
    /// The closing text ran into the next turn's opening (the two continuations differ only from the
    /// role onwards): drop a trailing partial marker ("&lt;|") or, if a marker remains before it, the
    /// trailing complete marker ("&lt;|start_header_id|&gt;", "&lt;|im_start|&gt;", "&lt;start_of_turn&gt;").
    /// </summary>
    private static string CutOpening(string closing)
    {
        int lt = closing.LastIndexOf('<');
        if (lt < 0) return closing;
        if (closing.IndexOf('>', lt) < 0) return closing[..lt];
        if (!closing.EndsWith('>')) return closing;
        var before = closing[..lt];
        return before.Contains('<') && before.Contains('>') ? before : closing;
    }
}
