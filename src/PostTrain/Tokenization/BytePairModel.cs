using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace PostTrain.Tokenization;

/// <summary>GPT-2's reversible byte ↔ printable-unicode-char mapping used by ByteLevel.</summary>
internal static class ByteLevelMap
{
    public static readonly char[] ByteToChar = Build();
    public static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    static char[] Build()
    {
        var map = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + n++);
        }
        return map;
    }
}

/// <summary>
/// Byte-level BPE with merge ranks, as Hugging Face's BPE model runs it (priority queue of
/// merges by (rank, position), ignore_merges, no dropout, no unk), with a per-pre-token cache.
/// </summary>
internal sealed class BytePairModel
{
    public readonly Dictionary<string, int> Vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    public readonly string?[] IdToToken;
    /// <summary>Bytes each model token stands for (its byte-level string's length).</summary>
    public readonly int[] TokenByteLength;
    readonly Dictionary<long, long> _merges; // (left << 32 | right) -> (rank << 32 | newId)
    readonly int[] _byteToId = new int[256];
    readonly bool _ignoreMerges;
    readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    const int CacheCapacity = 200_000, MaxCachedLength = 256;
    int _cacheCount;

    /// <summary>
    /// Microsoft.ML.Tokenizers' byte-level BPE, used as the merge engine on cache misses: it gives
    /// the same ids as HF's BPE for every pre-token (checked piece by piece against our own port of
    /// HF's merge loop, <see cref="Merge"/>), but knows nothing of ignore_merges, NFC, the split
    /// regexes, added tokens or offsets, which stay ours. Null when merges cannot be given to it
    /// as "a b" strings (a token containing a space); then <see cref="Merge"/> runs.
    /// </summary>
    readonly BpeTokenizer? _ml;

    sealed class WholePiece : PreTokenizer
    {
        public static readonly WholePiece Instance = new();
        static readonly (int, int)[] None = [];
        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => text.Length == 0 ? None : [(0, text.Length)];
        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => text.Length == 0 ? None : [(0, text.Length)];
    }

    public BytePairModel(Dictionary<string, int> vocab, List<(string A, string B)> merges, bool ignoreMerges, Func<string, Exception> error, bool useMlTokenizers = true)
    {
        Vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = ignoreMerges;
        int max = vocab.Count == 0 ? -1 : vocab.Values.Max();
        IdToToken = new string?[max + 1];
        TokenByteLength = new int[max + 1];
        foreach (var (tok, id) in vocab)
        {
            if (id < 0) throw error($"negative id {id} for token '{tok}'");
            IdToToken[id] = tok;
            TokenByteLength[id] = tok.Length;
        }
        for (int b = 0; b < 256; b++)
            _byteToId[b] = vocab.TryGetValue(ByteLevelMap.ByteToChar[b].ToString(), out var id) ? id : -1;
        _merges = new Dictionary<long, long>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (a, b) = merges[rank];
            if (!vocab.TryGetValue(a, out var ia)) throw error($"merge {rank}: token '{a}' is not in the vocabulary");
            if (!vocab.TryGetValue(b, out var ib)) throw error($"merge {rank}: token '{b}' is not in the vocabulary");
            if (!vocab.TryGetValue(a + b, out var inew)) throw error($"merge {rank}: token '{a + b}' is not in the vocabulary");
            _merges[((long)ia << 32) | (uint)ib] = ((long)rank << 32) | (uint)inew;
        }
        if (useMlTokenizers && !merges.Any(m => m.A.Contains(' ') || m.B.Contains(' ')) && _byteToId.All(id => id >= 0))
        {
            _ml = BpeTokenizer.Create(new BpeOptions(vocab)
            {
                Merges = merges.Select(m => m.A + " " + m.B),
                ByteLevel = true,
                PreTokenizer = WholePiece.Instance,
            });
        }
    }

    /// <summary>Appends the ids for one pre-token (UTF-16 text, before byte-level mapping).</summary>
    public void Tokenize(ReadOnlySpan<char> piece, List<int> ids)
    {
        if (_cacheBySpan.TryGetValue(piece, out var cached))
        {
            ids.AddRange(cached);
            return;
        }
        var result = TokenizeUncached(piece);
        if (piece.Length <= MaxCachedLength)
        {
            // ConcurrentDictionary.Count takes every lock, so keep our own (approximate) count.
            if (Interlocked.Increment(ref _cacheCount) > CacheCapacity)
            {
                lock (_cache)
                {
                    if (Volatile.Read(ref _cacheCount) > CacheCapacity) { _cache.Clear(); Volatile.Write(ref _cacheCount, 0); }
                }
            }
            _cacheBySpan.TryAdd(piece, result);
        }
        ids.AddRange(result);
    }

    int[] TokenizeUncached(ReadOnlySpan<char> piece)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rented = null;
        Span<byte> bytes = maxBytes <= 1024 ? stackalloc byte[maxBytes] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            // Lone surrogates become U+FFFD, as they would in a Rust String.
            int n = Encoding.UTF8.GetBytes(piece, bytes);
            bytes = bytes[..n];
            if (_ml is not null && !HasLoneSurrogate(piece) && !_ignoreMerges)
                return [.. _ml.EncodeToIds(piece, considerPreTokenization: true, considerNormalization: false)];
            if (_ignoreMerges)
            {
                char[]? rentedChars = null;
                Span<char> chars = n <= 512 ? stackalloc char[n] : (rentedChars = ArrayPool<char>.Shared.Rent(n));
                for (int i = 0; i < n; i++) chars[i] = ByteLevelMap.ByteToChar[bytes[i]];
                bool found = _vocabBySpan.TryGetValue(chars[..n], out var whole);
                if (rentedChars is not null) ArrayPool<char>.Shared.Return(rentedChars);
                if (found) return [whole];
                if (_ml is not null && !HasLoneSurrogate(piece))
                    return [.. _ml.EncodeToIds(piece, considerPreTokenization: true, considerNormalization: false)];
            }
            return Merge(bytes);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    static bool HasLoneSurrogate(ReadOnlySpan<char> s)
    {
        int i = s.IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0) return false;
        for (; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }

    /// <summary>
    /// HF's BPE merge loop (word.rs merge_all): a priority queue of (rank, position) merges, stale
    /// entries skipped. Runs when Microsoft.ML.Tokenizers cannot (see <see cref="_ml"/>).
    /// </summary>
    [ThreadStatic] static int[]? t_sym, t_prev, t_next;
    [ThreadStatic] static PriorityQueue<long, long>? t_queue;

    int[] Merge(ReadOnlySpan<byte> bytes)
    {
        int n = 0;
        if (t_sym is null || t_sym.Length < bytes.Length)
        {
            int size = Math.Max(64, bytes.Length);
            t_sym = new int[size]; t_prev = new int[size]; t_next = new int[size];
        }
        var sym = t_sym;
        var prev = t_prev!;
        var next = t_next!;
        foreach (var b in bytes)
        {
            int id = _byteToId[b];
            if (id >= 0) sym[n++] = id; // a byte missing from the vocabulary is dropped (no unk token)
        }
        if (n <= 1) return sym[..n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; }
        // priority: rank << 32 | pos; element: pos << 32 | newId. A removed symbol has prev == -2.
        var queue = t_queue ??= new PriorityQueue<long, long>(64);
        queue.Clear();
        for (int i = 0; i + 1 < n; i++)
            if (_merges.TryGetValue(((long)sym[i] << 32) | (uint)sym[i + 1], out var m))
                queue.Enqueue(((long)i << 32) | (uint)(int)m, (m & ~0xFFFFFFFFL) | (uint)i);
        int count = n;
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = (int)(top >> 32), newId = (int)(uint)top;
            if (prev[pos] == -2 || next[pos] < 0) continue;
            int right = next[pos];
            if (!_merges.TryGetValue(((long)sym[pos] << 32) | (uint)sym[right], out var cur) || (int)(uint)cur != newId) continue;
            sym[pos] = newId;
            prev[right] = -2;
            count--;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            if (prev[pos] >= 0 && _merges.TryGetValue(((long)sym[prev[pos]] << 32) | (uint)sym[pos], out var mp))
                queue.Enqueue(((long)prev[pos] << 32) | (uint)(int)mp, (mp & ~0xFFFFFFFFL) | (uint)prev[pos]);
            if (next[pos] >= 0 && _merges.TryGetValue(((long)sym[pos] << 32) | (uint)sym[next[pos]], out var mn))
                queue.Enqueue(((long)pos << 32) | (uint)(int)mn, (mn & ~0xFFFFFFFFL) | (uint)pos);
        }
        var result = new int[count];
        for (int i = 0, k = 0; i >= 0 && k < count; i = next[i]) result[k++] = sym[i];
        return result;
    }
}
