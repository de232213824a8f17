using PostTrain.Data;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Generation;

/// <summary>
/// Batched autoregressive generation with a KV cache: left-padded prompts are prefilled in one
/// forward, then every step feeds one token per sequence. A prompt's n samples share its
/// prefill (the cache rows are copied), finished sequences leave the batch, and each token's
/// draw is a function of the seed and its place (<see cref="SampleRandom"/>), so the same seed,
/// prompts and options reproduce the same completions, whatever the batch size.
/// Semantics follow transformers' generate(): positions continue from each prompt's own, the
/// logits processors run in its order (see <see cref="LogitsProcessors"/>), and a completion
/// ends at an end-of-sequence token, a stop string or max_new_tokens.
/// </summary>
public sealed class GenerationEngine
{
    readonly CausalLM model;
    readonly Func<IReadOnlyList<int>, string>? decode;

    /// <param name="model">The model; it is used, not owned.</param>
    /// <param name="decode">Turns token ids into text (a tokenizer's decode). Needed for stop
    /// strings and to fill <see cref="Completion.Text"/>; without it completions are ids only.</param>
    public GenerationEngine(CausalLM model, Func<IReadOnlyList<int>, string>? decode = null)
    {
        this.model = model;
        this.decode = decode;
    }

    public CausalLM Model => model;

    /// <summary>What the last <see cref="Generate"/> call computed (counts, for tests and benchmarks).</summary>
    public GenerationStats LastStats { get; private set; } = new();

    /// <summary>
    /// Checks prompts before any work: non-empty, ids inside the vocabulary, and no longer than
    /// the model's context (max_position_embeddings). Errors name the prompt (0-based index).
    /// </summary>
    public void ValidatePrompts(IReadOnlyList<int[]> prompts, Func<int, string>? describe = null)
    {
        describe ??= i => $"prompt {i}";
        var c = model.Config;
        for (int i = 0; i < prompts.Count; i++)
        {
            var p = prompts[i];
            if (p.Length == 0) throw new InputError($"{describe(i)}: empty prompt");
            if (p.Length > c.MaxPositionEmbeddings)
                throw new InputError($"{describe(i)}: prompt of {p.Length} tokens is longer than the model's context of {c.MaxPositionEmbeddings} (max_position_embeddings)");
            for (int t = 0; t < p.Length; t++)
                if (p[t] < 0 || p[t] >= c.VocabSize)
                    throw new InputError($"{describe(i)}: token {t}: id {p[t]} is outside the vocabulary (0..{c.VocabSize - 1})");
        }
    }

    /// <summary>
    /// Generates <see cref="SamplingOptions.N"/> completions for each prompt (token ids). The
    /// result is in prompt order: result[i][j] is prompt i's j-th sample.
    /// <paramref name="onToken"/> sees every token as it is produced.
    /// </summary>
    public Completion[][] Generate(IReadOnlyList<int[]> prompts, SamplingOptions options, Action<GeneratedToken>? onToken = null)
    {
        options.Validate();
        ValidatePrompts(prompts);
        if (options.Stop.Count > 0 && decode is null)
            throw new ArgumentException("stop strings need a decoder: pass one to the GenerationEngine");
        var eos = (options.EosTokenIds ?? model.Config.EosTokenIds).ToHashSet();
        var result = new Completion[prompts.Count][];
        // Similar lengths together (less padding); a prompt's n samples always share a batch.
        var order = Enumerable.Range(0, prompts.Count).OrderByDescending(i => prompts[i].Length).ThenBy(i => i).ToArray();
        int promptsPerBatch = Math.Max(1, options.BatchSize / options.N);
        LastStats = new GenerationStats();
        using var generator = new TorchSharp.torch.Generator((ulong)options.Seed);
        using var inference = inference_mode();
        for (int start = 0; start < order.Length; start += promptsPerBatch)
        {
            var batch = order.Skip(start).Take(promptsPerBatch).ToArray();
            var completions = GenerateBatch(batch, prompts, options, eos, generator, onToken);
            for (int i = 0; i < batch.Length; i++) result[batch[i]] = completions[i];
        }
        return result;
    }

    sealed class Row(int prompt, int sample, int limit)
    {
        public readonly int Prompt = prompt, Sample = sample, Limit = limit;
        public readonly List<int> Tokens = [];
        public readonly List<float> LogProbs = [];
        public string? FinishReason;
        public string? Text;
    }

    Completion[][] GenerateBatch(int[] promptIndices, IReadOnlyList<int[]> allPrompts, SamplingOptions o,
        HashSet<int> eos, TorchSharp.torch.Generator generator, Action<GeneratedToken>? onToken)
    {
        var config = model.Config;
        var prompts = promptIndices.Select(i => allPrompts[i]).ToArray();
        int n = o.N, rowsTotal = prompts.Length * n, vocab = config.VocabSize;
        int width = prompts.Max(p => p.Length);
        var rows = new Row[rowsTotal];
        for (int r = 0; r < rowsTotal; r++)
        {
            var p = prompts[r / n];
            int limit = Math.Min(o.MaxNewTokens, Math.Max(1, config.MaxPositionEmbeddings - p.Length));
            rows[r] = new Row(promptIndices[r / n], r % n, limit);
        }
        int maxLimit = rows.Max(r => r.Limit);
        bool penalty = o.RepetitionPenalty != 1.0;
        var active = Enumerable.Range(0, rowsTotal).ToArray(); // batch position -> row

        using var cache = new KvCache(config, rowsTotal, width + maxLimit, model.DType);
        Tensor? logits = null, positions = null, present = null; // [batch, vocab] f32, [batch] i64, [batch, vocab] bool
        IDisposable? smallBatch = null; // from the step where few enough rows remain (see Gemv.SmallBatchDecoding)
        try
        {
            // Prefill: every prompt once, left-padded, positions counting from each first real token.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var (ids, mask, pos) = Batching.LeftPad(prompts);
                var hidden = model.ForwardHidden(ids, mask, pos, cache);
                LastStats.PrefillRows += prompts.Length;
                LastStats.PrefillTokens += (long)prompts.Length * width;
                var last = model.Logits(hidden.select(1, width - 1)).to(ScalarType.Float32);
                var next = pos.select(1, width - 1) + 1;
                Tensor? seen = penalty ? PresenceOf(prompts, vocab) : null;
                if (n > 1)
                {
                    var expand = Enumerable.Range(0, rowsTotal).Select(r => (long)(r / n)).ToArray();
                    cache.SelectRows(expand);
                    var index = tensor(expand);
                    last = last.index_select(0, index);
                    next = next.index_select(0, index);
                    seen = seen?.index_select(0, index);
                }
                logits = last.DetachFromDisposeScope();
                positions = next.DetachFromDisposeScope();
                present = seen?.DetachFromDisposeScope();
            }
            LastStats.PrefillSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();

            while (true)
            {
                using var scope = NewDisposeScope();
                var processed = LogitsProcessors.Apply(logits!, o, present);
                Tensor tokens;
                long[] tokenArray;
                float[] logProbArray;
                var contiguous = processed.contiguous();
                var picked = o.Greedy
                    ? TokenPicker.Greedy(contiguous)
                    : TokenPicker.Sample(contiguous, active.Select(r => SampleRandom.Uniform(o.Seed, rows[r].Prompt, rows[r].Sample, rows[r].Tokens.Count)).ToArray());
                if (picked is { } p)
                {
                    (tokenArray, logProbArray) = p;
                    tokens = tensor(tokenArray);
                }
                else
                {
                    tokens = o.Greedy
                        ? processed.argmax(-1)
                        : multinomial(processed.softmax(-1), 1, generator: generator).squeeze(1);
                    tokenArray = tokens.data<long>().ToArray();
                    logProbArray = processed.log_softmax(-1).gather(1, tokens.unsqueeze(1)).squeeze(1).data<float>().ToArray();
                }

                var keep = new List<long>(active.Length);
                for (int i = 0; i < active.Length; i++)
                {
                    var row = rows[active[i]];
                    int token = (int)tokenArray[i];
                    row.Tokens.Add(token);
                    row.LogProbs.Add(logProbArray[i]);
                    if (eos.Contains(token)) row.FinishReason = "stop";
                    else if (o.Stop.Count > 0 && FindStop(row, o.Stop)) row.FinishReason = "stop";
                    else if (row.Tokens.Count >= row.Limit) row.FinishReason = "length";
                    onToken?.Invoke(new GeneratedToken(row.Prompt, row.Sample, token, row.FinishReason is not null));
                    if (row.FinishReason is null) keep.Add(i);
                }
                if (keep.Count == 0)
                {
                    LastStats.DecodeSeconds += clock.Elapsed.TotalSeconds;
                    break;
                }

                if (penalty) present!.scatter_(1, tokens.unsqueeze(1), ones([tokens.shape[0], 1], ScalarType.Bool));
                var nextTokens = tokens;
                var nextPositions = positions!;
                if (keep.Count < active.Length)
                {
                    // Finished sequences leave the batch: no more compute for them.
                    var keepArray = keep.ToArray();
                    cache.SelectRows(keepArray);
                    var index = tensor(keepArray);
                    nextTokens = tokens.index_select(0, index);
                    nextPositions = positions!.index_select(0, index);
                    if (penalty) present = Swap(present, present!.index_select(0, index));
                    active = keepArray.Select(i => active[i]).ToArray();
                }
                if (smallBatch is null && model.DecodesWithGemv(keep.Count)) smallBatch = Gemv.SmallBatchDecoding();
                var hidden = model.ForwardHidden(nextTokens.unsqueeze(1), null, nextPositions.unsqueeze(1), cache);
                LastStats.DecodeSteps++;
                LastStats.DecodeRowTokens += keep.Count;
                logits = Swap(logits, model.Logits(hidden.select(1, 0)).to(ScalarType.Float32));
                positions = Swap(positions, nextPositions + 1);
            }
        }
        finally
        {
            smallBatch?.Dispose();
            logits?.Dispose();
            positions?.Dispose();
            present?.Dispose();
        }

        var result = new Completion[prompts.Length][];
        for (int p = 0; p < prompts.Length; p++)
        {
            result[p] = new Completion[n];
            for (int s = 0; s < n; s++)
            {
                var row = rows[p * n + s];
                var text = row.Text;
                if (text is null && decode is not null)
                    text = decode(row.FinishReason == "stop" && eos.Contains(row.Tokens[^1]) ? row.Tokens.Take(row.Tokens.Count - 1).ToArray() : row.Tokens);
                result[p][s] = new Completion(row.Tokens.ToArray(), row.LogProbs.ToArray(), row.FinishReason!, text);
            }
        }
        return result;
    }

    // Whether the completion's text now contains a stop string; if so its text is cut before
    // the earliest one.
    bool FindStop(Row row, IReadOnlyList<string> stops)
    {
        row.Text = CutAtStop(decode!(row.Tokens), stops);
        return row.Text is not null;
    }

    /// <summary>The text before the earliest stop string in it, or null when it holds none.</summary>
    internal static string? CutAtStop(string text, IReadOnlyList<string> stops)
    {
        int at = -1;
        foreach (var s in stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (at < 0 || i < at)) at = i;
        }
        return at < 0 ? null : text[..at];
    }

    static Tensor PresenceOf(int[][] prompts, int vocab)
    {
        var seen = new bool[(long)prompts.Length * vocab];
        for (int p = 0; p < prompts.Length; p++)
            foreach (var id in prompts[p]) seen[(long)p * vocab + id] = true;
        return tensor(seen, [prompts.Length, vocab]);
    }

    // Keeps a tensor that must outlive the step's dispose scope, releasing the one it replaces.
    static Tensor Swap(Tensor? old, Tensor next)
    {
        var kept = next.DetachFromDisposeScope();
        old?.Dispose();
        return kept;
    }
}

/// <summary>Counts of the work done by one <see cref="GenerationEngine.Generate"/> call.</summary>
public sealed class GenerationStats
{
    /// <summary>Prompt rows prefilled (each prompt once, whatever n).</summary>
    public long PrefillRows { get; internal set; }
    /// <summary>Positions prefilled, padding included.</summary>
    public long PrefillTokens { get; internal set; }
    /// <summary>Decoding forwards (one token per active sequence each).</summary>
    public long DecodeSteps { get; internal set; }
    /// <summary>Sequence-tokens fed to decoding forwards: finished sequences add none.</summary>
    public long DecodeRowTokens { get; internal set; }
    /// <summary>Wall time of the prefills (forward and the first logits).</summary>
    public double PrefillSeconds { get; internal set; }
    /// <summary>Wall time from the end of prefill to the last token: sampling and decoding forwards.</summary>
    public double DecodeSeconds { get; internal set; }
}
