using PostTrain.Data;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>Per-token log-probabilities of sequences under a model.</summary>
public static class TokenScorer
{
    /// <summary>
    /// For each sequence, the log-probability of every token given those before it (NaN for the
    /// first token, which has no context). Sequences are scored in batches; the output order is
    /// the input order.
    /// </summary>
    public static float[][] LogProbs(CausalLM model, IReadOnlyList<int[]> sequences, int batchSize = 8)
    {
        var result = new float[sequences.Count][];
        // Similar lengths together: less padding. Output goes back to input order.
        var order = Enumerable.Range(0, sequences.Count).OrderByDescending(i => sequences[i].Length).ToArray();
        using var inference = inference_mode();
        for (int start = 0; start < order.Length; start += batchSize)
        {
            var rows = order.Skip(start).Take(batchSize).ToArray();
            var scored = ScoreBatch(model, rows.Select(i => sequences[i]).ToArray());
            for (int r = 0; r < rows.Length; r++) result[rows[r]] = scored[r];
        }
        return result;
    }

    /// <summary>Mean negative log-likelihood of a sequence's scored tokens; NaN when it has none.</summary>
    public static double MeanNll(float[] logProbs) =>
        logProbs.Length < 2 ? double.NaN : -logProbs.Skip(1).Select(x => (double)x).Average();

    static float[][] ScoreBatch(CausalLM model, int[][] batch)
    {
        using var scope = NewDisposeScope();
        var (ids, _) = Batching.RightPad(batch);
        var hidden = model.ForwardHidden(ids);                                   // [b, s, h]
        // The hidden state at position t predicts token t+1: gather the scored positions only.
        var rowIndex = new List<long>();
        var colIndex = new List<long>();
        var targets = new List<long>();
        for (int r = 0; r < batch.Length; r++)
            for (int t = 0; t + 1 < batch[r].Length; t++)
            {
                rowIndex.Add(r);
                colIndex.Add(t);
                targets.Add(batch[r][t + 1]);
            }
        var scores = new float[targets.Count];
        if (targets.Count > 0)
        {
            var picked = hidden[tensor(rowIndex.ToArray()), tensor(colIndex.ToArray())]; // [n, h]
            var target = tensor(targets.ToArray());
            const int chunk = 1024; // logits of at most chunk x vocab at a time
            for (int i = 0; i < targets.Count; i += chunk)
            {
                using var inner = NewDisposeScope();
                int n = Math.Min(chunk, targets.Count - i);
                var logits = model.Logits(picked.narrow(0, i, n)).to(ScalarType.Float32);
                var lp = logits.gather(1, target.narrow(0, i, n).unsqueeze(1)).squeeze(1) - logits.logsumexp(1);
                lp.data<float>().CopyTo(scores, i);
            }
        }
        var result = new float[batch.Length][];
        int k = 0;
        for (int r = 0; r < batch.Length; r++)
        {
            result[r] = new float[batch[r].Length];
            if (result[r].Length > 0) result[r][0] = float.NaN;
            for (int t = 1; t < batch[r].Length; t++) result[r][t] = scores[k++];
        }
        return result;
    }
}
