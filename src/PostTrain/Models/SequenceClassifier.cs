using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// transformers' Qwen2ForSequenceClassification / Qwen3ForSequenceClassification /
/// LlamaForSequenceClassification (GenericForSequenceClassification): the decoder (model.*, a
/// <see cref="CausalLM"/> built without lm_head, so LoRA adapters attach to it as to any model)
/// and a linear head without bias (score.weight [num_labels, hidden]); each row's logits are
/// taken at its rightmost token that is not the pad token id (so rows may be right- or
/// left-padded). The head runs in its own dtype (float32 over a bfloat16 decoder with LoRA).
/// </summary>
public sealed class SequenceClassifier : IDisposable
{
    /// <summary>The head's name, as transformers names it (its tensor is score.weight).</summary>
    public const string ScoreName = "score";
    public const string ScoreWeight = "score.weight";

    /// <summary>Takes ownership of <paramref name="decoder"/> and <paramref name="score"/>.</summary>
    public SequenceClassifier(CausalLM decoder, Linear score)
    {
        if (score.weight!.shape[1] != decoder.Config.HiddenSize)
            throw new ArgumentException($"the head's input is {score.weight.shape[1]}, the decoder's hidden size {decoder.Config.HiddenSize}");
        Decoder = decoder;
        Score = score;
    }

    /// <summary>A classifier with uninitialised weights (zeros in the decoder; see <see cref="InitializeScore"/>).</summary>
    public SequenceClassifier(ModelConfig config, int numLabels, ScalarType dtype = ScalarType.Float32, ScalarType? scoreDtype = null)
        : this(new CausalLM(config, dtype, outputLayer: false), NewScore(config, numLabels, scoreDtype ?? dtype))
    {
    }

    static Linear NewScore(ModelConfig config, int numLabels, ScalarType dtype)
    {
        if (numLabels < 1) throw new ArgumentOutOfRangeException(nameof(numLabels), "at least one label");
        return nn.Linear(config.HiddenSize, numLabels, hasBias: false, dtype: dtype);
    }

    /// <summary>The decoder (transformers' model.*), without an output layer.</summary>
    public CausalLM Decoder { get; }
    /// <summary>The head (score.weight [num_labels, hidden]).</summary>
    public Linear Score { get; }
    public ModelConfig Config => Decoder.Config;
    public int NumLabels => (int)Score.weight!.shape[0];
    /// <summary>The decoder's dtype.</summary>
    public ScalarType DType => Decoder.DType;
    public DecoderModel Model => Decoder.Model;

    /// <summary>The weights with transformers' names: the decoder's model.* (no LoRA adapters), then score.weight.</summary>
    public IEnumerable<(string Name, Parameter Parameter)> NamedParameters() =>
        Decoder.BaseParameters().Select(p => (p.name, p.parameter)).Append((ScoreWeight, Score.weight!));

    /// <summary>
    /// The head as transformers' _init_weights initialises a new nn.Linear: normal(0,
    /// initializer_range), here from a generator seeded with <paramref name="seed"/>.
    /// </summary>
    public void InitializeScore(long seed)
    {
        using var noGrad = no_grad();
        using var generator = new TorchSharp.torch.Generator((ulong)seed);
        Score.weight!.normal_(0.0, Config.InitializerRange, generator);
    }

    /// <summary>Evaluation mode, no gradients: a frozen scorer.</summary>
    public void Freeze()
    {
        foreach (var (_, p) in Decoder.named_parameters()) p.requires_grad = false;
        Score.weight!.requires_grad = false;
        Decoder.eval();
        Score.eval();
    }

    Tensor Head(Tensor hidden) => Score.forward(hidden.dtype == Score.weight!.dtype ? hidden : hidden.to(Score.weight.dtype));

    /// <summary>Per-position logits [batch, seq, num_labels] (positions 0..seq-1 in every row, as transformers).</summary>
    public Tensor ForwardAll(Tensor inputIds, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        return Head(Decoder.ForwardHidden(inputIds, attentionMask)).MoveToOuterDisposeScope();
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
    /// Pooled logits [batch, num_labels] (with autograd when enabled): the logits at each row's
    /// rightmost token that is not <paramref name="padTokenId"/>. As transformers, a batch of more
    /// than one row needs a pad id. The head runs at the pooled positions only (the same values
    /// as transformers' head over every position, then the pick).
    /// </summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, long? padTokenId)
    {
        if (padTokenId is null && inputIds.shape[0] != 1)
            throw new ArgumentException("cannot pool batches of more than one row without a pad token id");
        using var scope = NewDisposeScope();
        var hidden = Decoder.ForwardHidden(inputIds, attentionMask);
        var last = PooledPositions(inputIds, padTokenId);
        var picked = hidden[arange(inputIds.shape[0], dtype: ScalarType.Int64), last];
        return Head(picked).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        Decoder.Dispose();
        Score.Dispose();
    }
}
