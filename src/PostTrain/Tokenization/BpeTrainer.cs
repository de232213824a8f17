using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PostTrain.Tokenization;

/// <summary>
/// What <see cref="BpeTrainer"/> learns: at most <paramref name="Merges"/> merges, each of a pair
/// seen at least <paramref name="MinFrequency"/> times (and at least once); the written
/// tokenizer_config.json says <paramref name="ModelMaxLength"/>.
/// </summary>
public sealed record BpeTrainerOptions(int Merges = 400, int MinFrequency = 2, int ModelMaxLength = 2048);

/// <summary>
/// Trains a small byte-level BPE tokenizer (Qwen2's normalizer and pre-tokenizer, ChatML special
/// tokens and chat template) and saves it as Hugging Face tokenizer.json + tokenizer_config.json.
/// </summary>
/// <remarks>
/// The merges are those Hugging Face tokenizers' <c>BpeTrainer</c> learns for a ByteLevel model
/// (tokenizers/src/models/bpe/trainer.rs), given the same texts, <c>min_frequency</c> and
/// <c>initial_alphabet = ByteLevel.alphabet()</c>:
/// <list type="bullet">
/// <item>Each text is one sequence (as <c>train_from_iterator</c>; <c>train(files)</c> feeds a
/// file's lines with their line endings). It goes through the normalizer (NFC) and the
/// pre-tokenizer (the Qwen2 split regex, then ByteLevel) exactly as <see cref="HfTokenizer"/>
/// encodes, and the pre-tokens are counted once. Added tokens are not split out first, as HF's
/// trainer does not: special tokens in the texts are learned from as ordinary text.</item>
/// <item>Symbol ids: the 256 byte characters in code point order (GPT-2's order, ids 0-255), then
/// each merged token in the order it was made.</item>
/// <item>Each step merges the pair with the highest count; ties go to the smallest
/// (left id, right id), as HF's <c>Merge</c> ordering. HF's ids differ from ours only by an
/// offset (its special tokens come first, and without an initial alphabet it keeps only the
/// characters seen), and both orders agree, so ties fall the same way.</item>
/// <item>Counts are kept incrementally with HF's bookkeeping: a max-heap of (count, pair, words
/// the pair was made in), an entry whose count is stale is put back with the current count, and
/// merging a pair in a word changes the counts of its neighbours' pairs. That bookkeeping is
/// reproduced exactly (not just "the most frequent pair") because it decides the rare step where
/// a merge makes a token that already exists (e.g. "a"+"bc" after "ab"+"c"): HF then keeps the
/// old id and may merge a pair again, and so do we; the saved merges keep each pair once, at its
/// last rank, as HF's model does.</item>
/// </list>
/// Training stops after <see cref="BpeTrainerOptions.Merges"/> merges or when the best pair is
/// seen fewer than <see cref="BpeTrainerOptions.MinFrequency"/> times. Special tokens
/// &lt;|endoftext|&gt;, &lt;|im_start|&gt;, &lt;|im_end|&gt; are added after the vocabulary, as Qwen2 does.
/// </remarks>
public static class BpeTrainer
{
    public const string EndOfText = "<|endoftext|>", ImStart = "<|im_start|>", ImEnd = "<|im_end|>";
    static readonly string[] SpecialTokens = [EndOfText, ImStart, ImEnd];

    /// <summary>ChatML, as Qwen2 writes it: each message as &lt;|im_start|&gt;ROLE\nCONTENT&lt;|im_end|&gt;\n; a system message, if any, first.</summary>
    public const string ChatTemplate =
        "{%- for message in messages %}\n" +
        "    {%- if message['role'] == 'system' and not loop.first %}\n" +
        "        {{- raise_exception('Only the first message may be a system message.') }}\n" +
        "    {%- endif %}\n" +
        "    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}\n" +
        "{%- endfor %}\n" +
        "{%- if add_generation_prompt %}\n" +
        "    {{- '<|im_start|>assistant\\n' }}\n" +
        "{%- endif %}\n";

    /// <summary>Learns merges from <paramref name="texts"/> and writes tokenizer.json and tokenizer_config.json into <paramref name="dir"/> (created if absent; each file written to a temporary name and renamed).</summary>
    public static void Train(IEnumerable<string> texts, string dir, BpeTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(options);
        var (tokens, merges) = Learn(texts, options);
        Directory.CreateDirectory(dir);
        WriteFile(Path.Combine(dir, "tokenizer.json"), TokenizerJson(tokens, merges));
        WriteFile(Path.Combine(dir, "tokenizer_config.json"), ConfigJson(tokens.Count, options.ModelMaxLength));
    }

    /// <summary>
    /// The learned vocabulary (index = id: the 256 byte characters, then merged tokens) and merges
    /// in rank order, each pair once.
    /// </summary>
    internal static (List<string> Tokens, List<(string A, string B)> Merges) Learn(IEnumerable<string> texts, BpeTrainerOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(options.Merges);
        ArgumentOutOfRangeException.ThrowIfNegative(options.MinFrequency);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.ModelMaxLength);

        // Byte -> symbol id: the byte characters sorted by code point (GPT-2's vocabulary order).
        var byteChars = ByteLevelMap.ByteToChar;
        var order = Enumerable.Range(0, 256).OrderBy(b => byteChars[b]).ToArray();
        var tokens = new List<string>(256 + Math.Min(options.Merges, 1 << 16));
        var byteId = new int[256];
        foreach (var b in order) { byteId[b] = tokens.Count; tokens.Add(byteChars[b].ToString()); }

        var (words, counts) = CountWords(texts, byteId, [.. tokens]);
        var learner = new Learner(words, counts, tokens);
        var merged = learner.Run(options.Merges, options.MinFrequency);

        // As HF's BPE model keeps merges (a map from pair to rank): a pair merged twice keeps its last rank.
        var last = new Dictionary<long, int>();
        for (int r = 0; r < merged.Count; r++) last[Key(merged[r].A, merged[r].B)] = r;
        var result = new List<(string, string)>(merged.Count);
        for (int r = 0; r < merged.Count; r++)
            if (last[Key(merged[r].A, merged[r].B)] == r) result.Add((tokens[merged[r].A], tokens[merged[r].B]));
        return (tokens, result);
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>Distinct pre-tokens (as byte symbol ids) in first-seen order, with their counts.</summary>
    static (List<int[]> Words, List<long> Counts) CountWords(IEnumerable<string> texts, int[] byteId, List<string> byteTokens)
    {
        // A tokenizer with the byte vocabulary and no merges pre-tokenizes exactly as the written one will.
        var skeleton = TokenizerJson(byteTokens, []);
        HfTokenizer pre;
        using (var doc = JsonDocument.Parse(skeleton)) pre = HfTokenizer.FromJson(doc.RootElement, "tokenizer.json");

        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = index.GetAlternateLookup<ReadOnlySpan<char>>();
        var words = new List<int[]>();
        var counts = new List<long>();
        var pieces = new List<Span>();
        var utf8 = new byte[256];
        foreach (var text in texts)
        {
            if (text is null) throw new ArgumentException("a text is null", nameof(texts));
            var s = pre.PreTokenizeForTraining(text, pieces);
            foreach (var p in pieces)
            {
                var piece = s.AsSpan(p.Start, p.End - p.Start);
                if (lookup.TryGetValue(piece, out var w)) { counts[w]++; continue; }
                int max = Encoding.UTF8.GetMaxByteCount(piece.Length);
                if (utf8.Length < max) utf8 = new byte[max * 2];
                // Lone surrogates become U+FFFD's bytes, as in a Rust String.
                int n = Encoding.UTF8.GetBytes(piece, utf8);
                var symbols = new int[n];
                for (int i = 0; i < n; i++) symbols[i] = byteId[utf8[i]];
                lookup[piece] = words.Count;
                words.Add(symbols);
                counts.Add(1);
            }
        }
        return (words, counts);
    }

    /// <summary>HF BpeTrainer's merge loop over counted words (see the class remarks).</summary>
    sealed class Learner(List<int[]> words, List<long> counts, List<string> tokens)
    {
        readonly int[] _length = words.Select(w => w.Length).ToArray();
        readonly Dictionary<long, long> _pairCount = [];
        readonly Dictionary<string, int> _tokenId = tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i, StringComparer.Ordinal);
        // Heap entries: the pair, the count it was queued with, and the words to merge it in.
        // Min-heap on (-count, left, right): highest count first, then the smallest pair.
        readonly PriorityQueue<(long Pair, long Count, List<int> Words), (long, int, int)> _queue = new();
        Dictionary<long, List<int>> _made = [];

        void Enqueue(long pair, long count, List<int> where) =>
            _queue.Enqueue((pair, count, where), (-count, (int)(pair >> 32), (int)(uint)pair));

        void Change(long pair, long delta, int word)
        {
            _pairCount[pair] = _pairCount.GetValueOrDefault(pair) + delta;
            if (delta > 0)
            {
                if (!_made.TryGetValue(pair, out var list)) _made[pair] = list = [];
                if (list.Count == 0 || list[^1] != word) list.Add(word);
            }
        }

        public List<(int A, int B)> Run(int maxMerges, int minFrequency)
        {
            var merges = new List<(int, int)>();
            if (maxMerges == 0) return merges;
            for (int w = 0; w < words.Count; w++)
            {
                var sym = words[w];
                for (int i = 0; i + 1 < sym.Length; i++) Change(Key(sym[i], sym[i + 1]), counts[w], w);
            }
            Flush();
            while (merges.Count < maxMerges && _queue.TryDequeue(out var top, out _))
            {
                long current = _pairCount[top.Pair];
                if (top.Count != current)
                {
                    Enqueue(top.Pair, current, top.Words);
                    continue;
                }
                if (top.Count < 1 || top.Count < minFrequency) break;
                int a = (int)(top.Pair >> 32), b = (int)(uint)top.Pair;
                var token = tokens[a] + tokens[b];
                if (!_tokenId.TryGetValue(token, out var id))
                {
                    id = tokens.Count;
                    tokens.Add(token);
                    _tokenId[token] = id;
                }
                merges.Add((a, b));
                foreach (var w in top.Words) MergeIn(w, a, b, id);
                Flush();
            }
            return merges;
        }

        /// <summary>Queues every pair made by the last step with its current count (when positive).</summary>
        void Flush()
        {
            foreach (var (pair, where) in _made)
            {
                long count = _pairCount[pair];
                if (count > 0) Enqueue(pair, count, where);
            }
            _made = [];
        }

        /// <summary>Replaces each non-overlapping (a, b), left to right, by id; updates the neighbours' pair counts (not (a, b)'s own, as HF).</summary>
        void MergeIn(int w, int a, int b, int id)
        {
            var sym = words[w];
            int n = _length[w], outLen = 0;
            long count = counts[w];
            for (int r = 0; r < n; r++)
            {
                if (sym[r] == a && r + 1 < n && sym[r + 1] == b)
                {
                    if (outLen > 0)
                    {
                        Change(Key(sym[outLen - 1], a), -count, w);
                        Change(Key(sym[outLen - 1], id), count, w);
                    }
                    if (r + 2 < n)
                    {
                        Change(Key(b, sym[r + 2]), -count, w);
                        Change(Key(id, sym[r + 2]), count, w);
                    }
                    sym[outLen++] = id;
                    r++;
                }
                else sym[outLen++] = sym[r];
            }
            _length[w] = outLen;
        }
    }

    static readonly JsonSerializerOptions Indented = new()
    {
        WriteIndented = true,
        IndentSize = 2,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    static JsonObject ByteLevel() => new()
    {
        ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false,
    };

    static JsonObject SpecialToken(string content, int? id)
    {
        var o = new JsonObject();
        if (id is not null) o["id"] = id;
        o["content"] = content;
        o["single_word"] = false;
        o["lstrip"] = false;
        o["rstrip"] = false;
        o["normalized"] = false;
        o["special"] = true;
        return o;
    }

    /// <summary>tokenizer.json as Qwen2's: NFC, Split(Qwen2 regex) + ByteLevel, BPE; special tokens after the vocabulary.</summary>
    static string TokenizerJson(List<string> tokens, List<(string A, string B)> merges)
    {
        var added = new JsonArray();
        for (int i = 0; i < SpecialTokens.Length; i++) added.Add(SpecialToken(SpecialTokens[i], tokens.Count + i));
        var vocab = new JsonObject();
        for (int i = 0; i < tokens.Count; i++) vocab[tokens[i]] = i;
        var mergeArray = new JsonArray();
        foreach (var (a, b) in merges) mergeArray.Add(a + " " + b);
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = KnownPatternSplitter.QwenPattern },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    ByteLevel()),
            },
            ["post_processor"] = ByteLevel(),
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = mergeArray,
            },
        };
        return root.ToJsonString(Indented) + "\n";
    }

    /// <summary>tokenizer_config.json as Qwen2's (Qwen2Tokenizer, eos &lt;|im_end|&gt;, pad &lt;|endoftext|&gt;, no bos) with the ChatML template.</summary>
    static string ConfigJson(int vocabCount, int modelMaxLength)
    {
        var decoder = new JsonObject();
        for (int i = 0; i < SpecialTokens.Length; i++) decoder[(vocabCount + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = SpecialToken(SpecialTokens[i], null);
        var config = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = decoder,
            ["additional_special_tokens"] = new JsonArray(ImStart, ImEnd),
            ["bos_token"] = null,
            ["chat_template"] = ChatTemplate,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = ImEnd,
            ["errors"] = "replace",
            ["model_max_length"] = modelMaxLength,
            ["pad_token"] = EndOfText,
            ["split_special_tokens"] = false,
            ["tokenizer_class"] = "Qwen2Tokenizer",
            ["unk_token"] = null,
        };
        return config.ToJsonString(Indented) + "\n";
    }

    static void WriteFile(string path, string content)
    {
        var temp = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.tmp-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllText(temp, content, new UTF8Encoding(false));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }
}
