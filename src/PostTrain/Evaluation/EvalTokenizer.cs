using PostTrain.Tokenization;

namespace PostTrain.Evaluation;

/// <summary>
/// How evaluation turns requests into token ids, as lm-eval's HF model (and its API models with a
/// tokenizer) do: the tokenizer's special tokens are added (Llama 3's BOS) unless the text already
/// starts with the BOS token (a chat-rendered prompt); a log-likelihood pair is encoded whole and
/// split at the context's length, the context's trailing whitespace moved to the continuation; an
/// empty context is the BOS token (else EOS). Shared by the local and the endpoint models.
/// </summary>
/// <param name="fallbackPrefix">The prefix token when the tokenizer has neither BOS nor EOS (the model's EOS).</param>
public sealed class EvalTokenizer(HfTokenizer tokenizer, int fallbackPrefix = 0)
{
    readonly string? bosText = tokenizer.BosToken;

    /// <summary>The token an empty context stands for (BOS, else EOS).</summary>
    public int PrefixTokenId { get; } = tokenizer.BosTokenId ?? tokenizer.EosTokenId ?? fallbackPrefix;

    public HfTokenizer Tokenizer => tokenizer;

    /// <summary>A context's ids (special tokens added unless it starts with BOS).</summary>
    public int[] Encode(string text) => tokenizer.Encode(text, addSpecialTokens: bosText is null || !text.StartsWith(bosText, StringComparison.Ordinal));

    /// <summary>lm-eval's _encode_pair (and its empty-context rule).</summary>
    public (int[] Context, int[] Continuation) EncodePair(string context, string continuation)
    {
        if (context.Length == 0)
        {
            var cont = tokenizer.Encode(continuation, addSpecialTokens: false);
            if (cont.Length > 0 && cont[0] == PrefixTokenId) return (cont[..1], cont[1..]);
            return ([PrefixTokenId], cont);
        }
        int trimmed = context.TrimEnd().Length;
        if (trimmed < context.Length)
        {
            continuation = context[trimmed..] + continuation;
            context = context[..trimmed];
        }
        var whole = Encode(context + continuation);
        var ctx = Encode(context);
        return (ctx, whole[Math.Min(ctx.Length, whole.Length)..]);
    }

    /// <summary><see cref="EncodePair"/> of a request, whose continuation must have tokens.</summary>
    public (int[] Context, int[] Continuation) ScoredPair(LoglikelihoodRequest r)
    {
        var (ctx, cont) = EncodePair(r.Context, r.Continuation);
        if (cont.Length == 0) throw new InputError($"the continuation {Quote(r.Continuation)} has no tokens after its context");
        return (ctx, cont);
    }

    static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 60 ? s[..60] + "..." : s);
}
