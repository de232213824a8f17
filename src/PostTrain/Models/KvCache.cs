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

    /// <summary>Empties the cache (no rows, no positions); the storage is kept for reuse.</summary>
    public void Clear()
    {
        Batch = 0;
        Length = 0;
        HasPadding = false;
    }

    /// <summary>
    /// Adds rows holding row <paramref name="sourceRow"/> of <paramref name="source"/> (a prefilled
    /// prompt), <paramref name="copies"/> times, after the rows in use: right-aligned, so that the
    /// source's last position lands on this cache's last filled one, with the slots before it
    /// marked as padding. When the source is longer than what is filled, the rows already here
    /// move right first (their positions ids are their own, so nothing else changes). This is
    /// how a sequence joins a batch that is already decoding (continuous batching).
    /// </summary>
    public void AppendRows(KvCache source, int copies, int sourceRow = 0)
    {
        if (sourceRow < 0 || sourceRow >= source.Batch) throw new ArgumentException($"row {sourceRow} is not in a source of {source.Batch} rows");
        if (copies <= 0 || Batch + copies > MaxBatch) throw new ArgumentException($"cannot add {copies} rows to a cache holding {Batch} of {MaxBatch}");
        if (source.Layers != Layers || source.Length == 0 || source.Length > Capacity)
            throw new ArgumentException($"a source of {source.Length} positions does not fit a cache of {Capacity}");
        if (Batch == 0) Length = 0;
        if (source.Length > Length) ShiftRight(source.Length - Length);
        using var scope = NewDisposeScope();
        long start = Length - source.Length;
        var rows = TensorIndex.Slice(Batch, Batch + copies);
        var slots = TensorIndex.Slice(start, Length);
        var from = TensorIndex.Slice(0, source.Length);
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i][rows, TensorIndex.Colon, slots].copy_(source.keys[i][TensorIndex.Slice(sourceRow, sourceRow + 1), TensorIndex.Colon, from]);
            values[i][rows, TensorIndex.Colon, slots].copy_(source.values[i][TensorIndex.Slice(sourceRow, sourceRow + 1), TensorIndex.Colon, from]);
        }
        keyMask[rows, TensorIndex.Slice(0, start)].fill_(false);
        keyMask[rows, slots].copy_(source.keyMask[TensorIndex.Slice(sourceRow, sourceRow + 1), from]);
        if (start > 0 || source.HasPadding) HasPadding = true;
        Batch += copies;
    }

    /// <summary>Moves every filled position of the rows in use <paramref name="by"/> slots right; the freed slots are padding.</summary>
    void ShiftRight(long by)
    {
        if (Length + by > Capacity) throw new ArgumentException($"the cache holds {Capacity} positions; {Length} filled cannot move {by} right");
        if (Batch > 0 && Length > 0)
        {
            using var scope = NewDisposeScope();
            var rows = TensorIndex.Slice(0, Batch);
            var filled = TensorIndex.Slice(0, Length);
            var moved = TensorIndex.Slice(by, by + Length);
            for (int i = 0; i < keys.Length; i++)
            {
                keys[i][rows, TensorIndex.Colon, moved].copy_(keys[i][rows, TensorIndex.Colon, filled].clone());
                values[i][rows, TensorIndex.Colon, moved].copy_(values[i][rows, TensorIndex.Colon, filled].clone());
            }
            keyMask[rows, moved].copy_(keyMask[rows, filled].clone());
            keyMask[rows, TensorIndex.Slice(0, by)].fill_(false);
            HasPadding = true;
        }
        Length += by;
    }

    /// <summary>
    /// Drops the leading slots that are padding in every row in use (left there by rows that
    /// joined later or by rows that left), moving everything left: called when the cache is
    /// full. Returns how many slots were freed.
    /// </summary>
    public long CompactLeft()
    {
        if (Batch == 0 || Length == 0) return 0;
        using var scope = NewDisposeScope();
        var mask = keyMask.narrow(0, 0, Batch).narrow(1, 0, Length);
        // A row's first real slot: the argmax of its mask (every row in use holds a real token).
        long shift = mask.to(ScalarType.Int32).argmax(1).min().item<long>();
        if (shift == 0) return 0;
        var rows = TensorIndex.Slice(0, Batch);
        var kept = TensorIndex.Slice(shift, Length);
        var to = TensorIndex.Slice(0, Length - shift);
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i][rows, TensorIndex.Colon, to].copy_(keys[i][rows, TensorIndex.Colon, kept].clone());
            values[i][rows, TensorIndex.Colon, to].copy_(values[i][rows, TensorIndex.Colon, kept].clone());
        }
        keyMask[rows, to].copy_(keyMask[rows, kept].clone());
        Length -= shift;
        return shift;
    }

    public void Dispose()
    {
        foreach (var t in keys) t.Dispose();
        foreach (var t in values) t.Dispose();
        keyMask.Dispose();
    }
}
