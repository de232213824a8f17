using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// Keys and values of every layer for the tokens seen so far, so that decoding one more token
/// costs one token's forward. Preallocated to <see cref="Capacity"/> positions and written in
/// place: keys are stored after RoPE (and Qwen3's k-norm) and before grouped-query repetition,
/// as transformers' DynamicCache stores them. All rows share one length: left-padded prompts
/// keep their pad slots, which <see cref="KeyMask"/> marks so attention never sees them.
/// </summary>
/// <remarks>
/// Pass the cache to <see cref="CausalLM.ForwardHidden(Tensor, Tensor?, Tensor?, KvCache?)"/>:
/// the new tokens' keys and values are appended, the queries attend over everything cached
/// (padding keys masked, causal within the new chunk) and <see cref="Length"/> advances.
/// The cache owns its tensors (outside any dispose scope): dispose it when done.
/// </remarks>
public sealed class KvCache : IDisposable
{
    readonly Tensor[] keys, values; // per layer [maxBatch, kvHeads, capacity, headDim]
    readonly Tensor keyMask;        // [maxBatch, capacity] bool: true where the slot holds a real token

    /// <param name="maxBatch">The most rows the cache will hold (e.g. prompts x samples per prompt).</param>
    /// <param name="capacity">The most positions: prompt length plus new tokens.</param>
    public KvCache(ModelConfig config, long maxBatch, long capacity, ScalarType dtype)
    {
        if (maxBatch <= 0 || capacity <= 0) throw new ArgumentException("cache batch and capacity must be positive");
        MaxBatch = maxBatch;
        Capacity = capacity;
        Batch = maxBatch;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        using (var scope = NewDisposeScope())
        {
            for (int i = 0; i < keys.Length; i++)
            {
                keys[i] = zeros([maxBatch, config.NumKeyValueHeads, capacity, config.HeadDim], dtype).DetachFromDisposeScope();
                values[i] = zeros([maxBatch, config.NumKeyValueHeads, capacity, config.HeadDim], dtype).DetachFromDisposeScope();
            }
            keyMask = zeros([maxBatch, capacity], ScalarType.Bool).DetachFromDisposeScope();
        }
    }

    public long MaxBatch { get; }
    public long Capacity { get; }
    /// <summary>Rows in use: the first <see cref="Batch"/> rows of the storage.</summary>
    public long Batch { get; private set; }
    /// <summary>Positions filled so far (the same for every row).</summary>
    public long Length { get; private set; }
    /// <summary>Whether some filled slot is padding: attention then needs an explicit mask.</summary>
    public bool HasPadding { get; private set; }
    public int Layers => keys.Length;

    /// <summary>[batch, length] bool view: true where a cached position holds a real token.</summary>
    public Tensor KeyMask(long length) => keyMask.narrow(0, 0, Batch).narrow(1, 0, length);

    /// <summary>
    /// Sets the batch size for the next forward (rows 0..batch-1) and resets the cache when it
    /// is empty. Called by the model; a forward whose batch differs from a filled cache's fails.
    /// </summary>
    internal void BeginForward(long batch, long newTokens, Tensor? attentionMask)
    {
        if (Length == 0) Batch = batch;
        if (batch != Batch) throw new ArgumentException($"the cache holds {Batch} rows, the input has {batch}");
        if (batch > MaxBatch) throw new ArgumentException($"the cache holds at most {MaxBatch} rows, the input has {batch}");
        if (Length + newTokens > Capacity)
            throw new ArgumentException($"the cache holds {Capacity} positions; {Length} filled, {newTokens} more do not fit");
        var slots = keyMask.narrow(0, 0, batch).narrow(1, Length, newTokens);
        if (attentionMask is null)
        {
            slots.fill_(true);
        }
        else
        {
            using var scope = NewDisposeScope();
            var m = attentionMask.to(ScalarType.Bool);
            slots.copy_(m);
            if (!HasPadding && m.logical_not().any().item<bool>()) HasPadding = true;
        }
    }

    /// <summary>
    /// Writes this step's keys and values [batch, kvHeads, newTokens, headDim] of one layer at
    /// positions Length.. and returns views of all filled positions including them.
    /// </summary>
    internal (Tensor Keys, Tensor Values) Update(int layer, Tensor k, Tensor v)
    {
        // One indexing call per view (a decode step makes some 50 small ops per layer, each
        // with a fixed cost, so views are made in as few calls as possible).
        long s = k.shape[2], total = Length + s;
        var rows = TensorIndex.Slice(0, Batch);
        keys[layer][rows, TensorIndex.Colon, TensorIndex.Slice(Length, total)].copy_(k);
        values[layer][rows, TensorIndex.Colon, TensorIndex.Slice(Length, total)].copy_(v);
        var filled = TensorIndex.Slice(0, total);
        return (keys[layer][rows, TensorIndex.Colon, filled], values[layer][rows, TensorIndex.Colon, filled]);
    }

    /// <summary>Called by the model after every layer has written: the new tokens are now cached.</summary>
    internal void EndForward(long newTokens) => Length += newTokens;

    /// <summary>
    /// Keeps, reorders or repeats rows: afterwards row i holds what row <paramref name="rows"/>[i]
    /// held. Used to drop finished sequences from a batch and to give each prompt's n samples
    /// their own copy of one shared prefill. Only the filled positions are copied.
    /// </summary>
    public void SelectRows(long[] rows)
    {
        if (rows.Length == 0 || rows.Length > MaxBatch) throw new ArgumentException($"cannot select {rows.Length} rows of a cache for {MaxBatch}");
        if (rows.Any(r => r < 0 || r >= Batch)) throw new ArgumentException("row index outside the cache's batch");
        bool identity = rows.Length == Batch && rows.Select((r, i) => r == i).All(x => x);
        if (identity || Length == 0)
        {
            Batch = rows.Length;
            return;
        }
        using var scope = NewDisposeScope();
        var index = tensor(rows);
        void Gather(Tensor storage, int dim)
        {
            var filled = storage.narrow(0, 0, Batch).narrow(dim, 0, Length);
            var picked = filled.index_select(0, index); // a copy, so overlapping rows are safe
            storage.narrow(0, 0, rows.Length).narrow(dim, 0, Length).copy_(picked);
        }
        for (int i = 0; i < keys.Length; i++)
        {
            Gather(keys[i], 2);
            Gather(values[i], 2);
        }
        Gather(keyMask, 1);
        Batch = rows.Length;
    }

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
        keyMask.Dispose();
    }
}
