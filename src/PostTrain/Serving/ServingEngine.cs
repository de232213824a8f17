using System.Threading.Channels;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Serving;

/// <summary>How a <see cref="ServingEngine"/> batches.</summary>
public sealed record ServingEngineOptions
{
    /// <summary>Most sequences decoded together (vLLM's max_num_seqs); a request waits while its n samples do not fit.</summary>
    public int MaxBatch { get; init; } = 16;
    /// <summary>Most positions per sequence, prompt and completion together (vLLM's max_model_len); 0: the model's context, at most 2048.</summary>
    public int MaxModelLength { get; init; }
    /// <summary>When the engine is idle, how long the first request waits for others sent with it, to prefill them together (0: never).</summary>
    public int GatherMilliseconds { get; init; } = 10;
}

/// <summary>What a submitted request streams: its events, then the channel completes.</summary>
public sealed class EngineStream(ChannelReader<EngineEvent> events)
{
    public ChannelReader<EngineEvent> Events { get; } = events;

    /// <summary>Reads every event; the completions by sample, for callers that do not stream.</summary>
    public async Task<(PromptScored? Prompt, Completion[] Samples)> CollectAsync(int n, CancellationToken cancel = default)
    {
        PromptScored? prompt = null;
        var tokens = Enumerable.Range(0, n).Select(_ => new List<int>()).ToArray();
        var logps = Enumerable.Range(0, n).Select(_ => new List<float>()).ToArray();
        var done = new Completion?[n];
        await foreach (var e in Events.ReadAllAsync(cancel))
            switch (e)
            {
                case PromptScored p: prompt = p; break;
                case TokenGenerated t:
                    tokens[t.Sample].Add(t.TokenId);
                    logps[t.Sample].Add(t.LogProb);
                    if (t.FinishReason is not null) done[t.Sample] = new Completion(tokens[t.Sample].ToArray(), logps[t.Sample].ToArray(), t.FinishReason, t.Text);
                    break;
            }
        return (prompt, done.Select((c, i) => c ?? new Completion(tokens[i].ToArray(), logps[i].ToArray(), "abort", null)).ToArray());
    }
}

/// <summary>
/// Generation for a server: continuous batching over one model with LoRA adapters beside it.
/// Requests arrive from any thread (<see cref="Submit"/>); one engine thread owns the model and
/// the KV cache. Between decode steps it admits waiting requests (each prompt prefilled alone,
/// its n samples joining the running batch as copies of that prefill, right-aligned in the
/// shared cache: <see cref="KvCache.AppendRows"/>) and drops finished or cancelled sequences,
/// so a request starts without waiting for the batch to drain and leaves the step it ends.
/// Each row has its own sampling options, adapter (several adapters in one batch:
/// <see cref="Projection.RowAdapters"/>) and random key (<see cref="SampleRandom"/>), so a
/// completion does not depend on what else is in the batch: it is the one
/// <see cref="GenerationEngine"/> samples for the same prompt, options and seed (up to the
/// floating-point differences of batched matrix products).
/// </summary>
public sealed class ServingEngine : IDisposable
{
    readonly CausalLM model;
    readonly Func<IReadOnlyList<int>, string>? decode;
    readonly ServingEngineOptions options;
    readonly Thread thread;
    readonly object gate = new();
    readonly Queue<Pending> waiting = new();
    readonly Queue<Action> posted = new();
    readonly Dictionary<string, Adapter> adapters = new(StringComparer.Ordinal);
    readonly List<Row> active = []; // batch position -> row
    readonly List<(string Name, Projection Projection)> projections; // the model's linear layers, found once (set per forward when adapters are in use)
    bool stopping;
    Exception? fault;

    /// <param name="model">The model (used, not owned): put in evaluation mode.</param>
    /// <param name="decode">Token ids to text, for stop strings and <see cref="TokenGenerated.Text"/>.</param>
    public ServingEngine(CausalLM model, Func<IReadOnlyList<int>, string>? decode, ServingEngineOptions? options = null)
    {
        this.model = model;
        this.decode = decode;
        options ??= new ServingEngineOptions();
        if (options.MaxBatch <= 0) throw new InputError($"--max-batch: must be positive, got {options.MaxBatch}");
        if (options.MaxModelLength < 0) throw new InputError($"--max-model-len: must be positive, got {options.MaxModelLength}");
        int context = model.Config.MaxPositionEmbeddings;
        if (options.MaxModelLength > context)
            throw new InputError($"--max-model-len: {options.MaxModelLength} is longer than the model's context of {context} (max_position_embeddings)");
        this.options = options with { MaxModelLength = options.MaxModelLength > 0 ? options.MaxModelLength : Math.Min(context, 2048) };
        model.eval();
        projections = model.Projections().ToList();
        thread = new Thread(Run) { IsBackground = true, Name = "posttrain-serving" };
        thread.Start();
    }

    public CausalLM Model => model;
    public int MaxBatch => options.MaxBatch;
    public int MaxModelLength => options.MaxModelLength;

    /// <summary>Counts since the engine started (for the benchmark and /metrics-like reports).</summary>
    public ServingStats Stats { get; } = new();

    /// <summary>The adapters loaded, by name.</summary>
    public IReadOnlyList<string> Adapters
    {
        get { lock (gate) return adapters.Keys.Order(StringComparer.Ordinal).ToList(); }
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter from <paramref name="dir"/> under <paramref name="name"/>
    /// (vLLM's /v1/load_lora_adapter). Errors (a bad adapter, a name in use) are
    /// <see cref="InputError"/>s; requests already running are not disturbed.
    /// </summary>
    public void LoadAdapter(string name, string dir)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new InputError("lora_name: must not be empty");
        lock (gate)
            if (adapters.ContainsKey(name)) throw new InputError($"lora_name: an adapter named '{name}' is already loaded");
        if (!Directory.Exists(dir)) throw new InputError($"lora_path: {dir}: no such directory");
        var (config, weights) = PeftAdapter.ReadStandalone(model, dir);
        var adapter = new Adapter(name, config.Scaling, weights);
        lock (gate)
        {
            if (adapters.ContainsKey(name))
            {
                adapter.Unload();
                throw new InputError($"lora_name: an adapter named '{name}' is already loaded");
            }
            adapters[name] = adapter;
        }
    }

    /// <summary>Unloads an adapter (vLLM's /v1/unload_lora_adapter): new requests cannot name it; running ones finish with it.</summary>
    public void UnloadAdapter(string name)
    {
        lock (gate)
        {
            if (!adapters.Remove(name, out var adapter)) throw new InputError($"lora_name: no adapter named '{name}' is loaded");
            adapter.Unload();
        }
    }

    /// <summary>
    /// Checks a request and queues it. Errors (an empty or over-long prompt, ids outside the
    /// vocabulary, bad sampling values, an unknown adapter, more samples than the batch holds)
    /// are <see cref="InputError"/>s thrown here, before anything runs. Cancelling
    /// <paramref name="cancel"/> (a client that went away) frees the request's rows at the next step.
    /// </summary>
    public EngineStream Submit(EngineRequest request, CancellationToken cancel = default)
    {
        var sampling = request.Sampling;
        bool scoreOnly = sampling.MaxNewTokens == 0 && request.PromptLogprobs is not null;
        (scoreOnly ? sampling with { MaxNewTokens = 1 } : sampling).Validate();
        if (sampling.Stop.Count > 0 && decode is null) throw new InvalidOperationException("stop strings need a decoder");
        var prompt = request.Prompt;
        if (prompt.Length == 0) throw new InputError("prompt: empty");
        int vocab = model.Config.VocabSize;
        for (int t = 0; t < prompt.Length; t++)
            if (prompt[t] < 0 || prompt[t] >= vocab) throw new InputError($"prompt: token {t}: id {prompt[t]} is outside the vocabulary (0..{vocab - 1})");
        int limit = options.MaxModelLength;
        if (prompt.Length + sampling.MaxNewTokens > limit)
            throw new InputError($"This model's maximum context length is {limit} tokens. However, you requested {prompt.Length + sampling.MaxNewTokens} tokens " +
                                 $"({prompt.Length} in the prompt, {sampling.MaxNewTokens} in the completion). Please reduce the length of the prompt or the completion.");
        if (sampling.N > options.MaxBatch) throw new InputError($"n: {sampling.N} samples do not fit a batch of {options.MaxBatch} sequences (--max-batch)");
        if (request.Logprobs is < 0 || request.PromptLogprobs is < 0) throw new InputError("logprobs: must not be negative");
        if (request.Logprobs > vocab || request.PromptLogprobs > vocab) throw new InputError($"logprobs: at most the vocabulary's {vocab}");
        var channel = Channel.CreateUnbounded<EngineEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        lock (gate)
        {
            if (stopping) throw new InvalidOperationException("the engine is shutting down");
            if (fault is not null) throw new InvalidOperationException("the engine stopped after an error", fault);
            Adapter? adapter = null;
            if (request.Adapter is { } name)
            {
                if (!adapters.TryGetValue(name, out adapter)) throw new InputError($"model: no adapter named '{name}' is loaded");
                adapter.Acquire();
            }
            var pending = new Pending(request, channel.Writer, adapter, cancel, scoreOnly);
            waiting.Enqueue(pending);
            Monitor.PulseAll(gate);
        }
        return new EngineStream(channel.Reader);
    }

    /// <summary>Stops accepting requests, lets the ones queued and running finish, and returns when the engine thread has ended.</summary>
    public void Shutdown()
    {
        lock (gate)
        {
            stopping = true;
            Monitor.PulseAll(gate);
        }
        thread.Join();
    }

    public void Dispose()
    {
        Shutdown();
        lock (gate)
        {
            foreach (var a in adapters.Values) a.Unload();
            adapters.Clear();
        }
    }

    // A request in the engine (compared by reference: its counts change).
    sealed class Pending(EngineRequest request, ChannelWriter<EngineEvent> writer, Adapter? adapter, CancellationToken cancel, bool scoreOnly)
    {
        public EngineRequest Request => request;
        public ChannelWriter<EngineEvent> Writer => writer;
        public Adapter? Adapter => adapter;
        public CancellationToken Cancel => cancel;
        public bool ScoreOnly => scoreOnly;
        public int Open; // samples not finished yet
        int finished;

        // Ends the request's stream (once) and lets go of its adapter.
        public void Finish(Exception? error = null)
        {
            if (Interlocked.Exchange(ref finished, 1) == 1) return;
            Writer.TryComplete(error);
            Adapter?.Release();
        }
    }

    sealed class Row(Pending owner, int sample, bool[]? present)
    {
        public readonly Pending Owner = owner;
        public readonly int Sample = sample;
        public readonly List<int> Tokens = [];
        public readonly bool[]? Present = present; // repetition penalty: tokens in prompt or completion
        public string? Text;
        public long NextPosition => Owner.Request.Prompt.Length + Tokens.Count - 1;
        public SamplingOptions Options => Owner.Request.Sampling;
    }

    /// <summary>
    /// An adapter's weights in float32 by layer; counted while requests use it and disposed
    /// when it is unloaded and the last one has finished.
    /// </summary>
    sealed class Adapter(string name, double scaling, Dictionary<string, (Tensor A, Tensor B)> weights)
    {
        int users;
        bool unloaded;
        public string Name => name;
        public double Scaling => scaling;
        public Dictionary<string, (Tensor A, Tensor B)> Weights => weights;

        public void Acquire() => Interlocked.Increment(ref users);

        public void Release()
        {
            if (Interlocked.Decrement(ref users) < 0 && Volatile.Read(ref unloaded)) Free();
        }

        public void Unload()
        {
            Volatile.Write(ref unloaded, true);
            if (Interlocked.Decrement(ref users) < 0) Free();
        }

        void Free()
        {
            foreach (var (a, b) in weights.Values)
            {
                a.Dispose();
                b.Dispose();
            }
        }
    }

    void Run()
    {
        using var inference = inference_mode();
        var config = model.Config;
        KvCache? cache = null;
        Tensor? logits = null; // [active, vocab] float32: each active row's next-token logits
        IDisposable? smallBatch = null;
        try
        {
            cache = new KvCache(config, options.MaxBatch, options.MaxModelLength, model.DType);
            while (true)
            {
                List<Pending> admitted;
                lock (gate)
                {
                    while (waiting.Count == 0 && active.Count == 0 && !stopping) Monitor.Wait(gate);
                    if (waiting.Count == 0 && active.Count == 0 && stopping) return;
                    // An idle engine waits a moment for requests sent together (clients started at
                    // once) so that they are prefilled in one forward rather than one by one.
                    if (active.Count == 0 && options.GatherMilliseconds > 0)
                    {
                        var until = DateTime.UtcNow.AddMilliseconds(options.GatherMilliseconds);
                        while (!stopping && waiting.Sum(p => p.Request.Sampling.N) < options.MaxBatch && DateTime.UtcNow < until)
                            Monitor.Wait(gate, until - DateTime.UtcNow);
                    }
                    admitted = [];
                    int free = options.MaxBatch - active.Count;
                    while (waiting.Count > 0 && (waiting.Peek().ScoreOnly || waiting.Peek().Request.Sampling.N <= free))
                    {
                        var p = waiting.Dequeue();
                        if (!p.ScoreOnly) free -= p.Request.Sampling.N;
                        admitted.Add(p);
                    }
                }
                try
                {
                    if (admitted.Count > 0)
                    {
                        smallBatch?.Dispose();
                        smallBatch = null;
                        Admit(admitted, cache, ref logits);
                    }
                    if (active.Count == 0) continue;
                    Step(cache, ref logits, ref smallBatch);
                }
                catch (Exception e)
                {
                    // A failed forward (memory, a bug) fails the requests in the batch, not the server.
                    foreach (var p in admitted.Concat(active.Select(r => r.Owner)).Distinct()) p.Finish(e);
                    active.Clear();
                    cache.Clear();
                    logits?.Dispose();
                    logits = null;
                    smallBatch?.Dispose();
                    smallBatch = null;
                    Stats.Failures++;
                }
            }
        }
        catch (Exception e)
        {
            lock (gate)
            {
                fault = e;
                foreach (var p in waiting) p.Finish(e);
                waiting.Clear();
            }
            foreach (var p in active.Select(r => r.Owner).Distinct()) p.Finish(e);
        }
        finally
        {
            smallBatch?.Dispose();
            logits?.Dispose();
            cache?.Dispose();
        }
    }

    // Most prompt positions (padding included) prefilled in one forward: vLLM's max_num_batched_tokens.
    const int PrefillTokenBudget = 8192;

    // Prefills the admitted requests' prompts, several in one left-padded forward (as
    // GenerationEngine does), scores the prompts that asked, and adds each request's n samples
    // to the batch as copies of its prefill.
    void Admit(List<Pending> admitted, KvCache cache, ref Tensor? logits)
    {
        var live = new List<Pending>();
        foreach (var p in admitted)
            if (p.Cancel.IsCancellationRequested) p.Finish();
            else live.Add(p);
        int start = 0;
        while (start < live.Count)
        {
            // Longest prompts are not sorted: requests keep their arrival order.
            int end = start + 1, width = live[start].Request.Prompt.Length;
            while (end < live.Count && Math.Max(width, live[end].Request.Prompt.Length) * (end - start + 1) <= PrefillTokenBudget)
                width = Math.Max(width, live[end++].Request.Prompt.Length);
            Prefill(live.GetRange(start, end - start), width, cache, ref logits);
            start = end;
        }
    }

    void Prefill(List<Pending> group, int width, KvCache cache, ref Tensor? logits)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        var prompts = group.Select(p => p.Request.Prompt).ToArray();
        using var prefill = new KvCache(model.Config, group.Count, width, model.DType);
        var (ids, mask, pos) = Data.Batching.LeftPad(prompts);
        var adapterGroups = group.Select((p, i) => (p.Adapter, i)).Where(x => x.Adapter is not null).GroupBy(x => x.Adapter!)
            .Select(g => (g.Count() == group.Count ? null : tensor(g.Select(x => (long)x.i).ToArray()), g.Key)).ToList();
        Tensor hidden;
        using (WithAdapters(adapterGroups))
            hidden = model.ForwardHidden(ids, group.Count > 1 ? mask : null, group.Count > 1 ? pos : null, prefill);
        Stats.PrefillTokens += prompts.Sum(p => p.Length);
        var lastLogits = model.Logits(hidden.select(1, width - 1)).to(ScalarType.Float32); // [group, vocab]
        for (int i = 0; i < group.Count; i++)
        {
            var p = group[i];
            var request = p.Request;
            var prompt = request.Prompt;
            if (request.PromptLogprobs is { } k)
            {
                using var inner = NewDisposeScope();
                var all = model.Logits(hidden[i].narrow(0, width - prompt.Length, prompt.Length)).to(ScalarType.Float32).log_softmax(-1); // [P, vocab]
                var next = tensor(prompt.Skip(1).Select(t => (long)t).ToArray()).unsqueeze(1);
                var scores = new float?[prompt.Length];
                var picked = prompt.Length > 1 ? all.narrow(0, 0, prompt.Length - 1).gather(1, next).squeeze(1).data<float>().ToArray() : [];
                for (int t = 1; t < prompt.Length; t++) scores[t] = picked[t - 1];
                TokenLogprob[]?[]? top = null;
                if (k > 0 && prompt.Length > 1)
                {
                    top = new TokenLogprob[]?[prompt.Length];
                    var tops = Top(all.narrow(0, 0, prompt.Length - 1), k);
                    for (int t = 1; t < prompt.Length; t++) top[t] = tops[t - 1];
                }
                p.Writer.TryWrite(new PromptScored(scores, top));
            }
            Stats.Requests++;
            if (p.ScoreOnly)
            {
                p.Finish();
                continue;
            }
            int n = request.Sampling.N;
            if (active.Count == 0) cache.Clear();
            cache.AppendRows(prefill, n, i);
            var row = lastLogits.narrow(0, i, 1);
            var expanded = row.expand(n, row.shape[1]);
            var joined = logits is null ? expanded.contiguous() : cat([logits, expanded], 0);
            logits?.Dispose();
            logits = joined.DetachFromDisposeScope();
            p.Open = n;
            bool penalty = request.Sampling.RepetitionPenalty != 1.0;
            for (int s = 0; s < n; s++)
            {
                bool[]? present = null;
                if (penalty)
                {
                    present = new bool[model.Config.VocabSize];
                    foreach (var t in prompt) present[t] = true;
                }
                active.Add(new Row(p, s, present));
            }
        }
        Stats.PrefillSeconds += clock.Elapsed.TotalSeconds;
    }

    // One decode step: a token for every active row, events out, finished rows out, and a
    // forward of the rest (their next logits).
    void Step(KvCache cache, ref Tensor? logits, ref IDisposable? smallBatch)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var scope = NewDisposeScope();
        int rows = active.Count;
        var tokens = new int[rows];
        var logps = new float[rows];
        var tops = new TokenLogprob[]?[rows];
        Pick(logits!, tokens, logps, tops);

        // Read once: a cancellation that lands during the step counts from the next one.
        var cancelled = active.Select(r => r.Owner).Distinct().Where(p => p.Cancel.IsCancellationRequested).ToHashSet();
        var keep = new List<long>(rows);
        for (int i = 0; i < rows; i++)
        {
            var row = active[i];
            var o = row.Options;
            var owner = row.Owner;
            if (cancelled.Contains(owner)) continue;
            int token = tokens[i];
            row.Tokens.Add(token);
            if (row.Present is not null) row.Present[token] = true;
            var eos = o.EosTokenIds ?? model.Config.EosTokenIds;
            string? finish = null;
            if (eos.Contains(token)) finish = "stop";
            else if (o.Stop.Count > 0 && FindStop(row, o.Stop)) finish = "stop";
            else if (row.Tokens.Count >= o.MaxNewTokens) finish = "length";
            string? text = null;
            if (finish is not null && decode is not null)
                text = row.Text ?? decode(finish == "stop" && eos.Contains(token) ? row.Tokens.Take(row.Tokens.Count - 1).ToArray() : row.Tokens);
            owner.Writer.TryWrite(new TokenGenerated(row.Sample, token, logps[i], tops[i], finish, text));
            Stats.GeneratedTokens++;
            if (finish is null) keep.Add(i);
            else if (--owner.Open == 0) owner.Finish();
        }
        // Rows of cancelled requests: their requests end now (no more events).
        foreach (var owner in cancelled)
        {
            owner.Open = 0;
            owner.Finish();
            Stats.Cancelled++;
        }

        if (keep.Count == 0)
        {
            active.Clear();
            cache.Clear();
            logits!.Dispose();
            logits = null;
            Stats.DecodeSeconds += clock.Elapsed.TotalSeconds;
            return;
        }
        var keepArray = keep.ToArray();
        if (keep.Count < rows)
        {
            cache.SelectRows(keepArray);
            var kept = keepArray.Select(i => active[(int)i]).ToList();
            active.Clear();
            active.AddRange(kept);
        }
        if (cache.Length == cache.Capacity && cache.CompactLeft() == 0)
            throw new InvalidOperationException("the KV cache is full of real tokens (a sequence longer than --max-model-len)");
        bool small = model.DecodesWithGemv(keep.Count);
        if (small && smallBatch is null) smallBatch = Gemv.SmallBatchDecoding();
        else if (!small && smallBatch is not null)
        {
            smallBatch.Dispose();
            smallBatch = null;
        }
        var next = tensor(keepArray.Select(i => (long)tokens[i]).ToArray(), [keep.Count, 1]);
        var positions = tensor(active.Select(r => r.NextPosition).ToArray(), [keep.Count, 1]);
        Tensor hidden;
        using (WithAdapters(AdapterGroups()))
            hidden = model.ForwardHidden(next, null, positions, cache);
        var fresh = model.Logits(hidden.select(1, 0)).to(ScalarType.Float32).DetachFromDisposeScope();
        logits!.Dispose();
        logits = fresh;
        Stats.DecodeSteps++;
        Stats.DecodeRowTokens += keep.Count;
        Stats.DecodeSeconds += clock.Elapsed.TotalSeconds;
    }

    // Each row's token, its log-probability and (when asked) the most likely tokens, rows with
    // the same processing options together (the processors take one set of values).
    void Pick(Tensor logits, int[] tokens, float[] logps, TokenLogprob[]?[] tops)
    {
        var groups = Enumerable.Range(0, active.Count).GroupBy(i =>
        {
            var o = active[i].Options;
            return (o.Temperature, o.TopK, o.TopP, o.MinP, o.RepetitionPenalty);
        });
        foreach (var group in groups)
        {
            using var scope = NewDisposeScope();
            var members = group.ToArray();
            var o = active[members[0]].Options;
            var index = tensor(members.Select(i => (long)i).ToArray());
            var sub = members.Length == active.Count ? logits : logits.index_select(0, index);
            Tensor? present = null;
            if (o.RepetitionPenalty != 1.0)
            {
                int vocab = (int)logits.shape[1];
                var flags = new bool[(long)members.Length * vocab];
                for (int m = 0; m < members.Length; m++) Array.Copy(active[members[m]].Present!, 0, flags, (long)m * vocab, vocab);
                present = tensor(flags, [members.Length, vocab]);
            }
            var processed = LogitsProcessors.Apply(sub, o, present).contiguous();
            var picked = o.Greedy
                ? TokenPicker.Greedy(processed)
                : TokenPicker.Sample(processed, members.Select(i => Uniform(active[i])).ToArray());
            long[] chosen;
            float[] chosenLogps;
            if (picked is { } p) (chosen, chosenLogps) = p;
            else
            {
                // Non-finite logits (a diverged model): libtorch's rules, as GenerationEngine.
                var t = o.Greedy ? processed.argmax(-1) : multinomial(processed.softmax(-1), 1).squeeze(1);
                chosen = t.data<long>().ToArray();
                chosenLogps = processed.log_softmax(-1).gather(1, t.unsqueeze(1)).squeeze(1).data<float>().ToArray();
            }
            int k = members.Max(i => active[i].Owner.Request.Logprobs ?? 0);
            var top = k > 0 ? Top(processed.log_softmax(-1), k) : null;
            for (int m = 0; m < members.Length; m++)
            {
                int i = members[m];
                tokens[i] = (int)chosen[m];
                logps[i] = chosenLogps[m];
                if (active[i].Owner.Request.Logprobs is > 0 and var want && top is not null) tops[i] = top[m][..want];
            }
        }
    }

    float Uniform(Row row) => SampleRandom.Uniform(row.Options.Seed, row.Owner.Request.PromptIndex, row.Sample, row.Tokens.Count);

    // The k most likely tokens of each row of log-probabilities [rows, vocab], most likely first.
    static TokenLogprob[][] Top(Tensor logProbs, int k)
    {
        using var scope = NewDisposeScope();
        var (values, indices) = logProbs.topk(Math.Min(k, (int)logProbs.shape[1]), dim: -1);
        var v = values.data<float>().ToArray();
        var ix = indices.data<long>().ToArray();
        int width = (int)values.shape[1];
        return Enumerable.Range(0, (int)values.shape[0])
            .Select(r => Enumerable.Range(0, width).Select(j => new TokenLogprob((int)ix[r * width + j], v[r * width + j])).ToArray()).ToArray();
    }

    bool FindStop(Row row, IReadOnlyList<string> stops)
    {
        row.Text = GenerationEngine.CutAtStop(decode!(row.Tokens), stops);
        return row.Text is not null;
    }

    // The active rows by adapter: (rows, adapter), rows null when one adapter serves them all.
    List<(Tensor? Rows, Adapter Adapter)> AdapterGroups()
    {
        var groups = new List<(Tensor?, Adapter)>();
        var byAdapter = Enumerable.Range(0, active.Count).Where(i => active[i].Owner.Adapter is not null)
            .GroupBy(i => active[i].Owner.Adapter!).ToList();
        foreach (var g in byAdapter)
        {
            var members = g.ToArray();
            groups.Add((members.Length == active.Count ? null : tensor(members.Select(i => (long)i).ToArray()), g.Key));
        }
        return groups;
    }

    // Sets every layer's row adapters for one forward; cleared on dispose.
    IDisposable WithAdapters(List<(Tensor? Rows, Adapter Adapter)> groups)
    {
        if (groups.Count == 0) return new Cleared([]);
        foreach (var (name, layer) in projections)
        {
            var list = new List<RowAdapter>();
            foreach (var (rows, adapter) in groups)
                if (adapter.Weights.TryGetValue(name, out var ab)) list.Add(new RowAdapter(rows, ab.A, ab.B, adapter.Scaling));
            layer.RowAdapters = list.Count > 0 ? list : null;
        }
        return new Cleared(projections.Select(l => l.Projection).ToList());
    }

    sealed class Cleared(List<Projection> layers) : IDisposable
    {
        public void Dispose()
        {
            foreach (var l in layers) l.RowAdapters = null;
        }
    }
}

/// <summary>Counts of a <see cref="ServingEngine"/>'s work since it started.</summary>
public sealed class ServingStats
{
    public long Requests { get; internal set; }
    public long Cancelled { get; internal set; }
    public long Failures { get; internal set; }
    public long PrefillTokens { get; internal set; }
    public long GeneratedTokens { get; internal set; }
    public long DecodeSteps { get; internal set; }
    /// <summary>Sequence-tokens fed to decoding forwards: the mean batch is this over <see cref="DecodeSteps"/>.</summary>
    public long DecodeRowTokens { get; internal set; }
    public double PrefillSeconds { get; internal set; }
    public double DecodeSeconds { get; internal set; }
}
