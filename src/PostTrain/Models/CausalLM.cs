using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>The decoder stack: transformers' Qwen2Model / Qwen3Model / LlamaModel.</summary>
public sealed class DecoderModel : nn.Module
{
    readonly Embedding embed_tokens;
    readonly ModuleList<DecoderLayer> layers;
    readonly RmsNorm norm;

    public DecoderModel(ModelConfig c, ScalarType dtype) : base(nameof(DecoderModel))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize, dtype: dtype);
        layers = new ModuleList<DecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers)
            .Select(_ => new DecoderLayer(c, dtype)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, dtype);
        RegisterComponents();
    }

    public Embedding EmbedTokens => embed_tokens;

    /// <summary>The generator of the model's dropout masks (LoRA dropout): the model's own, so
    /// a run is reproducible whatever else in the process draws random numbers.</summary>
    public TorchSharp.torch.Generator DropoutGenerator { get; } = new(0);

    /// <summary>Recompute each layer in backward instead of keeping its activations.</summary>
    public bool GradientCheckpointing { get; set; }
    public IList<DecoderLayer> Layers => layers;

    public Tensor Forward(Tensor inputIds, Tensor cos, Tensor sin, Tensor? mask, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var h = embed_tokens.forward(inputIds);
        // Checkpointing only applies when training (no cache there: caches are for inference).
        bool checkpoint = GradientCheckpointing && is_grad_enabled() && cache is null;
        // With frozen embeddings (LoRA) the layers' input needs a gradient for the checkpointed
        // layers to take part in backward (transformers' enable_input_require_grads).
        if (checkpoint && !h.requires_grad) h.requires_grad_(true);
        for (int i = 0; i < layers.Count; i++)
            h = checkpoint ? CheckpointedLayer.Apply(layers[i], h, cos, sin, mask, DropoutGenerator) : layers[i].Forward(h, cos, sin, mask, cache, i);
        return norm.forward(h).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) DropoutGenerator.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>
/// A Qwen2, Qwen3 or Llama causal language model with transformers' exact semantics and
/// parameter names (model.embed_tokens.weight, model.layers.N..., lm_head.weight).
/// </summary>
public sealed class CausalLM : nn.Module
{
    readonly DecoderModel model;
    readonly Linear? lm_head;
    readonly RotaryEmbedding rotary;

    public ModelConfig Config { get; }
    public ScalarType DType { get; }

    /// <param name="outputLayer">
    /// False: the decoder alone, without lm_head (a sequence classifier's body, whose head is its
    /// own): <see cref="OutputWeight"/> then fails for an untied model.
    /// </param>
    public CausalLM(ModelConfig config, ScalarType dtype = ScalarType.Float32, bool outputLayer = true) : base(nameof(CausalLM))
    {
        Config = config;
        DType = dtype;
        model = new DecoderModel(config, dtype);
        if (!config.TieWordEmbeddings && outputLayer)
            lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false, dtype: dtype);
        rotary = new RotaryEmbedding(config);
        RegisterComponents();
    }

    public DecoderModel Model => model;

    /// <summary>Recompute decoder layers in backward to cut activation memory (training only).</summary>
    public bool GradientCheckpointing
    {
        get => model.GradientCheckpointing;
        set => model.GradientCheckpointing = value;
    }

    /// <summary>Seeds the dropout masks (the trainer does it every step, so a resumed run draws the same masks).</summary>
    public void SeedDropout(long seed) => model.DropoutGenerator.manual_seed(seed);

    public TorchSharp.torch.Generator DropoutGenerator => model.DropoutGenerator;

    /// <summary>
    /// Sets every dropout probability of the model to 0, as TRL's disable_dropout_in_model sets
    /// p = 0 on every nn.Dropout: the decoder has no dropout of its own (attention_dropout is not
    /// applied), so that is LoRA's dropout. <see cref="Lora"/> keeps its lora_dropout, which the
    /// saved adapter_config.json records (as PEFT's config keeps it).
    /// </summary>
    public void DisableDropout()
    {
        foreach (var (_, projection) in Projections()) projection.Dropout = 0;
    }

    /// <summary>The LoRA adapters' settings when the model carries adapters (see <see cref="LoraAdapters"/>).</summary>
    public LoraConfig? Lora { get; internal set; }

    /// <summary>The decoder's linear layers with their module names (model.layers.N.self_attn.q_proj, ...).</summary>
    public IEnumerable<(string Name, Projection Projection)> Projections() =>
        named_modules().Where(m => m.module is Projection).Select(m => (m.name, (Projection)m.module));

    /// <summary>The parameters of the model itself, leaving out LoRA adapters: what a full checkpoint holds.</summary>
    public IEnumerable<(string name, TorchSharp.Modules.Parameter parameter)> BaseParameters() =>
        named_parameters().Where(p => !IsAdapterParameter(p.name));

    public static bool IsAdapterParameter(string name) =>
        name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    /// <summary>The output projection's weight: lm_head, or the embeddings when tied.</summary>
    public Tensor OutputWeight => lm_head?.weight ?? (Config.TieWordEmbeddings ? model.EmbedTokens.weight!
        : throw new InvalidOperationException("this model was built without its output layer (a sequence classifier's decoder)"));

    /// <summary>
    /// Final hidden states [batch, seq, hidden]. <paramref name="attentionMask"/> is 1 for real
    /// tokens and 0 for padding; <paramref name="positionIds"/> defaults to 0..seq-1 in every row,
    /// as in transformers (pass cumsum(mask)-1 for left-padded rows to score them as if alone).
    /// Rows packed with several documents: position_ids restarting at 0 and no attention mask.
    /// </summary>
    /// <param name="cache">
    /// Optional KV cache: the input is the next chunk of tokens after those already cached; its
    /// keys and values are appended and the queries attend over every cached position (padding
    /// masked, causal within the chunk). With a cache, <paramref name="attentionMask"/> covers the
    /// new tokens only ([batch, seq]; the cache remembers earlier ones), and
    /// <paramref name="positionIds"/> defaults to Length..Length+seq-1 (pass each row's own
    /// continuing positions for left-padded rows).
    /// </param>
    public Tensor ForwardHidden(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        long b = inputIds.shape[0], s = inputIds.shape[1];
        Tensor? mask;
        Tensor positions;
        if (cache is null)
        {
            positions = positionIds ?? arange(s, dtype: ScalarType.Int64).unsqueeze(0).expand(b, s);
            mask = AttentionMask.Build(attentionMask, positionIds, s);
        }
        else
        {
            long past = cache.Length;
            positions = positionIds ?? arange(past, past + s, dtype: ScalarType.Int64).unsqueeze(0).expand(b, s);
            cache.BeginForward(b, s, attentionMask);
            mask = AttentionMask.BuildCached(cache, s, attentionMask is null);
        }
        var (cos, sin) = rotary.CosSin(positions, DType);
        var hidden = model.Forward(inputIds, cos, sin, mask, cache);
        cache?.EndForward(s);
        return hidden.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Whether a forward of this many token rows (with autograd off) runs the weight matrices
    /// through the <see cref="Gemv"/> kernel: a float32 or bfloat16 model and few enough rows.
    /// LoRA adapters add only small products beside them.
    /// </summary>
    public bool DecodesWithGemv(long rows) =>
        (DType == ScalarType.Float32 || DType == ScalarType.BFloat16) && rows >= 1 && rows <= Gemv.RowLimit(DType);

    /// <summary>
    /// Logits for hidden states [..., hidden] -> [..., vocab]; a few rows without autograd
    /// (decoding) take the <see cref="Gemv"/> kernel.
    /// </summary>
    public Tensor Logits(Tensor hidden) => Gemv.LinearOrTorch(hidden, OutputWeight, null);

    /// <summary>Logits [batch, seq, vocab]; see <see cref="ForwardHidden"/> for the arguments.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        return Logits(ForwardHidden(inputIds, attentionMask, positionIds, cache)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Random initialisation as transformers' _init_weights: normal(0, initializer_range) for
    /// linear and embedding weights, zero biases, unit norm weights. Deterministic for a seed.
    /// </summary>
    public void InitializeWeights(long seed)
    {
        using var noGrad = no_grad();
        var generator = new TorchSharp.torch.Generator((ulong)seed);
        foreach (var (name, p) in BaseParameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else p.normal_(0.0, Config.InitializerRange, generator);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) rotary.Dispose();
        base.Dispose(disposing);
    }
}
