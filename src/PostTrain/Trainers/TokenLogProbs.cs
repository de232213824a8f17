using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>How <see cref="TokenLogProbs.Score"/> computes: the logits' memory bound, the temperature, and whether to record the token statistics.</summary>
public sealed record TokenScoring
{
    public const long DefaultLogitsBytesLimit = 512L << 20;
    public const long DefaultChunkBytes = 256L << 20;

    /// <summary>Above this many bytes of float32 logits, they are computed a chunk of tokens at a time and never held whole.</summary>
    public long LogitsBytesLimit { get; init; } = DefaultLogitsBytesLimit;
    /// <summary>The logits' bytes per chunk when chunked.</summary>
    public long ChunkBytes { get; init; } = DefaultChunkBytes;
    /// <summary>Log-probabilities of logits / temperature (online RL scores what it sampled).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Record each scored token's mean logit, whether the argmax is the target, and the entropy (no gradient).</summary>
    public bool Statistics { get; init; }
}

/// <summary>
/// What <see cref="TokenLogProbs.Score"/> gives: the scored tokens' log-probabilities [Tokens]
/// (float32, with autograd) and, when asked, per token the mean logit over the vocabulary, whether
/// the logits' argmax is the target, and the entropy of the distribution (else empty).
/// </summary>
public sealed record TokenScores(Tensor Logps, float[] MeanLogits, bool[] Correct, float[] Entropy);

/// <summary>
/// The one log-probability scorer of SFT, DPO and GRPO: one forward pass over the rows, the
/// output layer applied at the scored positions only, the [tokens, vocabulary] logits held whole
/// when small and computed in chunks otherwise (<see cref="ChunkedTokenLogProbs"/>: backward
/// recomputes each chunk), so a method's memory does not grow with its vocabulary times its tokens.
/// </summary>
public static class TokenLogProbs
{
    public static TokenScores Score(CausalLM model, TokenRows rows, TokenScoring how)
    {
        var hidden = model.ForwardHidden(rows.InputIds, positionIds: rows.PositionIds);
        // No scored token: an empty result that still reaches the graph, so a loss built on it backpropagates zeros.
        if (rows.Tokens == 0) return new(hidden.sum().to(ScalarType.Float32).mul(0).reshape(1).narrow(0, 0, 0), [], [], []);
        var picked = hidden[rows.RowIndex, rows.ColIndex];
        if (how.Temperature != 1.0) picked = picked / how.Temperature;
        long vocab = model.Config.VocabSize;
        if ((long)rows.Tokens * vocab * 4 > how.LogitsBytesLimit)
        {
            var stats = new ChunkedTokenLogProbs.Stats { RecordEntropy = how.Statistics };
            var chunked = ChunkedTokenLogProbs.Apply(picked, model.OutputWeight, rows.Targets, (int)Math.Max(1, how.ChunkBytes / (vocab * 4)), stats);
            return how.Statistics ? new(chunked, stats.MeanLogits, stats.Correct, stats.Entropy) : new(chunked, [], [], []);
        }
        var logits = model.Logits(picked).to(ScalarType.Float32);                      // [n, vocab]
        var logp = logits.log_softmax(1);
        var tokenLogps = logp.gather(1, rows.Targets.unsqueeze(1)).squeeze(1);         // [n]
        if (!how.Statistics) return new(tokenLogps, [], [], []);
        using (no_grad())
        {
            var lp = logp.detach();
            return new(tokenLogps,
                logits.detach().mean([1]).data<float>().ToArray(),
                logits.detach().argmax(1).eq(rows.Targets).data<bool>().ToArray(),
                (lp.exp() * lp).sum(1).neg().data<float>().ToArray());
        }
    }
}
