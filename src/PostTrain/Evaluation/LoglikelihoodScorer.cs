using PostTrain.Data;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Evaluation;

/// <summary>A continuation's summed log-probability given its context, and whether greedy decoding would have produced it.</summary>
public readonly record struct LoglikelihoodResult(double LogLikelihood, bool IsGreedy);

/// <summary>
/// Scores (context, continuation) token pairs as lm-eval's HF model does: the log-probability
/// of each continuation token given everything before it, summed, and whether every
/// continuation token is the argmax. A pair longer than the model's context is cut from the
/// left to max_position_embeddings + 1 tokens, as lm-eval does. Requests that share a context
/// (a multiple-choice question's choices) share its prefill: the context runs once into a KV
/// cache and each continuation is scored over it. Contexts are processed longest first, in
/// batches of about <c>batchSize</c> continuation rows.
/// </summary>
public static class LoglikelihoodScorer
{
    /// <summary>How many pairs were cut from the left in the last call.</summary>
    public static LoglikelihoodResult[] Score(CausalLM model, IReadOnlyList<(int[] Context, int[] Continuation)> requests, int batchSize, out int truncated)
    {
        int maxLength = model.Config.MaxPositionEmbeddings;
        truncated = 0;
        var normalized = new (int[] Context, int[] Continuation)[requests.Count];
        for (int i = 0; i < requests.Count; i++)
        {
            var (ctx, cont) = requests[i];
            if (cont.Length == 0) throw new ArgumentException($"request {i}: empty continuation");
            if (ctx.Length == 0) throw new ArgumentException($"request {i}: empty context");
            if (cont.Length > maxLength) throw new InputError($"request {i}: the continuation has {cont.Length} tokens, more than the model's context of {maxLength}");
            if (ctx.Length + cont.Length > maxLength + 1)
            {
                truncated++;
                ctx = ctx[(ctx.Length + cont.Length - maxLength - 1)..];
            }
            normalized[i] = (ctx, cont);
        }

        // Group requests by context; the groups' order: longest (context + longest continuation) first.
        var groups = normalized.Select((r, i) => (r, i))
            .GroupBy(x => x.r.Context, SequenceComparer.Instance)
            .Select(g => (Context: g.Key, Items: g.Select(x => (x.i, x.r.Continuation)).ToList()))
            .OrderByDescending(g => g.Context.Length + g.Items.Max(x => x.Continuation.Length))
            .ToList();

        var results = new LoglikelihoodResult[requests.Count];
        using var inference = inference_mode();
        var batch = new List<(int[] Context, List<(int Index, int[] Continuation)> Items)>();
        int rows = 0;
        void Flush()
        {
            if (batch.Count == 0) return;
            ScoreBatch(model, batch, results);
            batch.Clear();
            rows = 0;
        }
        foreach (var (context, items) in groups)
        {
            // A group with more continuations than the batch is split (each part re-runs the context).
            for (int start = 0; start < items.Count; start += batchSize)
            {
                var part = items.Skip(start).Take(batchSize).ToList();
                if (rows + part.Count > batchSize) Flush();
                batch.Add((context, part));
                rows += part.Count;
            }
        }
        Flush();
        return results;
    }

    static void ScoreBatch(CausalLM model, List<(int[] Context, List<(int Index, int[] Continuation)> Items)> batch, LoglikelihoodResult[] results)
    {
        using var scope = NewDisposeScope();
        // Every context but its last token is prefilled into the cache; each row then runs the
        // context's last token and its continuation but the last token, so row position j
        // predicts continuation token j.
        var prefixes = batch.Select(g => g.Context[..^1]).ToArray();
        int prefixWidth = prefixes.Max(p => p.Length);
        var rowGroup = new List<long>();
        var suffixes = new List<int[]>();
        var targets = new List<int[]>();
        var rowIndex = new List<int>();
        for (int g = 0; g < batch.Count; g++)
            foreach (var (index, cont) in batch[g].Items)
            {
                rowGroup.Add(g);
                suffixes.Add([batch[g].Context[^1], .. cont[..^1]]);
                targets.Add(cont);
                rowIndex.Add(index);
            }
        int suffixWidth = suffixes.Max(s => s.Length);

        Tensor hidden;
        var (suffixIds, suffixMask) = Batching.RightPad(suffixes);
        if (prefixWidth == 0)
        {
            hidden = model.ForwardHidden(suffixIds, suffixMask);
        }
        else
        {
            using var cache = new KvCache(model.Config, Math.Max(batch.Count, suffixes.Count), prefixWidth + suffixWidth, model.DType);
            var (ids, mask, pos) = Batching.LeftPad(prefixes.Select(p => p.Length == 0 ? new[] { 0 } : p).ToArray());
            if (prefixes.Any(p => p.Length == 0))
            {
                // A one-token context has no prefix: its row is all padding in the prefill.
                for (int g = 0; g < prefixes.Length; g++)
                    if (prefixes[g].Length == 0) mask[g].fill_(0);
            }
            model.ForwardHidden(ids, mask, pos, cache);
            cache.SelectRows(rowGroup.ToArray());
            var starts = rowGroup.Select(g => (long)prefixes[g].Length).ToArray();
            var positions = tensor(starts).unsqueeze(1) + arange(suffixWidth, dtype: ScalarType.Int64).unsqueeze(0);
            hidden = model.ForwardHidden(suffixIds, suffixMask, positions, cache);
        }

        // Gather the scored positions and compute log-probabilities and argmax in chunks.
        var r = new List<long>();
        var c = new List<long>();
        var t = new List<long>();
        for (int row = 0; row < suffixes.Count; row++)
            for (int j = 0; j < targets[row].Length; j++)
            {
                r.Add(row);
                c.Add(j);
                t.Add(targets[row][j]);
            }
        var picked = hidden[tensor(r.ToArray()), tensor(c.ToArray())];
        var target = tensor(t.ToArray());
        var logProbs = new float[t.Count];
        var greedy = new bool[t.Count];
        const int chunk = 1024;
        for (int i = 0; i < t.Count; i += chunk)
        {
            using var inner = NewDisposeScope();
            int n = Math.Min(chunk, t.Count - i);
            var logits = model.Logits(picked.narrow(0, i, n)).to(ScalarType.Float32);
            var tgt = target.narrow(0, i, n);
            var lp = logits.gather(1, tgt.unsqueeze(1)).squeeze(1) - logits.logsumexp(1);
            lp.data<float>().CopyTo(logProbs, i);
            var isMax = logits.argmax(1).eq(tgt);
            isMax.data<bool>().CopyTo(greedy, i);
        }
        int k = 0;
        for (int row = 0; row < suffixes.Count; row++)
        {
            double sum = 0;
            bool all = true;
            for (int j = 0; j < targets[row].Length; j++, k++)
            {
                sum += logProbs[k];
                all &= greedy[k];
            }
            results[rowIndex[row]] = new LoglikelihoodResult(sum, all);
        }
    }

    sealed class SequenceComparer : IEqualityComparer<int[]>
    {
        public static readonly SequenceComparer Instance = new();
        public bool Equals(int[]? x, int[]? y) => x!.AsSpan().SequenceEqual(y);
        public int GetHashCode(int[] obj)
        {
            var h = new HashCode();
            foreach (var v in obj) h.Add(v);
            return h.ToHashCode();
        }
    }
}
