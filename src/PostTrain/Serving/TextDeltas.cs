namespace PostTrain.Serving;

/// <summary>
/// A sample's text as it streams: each new token gives the text that is certain so far. Held
/// back are a trailing incomplete UTF-8 character (the decoder's U+FFFD for a token that
/// ends mid-character) and, with stop strings, as many characters as the longest stop string
/// has less one (they may turn out to start a stop string, which is never sent). The last token's
/// delta completes the sample's final text (<see cref="TokenGenerated.Text"/>). Each token
/// decodes the completion so far, as transformers' TextStreamer does.
/// </summary>
public sealed class TextDeltas(Func<IReadOnlyList<int>, string> decode, IReadOnlyCollection<int> eosTokenIds, IReadOnlyList<string> stops)
{
    readonly List<int> tokens = [];
    readonly int holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
    int sent;

    /// <summary>The text sent so far.</summary>
    public int Sent => sent;

    /// <summary>The text to send after this token ("" when nothing new is certain).</summary>
    public string Next(TokenGenerated token)
    {
        bool eos = eosTokenIds.Contains(token.TokenId);
        if (!eos || token.FinishReason is null) tokens.Add(token.TokenId);
        string text;
        int safe;
        if (token.FinishReason is not null)
        {
            text = token.Text ?? decode(tokens);
            safe = text.Length;
        }
        else
        {
            text = decode(tokens);
            safe = text.Length;
            while (safe > 0 && text[safe - 1] == '\uFFFD') safe--;
            safe -= holdBack;
        }
        if (safe <= sent) return "";
        var delta = text[sent..safe];
        sent = safe;
        return delta;
    }
}
