using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace PostTrain.Tokenization;

/// <summary>A token added on top of the model vocabulary (tokenizer.json "added_tokens").</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool LStrip = false, bool RStrip = false,
    bool SingleWord = false, bool Normalized = false);

/// <summary>A token's [Start, End) range of UTF-16 units in the encoded string.</summary>
public readonly record struct TokenOffset(int Start, int End);

/// <summary>Ids with each token's character range in the input (special tokens added by the post-processor get (0, 0)).</summary>
public sealed record TokenEncoding(int[] Ids, TokenOffset[] Offsets);

/// <summary>
/// A Hugging Face fast tokenizer (tokenizer.json) for byte-level BPE models such as Qwen2/2.5/3
/// and Llama 3; encodes and decodes exactly as the Rust <c>tokenizers</c> library does.
/// Thread-safe.
/// </summary>
public sealed class HfTokenizer
{
    readonly BytePairModel _model;
    bool _nfc;
    readonly List<Splitter> _splitters = [];
    bool _byteLevelPrefixSpace;
    readonly AddedTokenMatcher _rawMatcher;      // added tokens with normalized=false
    readonly AddedTokenMatcher? _normMatcher;    // added tokens with normalized=true (matched after NFC)
    readonly Dictionary<int, AddedToken> _addedById = [];
    readonly Dictionary<string, AddedToken> _addedByContent = new(StringComparer.Ordinal);
    readonly PostProcessor _post;
    readonly DecoderKind _decoder;

    enum DecoderKind { ByteLevel, None }

    /// <summary>Model vocabulary plus added tokens, as Python's len(tokenizer).</summary>
    public int VocabSize { get; }
    public string? BosToken { get; private set; }
    public string? EosToken { get; private set; }
    public string? PadToken { get; private set; }
    public string? UnkToken { get; private set; }
    /// <summary>tokenizer_config.json add_bos_token / add_eos_token, null where absent.</summary>
    public bool? AddBosToken { get; private set; }
    public bool? AddEosToken { get; private set; }
    /// <summary>tokenizer_config.json added_tokens_decoder (or tokenizer.json added_tokens when absent).</summary>
    public IReadOnlyDictionary<int, AddedToken> AddedTokensDecoder { get; private set; } = new Dictionary<int, AddedToken>();

    public int? BosTokenId => BosToken is null ? null : TokenToId(BosToken);
    public int? EosTokenId => EosToken is null ? null : TokenToId(EosToken);
    public int? PadTokenId => PadToken is null ? null : TokenToId(PadToken);
    public int? UnkTokenId => UnkToken is null ? null : TokenToId(UnkToken);

    HfTokenizer(JsonElement root, string file)
    {
        InputError Err(string field, string msg) => InputError.At(file, null, field, msg);

        // model
        var model = Req(root, "model", JsonValueKind.Object, file, "model");
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "BPE";
        if (type != "BPE") throw Err("model.type", $"unsupported model type '{type}' (only BPE)");
        var vocabEl = Req(model, "vocab", JsonValueKind.Object, file, "model.vocab");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out var id))
                throw Err("model.vocab", $"id of '{p.Name}' is not an integer");
            vocab[p.Name] = id;
        }
        var mergesEl = Req(model, "merges", JsonValueKind.Array, file, "model.merges");
        var merges = new List<(string, string)>(mergesEl.GetArrayLength());
        int mi = 0;
        foreach (var m in mergesEl.EnumerateArray())
        {
            if (m.ValueKind == JsonValueKind.String)
            {
                var s = m.GetString()!;
                int sp = s.IndexOf(' ', 1);
                if (sp < 0) throw Err($"model.merges[{mi}]", $"'{s}' is not two tokens separated by a space");
                merges.Add((s[..sp], s[(sp + 1)..]));
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2 &&
                     m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
                merges.Add((m[0].GetString()!, m[1].GetString()!));
            else throw Err($"model.merges[{mi}]", "expected \"a b\" or [\"a\", \"b\"]");
            mi++;
        }
        foreach (var f in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model.TryGetProperty(f, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() != "")
                throw Err($"model.{f}", "only empty or null is supported");
        if (model.TryGetProperty("dropout", out var drop) && drop.ValueKind == JsonValueKind.Number && drop.GetDouble() > 0)
            throw Err("model.dropout", "dropout is not supported");
        if (model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True)
            throw Err("model.byte_fallback", "byte_fallback is not supported");
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;
        _model = new BytePairModel(vocab, merges, ignoreMerges, msg => Err("model.merges", msg));

        // added tokens
        var added = new List<AddedToken>();
        if (root.TryGetProperty("added_tokens", out var at) && at.ValueKind != JsonValueKind.Null)
        {
            if (at.ValueKind != JsonValueKind.Array) throw Err("added_tokens", "expected an array");
            int ai = 0;
            foreach (var a in at.EnumerateArray())
            {
                added.Add(ParseAddedToken(a, null, file, $"added_tokens[{ai}]"));
                ai++;
            }
        }
        foreach (var a in added)
        {
            _addedById[a.Id] = a;
            _addedByContent[a.Content] = a;
        }
        _rawMatcher = new AddedTokenMatcher(added.Where(a => !a.Normalized));
        var normTokens = added.Where(a => a.Normalized).ToList();

        // normalizer
        if (root.TryGetProperty("normalizer", out var norm) && norm.ValueKind != JsonValueKind.Null)
            ParseNormalizer(norm, file, "normalizer");
        if (normTokens.Count > 0)
            _normMatcher = new AddedTokenMatcher(normTokens.Select(a => _nfc ? a with { Content = Nfc.Normalize(a.Content, out _, out _) ?? a.Content } : a));

        // pre-tokenizer
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind != JsonValueKind.Null)
            ParsePreTokenizer(pre, file, "pre_tokenizer");

        // post-processor
        _post = root.TryGetProperty("post_processor", out var post) && post.ValueKind != JsonValueKind.Null
            ? ParsePostProcessor(post, file, "post_processor")
            : new PostProcessor();

        // decoder
        _decoder = DecoderKind.None;
        if (root.TryGetProperty("decoder", out var dec) && dec.ValueKind != JsonValueKind.Null)
            _decoder = ParseDecoder(dec, file, "decoder");

        var all = new HashSet<string>(vocab.Keys, StringComparer.Ordinal);
        foreach (var a in added) all.Add(a.Content);
        VocabSize = all.Count;
        AddedTokensDecoder = added.ToDictionary(a => a.Id);
    }

    /// <summary>A tokenizer from tokenizer.json content already parsed; <paramref name="name"/> stands for the file in error messages.</summary>
    internal static HfTokenizer FromJson(JsonElement root, string name) => new(root, name);

    /// <summary>Loads tokenizer.json and tokenizer_config.json (optional) from a model directory.</summary>
    public static HfTokenizer FromDirectory(string dir)
    {
        var path = Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(path)) throw InputError.FileNotFound(path);
        HfTokenizer tok;
        using (var doc = ParseJson(path))
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw InputError.At(path, null, null, "expected a JSON object");
            tok = new HfTokenizer(doc.RootElement, path);
        }
        var cfgPath = Path.Combine(dir, "tokenizer_config.json");
        if (File.Exists(cfgPath))
        {
            using var cfg = ParseJson(cfgPath);
            if (cfg.RootElement.ValueKind != JsonValueKind.Object) throw InputError.At(cfgPath, null, null, "expected a JSON object");
            tok.ReadConfig(cfg.RootElement, cfgPath);
        }
        return tok;
    }

    static JsonDocument ParseJson(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new InputError($"{path}: invalid JSON at line {(e.LineNumber ?? 0) + 1}: {e.Message.Split('\n')[0]}", e);
        }
    }

    void ReadConfig(JsonElement cfg, string file)
    {
        BosToken = SpecialString(cfg, "bos_token", file);
        EosToken = SpecialString(cfg, "eos_token", file);
        PadToken = SpecialString(cfg, "pad_token", file);
        UnkToken = SpecialString(cfg, "unk_token", file);
        AddBosToken = OptBool(cfg, "add_bos_token", file);
        AddEosToken = OptBool(cfg, "add_eos_token", file);
        if (cfg.TryGetProperty("added_tokens_decoder", out var atd) && atd.ValueKind != JsonValueKind.Null)
        {
            if (atd.ValueKind != JsonValueKind.Object) throw InputError.At(file, null, "added_tokens_decoder", "expected an object");
            var map = new Dictionary<int, AddedToken>();
            foreach (var p in atd.EnumerateObject())
            {
                if (!int.TryParse(p.Name, out var id))
                    throw InputError.At(file, null, $"added_tokens_decoder.{p.Name}", "key is not an integer id");
                map[id] = ParseAddedToken(p.Value, id, file, $"added_tokens_decoder.{p.Name}");
            }
            AddedTokensDecoder = map;
        }
    }

    static string? SpecialString(JsonElement cfg, string name, string file)
    {
        if (!cfg.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind == JsonValueKind.String) return v.GetString();
        if (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
            return c.GetString();
        throw InputError.At(file, null, name, "expected a string, null or an object with a string \"content\"");
    }

    static bool? OptBool(JsonElement obj, string name, string file)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw InputError.At(file, null, name, "expected true or false"),
        };
    }

    static bool Flag(JsonElement obj, string name, string file, string field, bool dflt)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return dflt;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw InputError.At(file, null, $"{field}.{name}", "expected true or false"),
        };
    }

    static JsonElement Req(JsonElement obj, string name, JsonValueKind kind, string file, string field)
    {
        if (!obj.TryGetProperty(name, out var v)) throw InputError.At(file, null, field, "missing");
        if (v.ValueKind != kind) throw InputError.At(file, null, field, $"expected {kind.ToString().ToLowerInvariant()}, got {v.ValueKind.ToString().ToLowerInvariant()}");
        return v;
    }

    static AddedToken ParseAddedToken(JsonElement a, int? id, string file, string field)
    {
        if (a.ValueKind != JsonValueKind.Object) throw InputError.At(file, null, field, "expected an object");
        if (id is null)
        {
            var idEl = Req(a, "id", JsonValueKind.Number, file, field + ".id");
            if (!idEl.TryGetInt32(out var i) || i < 0) throw InputError.At(file, null, field + ".id", "expected a non-negative integer");
            id = i;
        }
        var content = Req(a, "content", JsonValueKind.String, file, field + ".content").GetString()!;
        if (content.Length == 0) throw InputError.At(file, null, field + ".content", "empty");
        bool B(string n, bool d)
        {
            if (!a.TryGetProperty(n, out var v) || v.ValueKind == JsonValueKind.Null) return d;
            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw InputError.At(file, null, $"{field}.{n}", "expected true or false"),
            };
        }
        bool special = B("special", false);
        return new AddedToken(id.Value, content, special, B("lstrip", false), B("rstrip", false), B("single_word", false), B("normalized", !special));
    }

    static string TypeOf(JsonElement el, string file, string field)
    {
        if (el.ValueKind != JsonValueKind.Object) throw InputError.At(file, null, field, "expected an object");
        return Req(el, "type", JsonValueKind.String, file, field + ".type").GetString()!;
    }

    void ParseNormalizer(JsonElement el, string file, string field)
    {
        switch (TypeOf(el, file, field))
        {
            case "NFC": _nfc = true; break;
            case "Sequence":
                int i = 0;
                foreach (var n in Req(el, "normalizers", JsonValueKind.Array, file, field + ".normalizers").EnumerateArray())
                {
                    if (_nfc) throw InputError.At(file, null, $"{field}.normalizers[{i}]", "only one NFC normalizer is supported");
                    ParseNormalizer(n, file, $"{field}.normalizers[{i++}]");
                }
                break;
            case var other: throw InputError.At(file, null, field + ".type", $"unsupported normalizer '{other}' (supported: NFC, Sequence)");
        }
    }

    void ParsePreTokenizer(JsonElement el, string file, string field)
    {
        switch (TypeOf(el, file, field))
        {
            case "Sequence":
                int i = 0;
                foreach (var p in Req(el, "pretokenizers", JsonValueKind.Array, file, field + ".pretokenizers").EnumerateArray())
                    ParsePreTokenizer(p, file, $"{field}.pretokenizers[{i++}]");
                break;
            case "Split":
            {
                var pattern = Req(el, "pattern", JsonValueKind.Object, file, field + ".pattern");
                var behavior = el.TryGetProperty("behavior", out var b) && b.ValueKind == JsonValueKind.String ? b.GetString() : null;
                if (behavior != "Isolated") throw InputError.At(file, null, field + ".behavior", $"unsupported split behavior '{behavior}' (supported: Isolated)");
                bool invert = el.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                if (pattern.TryGetProperty("Regex", out var rx) && rx.ValueKind == JsonValueKind.String)
                {
                    var src = rx.GetString()!;
                    Splitter? s = invert ? null : KnownPatternSplitter.TryCreate(src);
                    if (s is null)
                    {
                        try { s = new RegexSplitter(new Regex(src, RegexOptions.CultureInvariant | RegexOptions.Compiled), invert); }
                        catch (ArgumentException e) { throw InputError.At(file, null, field + ".pattern.Regex", $"invalid regex: {e.Message}"); }
                    }
                    _splitters.Add(s);
                }
                else if (pattern.TryGetProperty("String", out var str) && str.ValueKind == JsonValueKind.String && !invert)
                    _splitters.Add(new LiteralSplitter(str.GetString()!));
                else throw InputError.At(file, null, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...} (invert with a String is not supported)");
                break;
            }
            case "ByteLevel":
                if (Flag(el, "add_prefix_space", file, field, true)) _byteLevelPrefixSpace = true;
                if (Flag(el, "use_regex", file, field, true)) _splitters.Add(KnownPatternSplitter.TryCreate(KnownPatternSplitter.Gpt2Pattern)!);
                break;
            case var other: throw InputError.At(file, null, field + ".type", $"unsupported pre-tokenizer '{other}' (supported: Sequence, Split, ByteLevel)");
        }
    }

    PostProcessor ParsePostProcessor(JsonElement el, string file, string field)
    {
        var post = new PostProcessor();
        ParsePostInto(post, el, file, field);
        return post;
    }

    void ParsePostInto(PostProcessor post, JsonElement el, string file, string field)
    {
        switch (TypeOf(el, file, field))
        {
            case "Sequence":
                int i = 0;
                foreach (var p in Req(el, "processors", JsonValueKind.Array, file, field + ".processors").EnumerateArray())
                    ParsePostInto(post, p, file, $"{field}.processors[{i++}]");
                break;
            case "ByteLevel":
                if (Flag(el, "trim_offsets", file, field, true)) post.TrimOffsets = true;
                post.TrimAddPrefixSpace = Flag(el, "add_prefix_space", file, field, true);
                break;
            case "TemplateProcessing":
            {
                var single = Req(el, "single", JsonValueKind.Array, file, field + ".single");
                var specials = el.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object ? st : default;
                bool seenSequence = false;
                int i2 = 0;
                foreach (var item in single.EnumerateArray())
                {
                    var f = $"{field}.single[{i2++}]";
                    if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("SpecialToken", out var sp))
                    {
                        var name = Req(sp, "id", JsonValueKind.String, file, f + ".SpecialToken.id").GetString()!;
                        if (specials.ValueKind != JsonValueKind.Object || !specials.TryGetProperty(name, out var def))
                            throw InputError.At(file, null, f, $"special token '{name}' is not in {field}.special_tokens");
                        var ids = Req(def, "ids", JsonValueKind.Array, file, $"{field}.special_tokens.{name}.ids");
                        foreach (var idEl in ids.EnumerateArray())
                        {
                            if (!idEl.TryGetInt32(out var id)) throw InputError.At(file, null, $"{field}.special_tokens.{name}.ids", "expected integers");
                            (seenSequence ? post.Suffix : post.Prefix).Add(id);
                        }
                    }
                    else if (item.ValueKind == JsonValueKind.Object && item.TryGetProperty("Sequence", out var seq))
                    {
                        var sid = Req(seq, "id", JsonValueKind.String, file, f + ".Sequence.id").GetString();
                        if (sid != "A") throw InputError.At(file, null, f, "the single template can only hold sequence A");
                        seenSequence = true;
                    }
                    else throw InputError.At(file, null, f, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
                }
                break;
            }
            case var other: throw InputError.At(file, null, field + ".type", $"unsupported post-processor '{other}' (supported: Sequence, ByteLevel, TemplateProcessing)");
        }
    }

    DecoderKind ParseDecoder(JsonElement el, string file, string field)
    {
        switch (TypeOf(el, file, field))
        {
            case "ByteLevel": return DecoderKind.ByteLevel;
            case "Sequence":
                var kind = DecoderKind.None;
                int i = 0;
                foreach (var d in Req(el, "decoders", JsonValueKind.Array, file, field + ".decoders").EnumerateArray())
                    kind = ParseDecoder(d, file, $"{field}.decoders[{i++}]");
                return kind;
            case var other: throw InputError.At(file, null, field + ".type", $"unsupported decoder '{other}' (supported: ByteLevel, Sequence)");
        }
    }

    sealed class PostProcessor
    {
        public readonly List<int> Prefix = [], Suffix = [];
        public bool TrimOffsets, TrimAddPrefixSpace;
    }

    // ---------------------------------------------------------------- public API

    public string? IdToToken(int id) =>
        _addedById.TryGetValue(id, out var a) ? a.Content
        : (uint)id < (uint)_model.IdToToken.Length ? _model.IdToToken[id] : null;

    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out var a) ? a.Id
        : _model.Vocab.TryGetValue(token, out var id) ? id : null;

    /// <summary>True for ids of added tokens marked special (skipped by Decode with skipSpecialTokens).</summary>
    public bool IsSpecialId(int id) => _addedById.TryGetValue(id, out var a) && a.Special;

    /// <summary>Encodes text to ids; with addSpecialTokens the post-processor's template (e.g. Llama 3's BOS) is applied.</summary>
    public int[] Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeCore(text, addSpecialTokens, ids, null);
        return [.. ids];
    }

    /// <summary>Encodes text to ids with each token's [start, end) UTF-16 range in <paramref name="text"/>.</summary>
    public TokenEncoding EncodeWithOffsets(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var offsets = new List<TokenOffset>(text.Length / 3 + 4);
        EncodeCore(text, addSpecialTokens, ids, offsets);
        return new TokenEncoding([.. ids], [.. offsets]);
    }

    void EncodeCore(string text, bool addSpecial, List<int> ids, List<TokenOffset>? offsets)
    {
        if (addSpecial)
            foreach (var id in _post.Prefix) { ids.Add(id); offsets?.Add(default); }
        int bodyStart = ids.Count;
        var pieces = new List<Span>();
        int pos = 0;
        while (pos < text.Length)
        {
            var m = _rawMatcher.Find(text, pos, text.Length);
            int segEnd = m?.Start ?? text.Length;
            if (segEnd > pos) EncodeSegment(text, pos, segEnd, ids, offsets, pieces);
            if (m is not { } mm) break;
            ids.Add(mm.Token.Id);
            offsets?.Add(new TokenOffset(mm.Start, mm.End));
            pos = mm.End;
        }
        if (offsets is not null && _post.TrimOffsets) TrimOffsets(ids, offsets, bodyStart);
        if (addSpecial)
            foreach (var id in _post.Suffix) { ids.Add(id); offsets?.Add(default); }
    }

    void EncodeSegment(string text, int start, int end, List<int> ids, List<TokenOffset>? offsets, List<Span> pieces)
    {
        // Normalize.
        string s = text;
        int[]? alignStart = null, alignEnd = null;
        int baseOffset = 0;
        if (_nfc && !Nfc.IsTriviallyNfc(text.AsSpan(start, end - start)))
        {
            var sub = text.Substring(start, end - start);
            var normalized = Nfc.Normalize(sub, out alignStart, out alignEnd);
            if (normalized is not null)
            {
                s = normalized;
                baseOffset = start;
                start = 0;
                end = s.Length;
            }
        }
        if (_normMatcher is not null)
        {
            int pos = start;
            while (pos < end)
            {
                var m = _normMatcher.Find(s, pos, end);
                int segEnd = m?.Start ?? end;
                if (segEnd > pos) EncodeNormalized(s, pos, segEnd, ids, offsets, pieces, alignStart, alignEnd, baseOffset);
                if (m is not { } mm) break;
                ids.Add(mm.Token.Id);
                offsets?.Add(MapBack(mm.Start, mm.End, alignStart, alignEnd, baseOffset));
                pos = mm.End;
            }
        }
        else EncodeNormalized(s, start, end, ids, offsets, pieces, alignStart, alignEnd, baseOffset);
    }

    static TokenOffset MapBack(int start, int end, int[]? alignStart, int[]? alignEnd, int baseOffset)
    {
        if (alignStart is null) return new TokenOffset(start, end);
        if (end <= start) return new TokenOffset(baseOffset + alignStart[start], baseOffset + alignStart[start]);
        return new TokenOffset(baseOffset + alignStart[start], baseOffset + alignEnd![end - 1]);
    }

    void EncodeNormalized(string s, int start, int end, List<int> ids, List<TokenOffset>? offsets, List<Span> pieces,
        int[]? alignStart, int[]? alignEnd, int baseOffset)
    {
        if (_byteLevelPrefixSpace && start == 0 && end > 0 && s[0] != ' ')
        {
            // HF inserts a space aligned with the first char; rare path, done by rebuilding the string.
            var withSpace = " " + s.Substring(start, end - start);
            var st = new int[withSpace.Length];
            var en = new int[withSpace.Length];
            for (int i = 0; i < withSpace.Length; i++)
            {
                var (a, b) = i == 0 ? MapBack(0, 1, alignStart, alignEnd, baseOffset)
                    : MapBack(i - 1, i, alignStart, alignEnd, baseOffset);
                st[i] = a; en[i] = b;
            }
            EncodeNormalized(withSpace, 0, withSpace.Length, ids, offsets, pieces, st, en, 0);
            return;
        }
        Split(s, start, end, pieces);
        foreach (var p in pieces)
        {
            int first = ids.Count;
            _model.Tokenize(s.AsSpan(p.Start, p.End - p.Start), ids);
            if (offsets is not null) AddOffsets(s, p, ids, first, offsets, alignStart, alignEnd, baseOffset);
        }
    }

    /// <summary>Runs the pre-tokenizer's splitters over s[start, end); pieces is cleared first.</summary>
    void Split(string s, int start, int end, List<Span> pieces)
    {
        pieces.Clear();
        if (_splitters.Count == 0) { pieces.Add(new Span(start, end)); return; }
        _splitters[0].Split(s, start, end, pieces);
        for (int k = 1; k < _splitters.Count; k++)
        {
            var prev = pieces.ToArray();
            pieces.Clear();
            foreach (var p in prev) _splitters[k].Split(s, p.Start, p.End, pieces);
        }
    }

    /// <summary>
    /// Text as tokenizers' trainers see it (Tokenizer::train feeds each sequence through the
    /// normalizer, then the pre-tokenizer; added tokens are not split out): returns the normalized
    /// text, and its pre-tokens as ranges of it in <paramref name="pieces"/> (cleared first).
    /// </summary>
    internal string PreTokenizeForTraining(string text, List<Span> pieces)
    {
        ArgumentNullException.ThrowIfNull(text);
        var s = _nfc ? Nfc.Normalize(text, out _, out _) ?? text : text;
        if (_byteLevelPrefixSpace && s.Length > 0 && s[0] != ' ') s = " " + s;
        if (s.Length == 0) { pieces.Clear(); return s; }
        Split(s, 0, s.Length, pieces);
        return s;
    }

    void AddOffsets(string s, Span p, List<int> ids, int first, List<TokenOffset> offsets, int[]? alignStart, int[]? alignEnd, int baseOffset)
    {
        // Walk the piece's code points and their UTF-8 byte counts alongside the tokens' byte lengths.
        int ci = p.Start, charByteEnd = 0, bytePos = 0;
        int cpStart = p.Start, cpEnd = p.Start;
        for (int k = first; k < ids.Count; k++)
        {
            int len = _model.TokenByteLength[ids[k]];
            int tokStartByte = bytePos, tokEndByte = bytePos + len;
            int startChar = -1, endChar = -1;
            // advance code points until the one containing tokStartByte
            while (true)
            {
                if (tokStartByte < charByteEnd && startChar < 0) startChar = cpStart;
                if (tokEndByte <= charByteEnd) { endChar = cpEnd; break; }
                if (ci >= p.End) { endChar = cpEnd; break; }
                Rune.DecodeFromUtf16(s.AsSpan(ci, p.End - ci), out var r, out int used);
                cpStart = ci;
                ci += used;
                cpEnd = ci;
                charByteEnd += r.Utf8SequenceLength;
            }
            if (startChar < 0) startChar = cpStart;
            bytePos = tokEndByte;
            offsets.Add(MapBack(startChar, endChar, alignStart, alignEnd, baseOffset));
        }
    }

    void TrimOffsets(List<int> ids, List<TokenOffset> offsets, int from)
    {
        for (int i = from; i < ids.Count; i++)
        {
            var tok = IdToToken(ids[i]) ?? "";
            int lead = 0, trail = 0;
            while (lead < tok.Length && (tok[lead] == '\u0120' || char.IsWhiteSpace(tok[lead]))) lead++;
            while (trail < tok.Length && (tok[tok.Length - 1 - trail] == '\u0120' || char.IsWhiteSpace(tok[tok.Length - 1 - trail]))) trail++;
            var (a, b) = offsets[i];
            if (lead > 0)
            {
                bool isFirst = i == from || a == 0;
                if (isFirst && _post.TrimAddPrefixSpace && lead == 1) lead = 0;
                a = Math.Min(a + lead, b);
            }
            if (trail > 0 && b >= trail) b = Math.Max(b - trail, a);
            offsets[i] = new TokenOffset(a, b);
        }
    }

    /// <summary>
    /// Decodes ids to text as HF does: ByteLevel bytes joined, invalid UTF-8 replaced by U+FFFD,
    /// and ids the tokenizer does not know skipped (tokenizers' decode drops them: a model's
    /// embedding is often larger than its tokenizer, Qwen2.5's 151,936 rows for 151,665 tokens,
    /// and a model may sample one of the extra rows).
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (_decoder == DecoderKind.None)
        {
            var parts = new List<string>(ids.Count);
            foreach (var id in ids)
            {
                if (skipSpecialTokens && IsSpecialId(id)) continue;
                if (IdToToken(id) is { } token) parts.Add(token);
            }
            return string.Join(" ", parts);
        }
        var buffer = new ArrayBufferWriter<byte>(ids.Count * 4 + 16);
        foreach (var id in ids)
        {
            if (skipSpecialTokens && IsSpecialId(id)) continue;
            if (IdToToken(id) is not { } tok) continue;
            var span = buffer.GetSpan(Math.Max(tok.Length, Encoding.UTF8.GetMaxByteCount(tok.Length)));
            bool allMapped = true;
            for (int i = 0; i < tok.Length; i++)
            {
                if (!ByteLevelMap.CharToByte.TryGetValue(tok[i], out var b)) { allMapped = false; break; }
                span[i] = b;
            }
            // A token with a char outside the byte map (e.g. a non-ASCII added token) is taken as its UTF-8.
            buffer.Advance(allMapped ? tok.Length : Encoding.UTF8.GetBytes(tok, span));
        }
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }
}

/// <summary>Finds added tokens leftmost-longest, honoring lstrip/rstrip/single_word like HF's AddedVocabulary.</summary>
internal sealed class AddedTokenMatcher
{
    readonly Dictionary<char, AddedToken[]> _byFirst = [];
    readonly System.Buffers.SearchValues<char> _firsts;

    public AddedTokenMatcher(IEnumerable<AddedToken> tokens)
    {
        foreach (var g in tokens.GroupBy(t => t.Content[0]))
            _byFirst[g.Key] = [.. g.OrderByDescending(t => t.Content.Length)];
        _firsts = System.Buffers.SearchValues.Create([.. _byFirst.Keys]);
    }

    public readonly record struct Match(AddedToken Token, int Start, int End);

    /// <summary>First match in s[from, end), with lstrip/rstrip applied to its range.</summary>
    public Match? Find(string s, int from, int end)
    {
        if (_byFirst.Count == 0) return null;
        int i = from;
        while (i < end)
        {
            int k = s.AsSpan(i, end - i).IndexOfAny(_firsts);
            if (k < 0) return null;
            i += k;
            AddedToken? t = null;
            foreach (var c in _byFirst[s[i]])
                if (c.Content.Length <= end - i && s.AsSpan(i, c.Content.Length).SequenceEqual(c.Content)) { t = c; break; }
            if (t is null) { i++; continue; }
            int start = i, stop = i + t.Content.Length;
            if (t.SingleWord)
            {
                bool startOk = start == 0 || !IsWordChar(s, start - 1, before: true);
                bool stopOk = stop == s.Length || !IsWordChar(s, stop, before: false);
                if (!startOk || !stopOk) { i = stop; continue; }
            }
            if (t.LStrip)
                while (start > from && char.IsWhiteSpace(s[start - 1])) start--;
            if (t.RStrip)
                while (stop < end && char.IsWhiteSpace(s[stop])) stop++;
            return new Match(t, start, stop);
        }
        return null;
    }

    static bool IsWordChar(string s, int i, bool before)
    {
        int cp = s[i];
        if (before && char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1])) cp = char.ConvertToUtf32(s[i - 1], s[i]);
        else if (!before && char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) cp = char.ConvertToUtf32(s[i], s[i + 1]);
        var cat = System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat is System.Globalization.UnicodeCategory.UppercaseLetter or System.Globalization.UnicodeCategory.LowercaseLetter
            or System.Globalization.UnicodeCategory.TitlecaseLetter or System.Globalization.UnicodeCategory.ModifierLetter
            or System.Globalization.UnicodeCategory.OtherLetter or System.Globalization.UnicodeCategory.DecimalDigitNumber
            or System.Globalization.UnicodeCategory.LetterNumber or System.Globalization.UnicodeCategory.OtherNumber;
    }
}
