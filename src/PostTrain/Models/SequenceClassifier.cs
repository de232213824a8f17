using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// transformers' Qwen2ForSequenceClassification / Qwen3ForSequenceClassification /
/// LlamaForSequenceClassification: the decoder (model.*) and a linear head without bias
/// (score.weight [num_labels, hidden]) applied at every position; each row's logits are taken at
/// its rightmost token that is not the pad token id (so rows may be right- or left-padded).
/// </summary>
public sealed class SequenceClassifier : nn.Module
{
    readonly DecoderModel model;
    readonly Linear score;
    readonly RotaryEmbedding rotary;

    public ModelConfig Config { get; }
    public int NumLabels { get; }
    public ScalarType DType { get; }

    public SequenceClassifier(ModelConfig config, int numLabels, ScalarType dtype = ScalarType.Float32) : base(nameof(SequenceClassifier))
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), "at least one label");
        Config = config;
        NumLabels = numLabels;
        DType = dtype;
        model = new DecoderModel(config, dtype);
        score = nn.Linear(config.HiddenSize, numLabels, hasBias: false, dtype: dtype);
        rotary = new RotaryEmbedding(config);
        RegisterComponents();
    }

    public DecoderModel Model => model;

    /// <summary>Per-position logits [batch, seq, num_labels] (positions 0..seq-1 in every row, as transformers).</summary>
    public Tensor ForwardAll(Tensor inputIds, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        long b = inputIds.shape[0], s = inputIds.shape[1];
        var positions = arange(s, dtype: ScalarType.Int64).unsqueeze(0).expand(b, s);
        var mask = AttentionMask.Build(attentionMask, null, s);
        var (cos, sin) = rotary.CosSin(positions, DType);
        var hidden = model.Forward(inputIds, cos, sin, mask);
        return score.forward(hidden).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The row of each batch row transformers pools: argmax over t of t * (id_t != pad), i.e. the
    /// rightmost non-pad token (0 for a row of pads only). Without a pad id, the last position.
    /// </summary>
    public static Tensor PooledPositions(Tensor inputIds, long? padTokenId)
    {
        long b = inputIds.shape[0], s = inputIds.shape[1];
        if (padTokenId is not { } pad) return full(b, s - 1, ScalarType.Int64);
        using var scope = NewDisposeScope();
        var notPad = inputIds.ne(pad).to(ScalarType.Int64);
        return (arange(s, dtype: ScalarType.Int64).unsqueeze(0) * notPad).argmax(-1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pooled logits [batch, num_labels]: the logits at each row's rightmost token that is not
    /// <paramref name="padTokenId"/>. As transformers, a batch of more than one row needs a pad id.
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, long? padTokenId)
    {
        if (padTokenId is null && inputIds.shape[0] != 1)
            throw new ArgumentException("cannot pool batches of more than one row without a pad token id");
        using var scope = NewDisposeScope();
        var logits = ForwardAll(inputIds, attentionMask);
        var last = PooledPositions(inputIds, padTokenId);
        var at = last.view(-1, 1, 1).expand(-1, 1, NumLabels);
        return logits.gather(1, at).squeeze(1).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) rotary.Dispose();
        base.Dispose(disposing);
    }
}
