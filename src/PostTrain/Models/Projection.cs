using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PostTrain.Models;

/// <summary>
/// A linear layer of the decoder (q/k/v/o_proj, gate/up/down_proj): y = x W^T + b, with the
/// parameter names of nn.Linear (weight, bias), so checkpoints load unchanged. It may carry a
/// LoRA adapter as PEFT's lora.Linear does: y = base(x) + scaling * lora_B(lora_A(dropout(x))),
/// with lora_A [r, in] and lora_B [out, r] (parameter names lora_A.weight and lora_B.weight).
/// The adapter is computed in its own dtype (float32 over a bfloat16 base) and the sum is cast
/// back to the base's dtype. A frozen reference may stand in for the trained A and B for a while
/// (<see cref="LoraAdapters.Substituted"/>): PEFT's second, inactive "ref" adapter on the same layer.
/// </summary>
public sealed class Projection : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly Parameter? bias;
    Linear? lora_A, lora_B;
    double scaling, dropout;
    Generator? dropoutGenerator;

    public Projection(long inFeatures, long outFeatures, bool hasBias, ScalarType dtype) : base(nameof(Projection))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(zeros(outFeatures, inFeatures, dtype: dtype));
        if (hasBias) bias = new Parameter(zeros(outFeatures, dtype: dtype));
        RegisterComponents();
    }

    public long InFeatures { get; }
    public long OutFeatures { get; }
    public Parameter Weight => weight;
    public Parameter? Bias => bias;

    /// <summary>The adapter's A [r, in] and B [out, r], or null without one.</summary>
    public (Parameter A, Parameter B)? Adapter => lora_A is null ? null : (lora_A.weight!, lora_B!.weight!);
    public double Scaling => scaling;

    /// <summary>When false the adapter is skipped: the layer computes the base alone.</summary>
    public bool AdapterEnabled { get; set; } = true;

    /// <summary>
    /// The probability with which the adapter's input is zeroed in training mode (PEFT's
    /// lora_dropout module); 0 after <see cref="CausalLM.DisableDropout"/>.
    /// </summary>
    public double Dropout
    {
        get => dropout;
        set => dropout = value is >= 0 and < 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "dropout must be in [0, 1)");
    }

    /// <summary>
    /// When set, the adapter computes with these A [r, in] and B [out, r] (same shapes and dtype
    /// as its own, not trained, owned by whoever set them) instead of its parameters.
    /// </summary>
    internal (Tensor A, Tensor B)? Substitute { get; set; }

    /// <summary>
    /// Adds a LoRA adapter as PEFT initialises one: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming
    /// uniform with a = sqrt(5), nn.Linear's default), B = 0, so the output starts equal to the base's.
    /// </summary>
    /// <param name="dropoutGenerator">Draws the dropout masks (the model's own generator, so runs are reproducible).</param>
    public void AddAdapter(int r, double scaling, double dropout, ScalarType dtype, Generator generator, Generator dropoutGenerator)
    {
        if (lora_A is not null) throw new InvalidOperationException("this layer already has an adapter");
        lora_A = nn.Linear(InFeatures, r, hasBias: false, dtype: dtype);
        lora_B = nn.Linear(r, OutFeatures, hasBias: false, dtype: dtype);
        using (no_grad())
        {
            double bound = 1.0 / Math.Sqrt(InFeatures);
            lora_A.weight!.uniform_(-bound, bound, generator);
            lora_B.weight!.zero_();
        }
        this.scaling = scaling;
        this.dropout = dropout;
        this.dropoutGenerator = dropoutGenerator;
        register_module("lora_A", lora_A);
        register_module("lora_B", lora_B);
    }

    /// <summary>Folds the adapter into the weight (W += scaling * B A) and removes it.</summary>
    public void MergeAdapter()
    {
        if (lora_A is null) return;
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var delta = matmul(lora_B!.weight!.to(ScalarType.Float32), lora_A.weight!.to(ScalarType.Float32)) * scaling;
            weight.copy_(weight.to(ScalarType.Float32) + delta);
        }
        RemoveAdapter();
    }

    public void RemoveAdapter()
    {
        if (lora_A is null) return;
        _internal_submodules.Remove("lora_A");
        _internal_submodules.Remove("lora_B");
        lora_A.Dispose();
        lora_B!.Dispose();
        lora_A = lora_B = null;
    }

    /// <summary>
    /// Adapters that apply to some rows of the batch only (serving several LoRA adapters in one
    /// batch): each adds scaling * B A x to the rows it names (all rows when null). Set by the
    /// serving engine for one forward at a time; not trained, owned by whoever set them.
    /// </summary>
    internal IReadOnlyList<RowAdapter>? RowAdapters { get; set; }

    public override Tensor forward(Tensor x)
    {
        var y = Gemv.LinearOrTorch(x, weight, bias);
        if (RowAdapters is { Count: > 0 } groups) return AddRowAdapters(x, y, groups);
        if (lora_A is null || !AdapterEnabled) return y;
        using var scope = NewDisposeScope();
        var (a, b) = Substitute ?? (lora_A.weight!, lora_B!.weight!);
        var input = x.dtype == a.dtype ? x : x.to(a.dtype);
        if (dropout > 0 && training) // inverted dropout, as nn.Dropout, with masks from the model's generator
            input = input * empty_like(input).bernoulli_(1 - dropout, dropoutGenerator) / (1 - dropout);
        var update = nn.functional.linear(nn.functional.linear(input, a), b) * scaling;
        var sum = y.dtype == update.dtype ? y + update : (y.to(update.dtype) + update).to(y.dtype);
        return sum.MoveToOuterDisposeScope();
    }

    // The sum is formed in the adapters' dtype and cast back, as for the layer's own adapter.
    static Tensor AddRowAdapters(Tensor x, Tensor y, IReadOnlyList<RowAdapter> groups)
    {
        using var scope = NewDisposeScope();
        var dtype = groups[0].A.dtype;
        var sum = y.dtype == dtype ? y.clone() : y.to(dtype);
        foreach (var g in groups)
        {
            var input = g.Rows is null ? x : x.index_select(0, g.Rows);
            if (input.dtype != dtype) input = input.to(dtype);
            var update = nn.functional.linear(nn.functional.linear(input, g.A), g.B) * g.Scaling;
            if (g.Rows is null) sum.add_(update);
            else sum.index_add_(0, g.Rows, update, 1);
        }
        return (sum.dtype == y.dtype ? sum : sum.to(y.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>A LoRA adapter applied to some rows of a batch (<see cref="Projection.RowAdapters"/>).</summary>
/// <param name="Rows">The batch rows (int64 indices) it applies to; null: every row.</param>
/// <param name="A">lora_A [r, in].</param>
/// <param name="B">lora_B [out, r].</param>
/// <param name="Scaling">alpha / r (or alpha / sqrt(r) with rsLoRA).</param>
internal sealed record RowAdapter(Tensor? Rows, Tensor A, Tensor B, double Scaling);
