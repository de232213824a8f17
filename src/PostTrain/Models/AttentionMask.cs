using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// Which keys each query may attend to, as transformers decides it: causal, minus padded keys
/// (attention_mask 0), and, for packed rows (position_ids that restart at 0 with no
/// attention_mask), only keys of the same document. Null means plain causal attention, which
/// takes the fast is_causal path of scaled_dot_product_attention.
/// </summary>
public static class AttentionMask
{
    /// <summary>
    /// A boolean mask [batch, 1, seq, seq] (true = may attend), or null for plain causal.
    /// Every query may attend to itself, so a query with nothing else to see (a left pad) gets
    /// a defined output instead of NaN; real tokens are unaffected since they see themselves anyway.
    /// </summary>
    public static Tensor? Build(Tensor? attentionMask, Tensor? positionIds, long seqLen)
    {
        using var scope = NewDisposeScope();
        Tensor? documents = null;
        if (attentionMask is null && positionIds is not null)
            documents = PackedDocuments(positionIds);
        bool padded = attentionMask is not null && attentionMask.eq(0).any().item<bool>();
        if (!padded && documents is null) return null;

        var idx = arange(seqLen, dtype: ScalarType.Int64);
        var mask = (idx.unsqueeze(0) <= idx.unsqueeze(1)).unsqueeze(0); // [1, q, k]
        if (padded)
            mask = mask.logical_and(attentionMask!.to(ScalarType.Bool).unsqueeze(1)); // keys
        if (documents is not null)
            mask = mask.logical_and(documents.unsqueeze(2).eq(documents.unsqueeze(1)));
        mask = mask.logical_or(eye(seqLen, dtype: ScalarType.Bool).unsqueeze(0));
        return mask.unsqueeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mask for <paramref name="newTokens"/> queries that follow the cache's filled positions
    /// (the cache has already recorded which new slots are real): [batch, 1, new, cached + new],
    /// key j visible to query i when j is a real token and j &lt;= past + i, and always its own
    /// slot. Null when nothing needs masking: a first chunk without padding (plain causal) or a
    /// single new token over a cache without padding (every key visible).
    /// </summary>
    public static Tensor? BuildCached(KvCache cache, long newTokens, bool newTokensReal)
    {
        long past = cache.Length, total = past + newTokens;
        if (!cache.HasPadding && (past == 0 || newTokens == 1)) return null;
        var keys = cache.KeyMask(total); // [b, total]
        if (newTokens == 1 && newTokensReal) return keys.unsqueeze(1).unsqueeze(1); // a view: no copy
        using var scope = NewDisposeScope();
        var q = arange(past, total, dtype: ScalarType.Int64).unsqueeze(1);   // [new, 1]
        var k = arange(total, dtype: ScalarType.Int64).unsqueeze(0);         // [1, total]
        var mask = (k <= q).unsqueeze(0).logical_and(keys.unsqueeze(1));   // [b, new, total]
        mask = mask.logical_or(k.eq(q).unsqueeze(0));
        return mask.unsqueeze(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Document index of every token of packed rows, from position_ids: a new document starts
    /// wherever a position is not the previous one plus one. Null when no row holds more than one.
    /// </summary>
    public static Tensor? PackedDocuments(Tensor positionIds)
    {
        using var scope = NewDisposeScope();
        var first = positionIds.narrow(1, 0, 1) - 1;
        var diff = positionIds - cat([first, positionIds.narrow(1, 0, positionIds.shape[1] - 1)], 1);
        var documents = diff.ne(1).to(ScalarType.Int64).cumsum(1);
        if (documents.narrow(1, documents.shape[1] - 1, 1).max().item<long>() == 0) return null;
        return documents.MoveToOuterDisposeScope();
    }
}
