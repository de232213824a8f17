using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// The frozen reference of DPO and of GRPO's KL penalty: a separate model, held frozen in
/// evaluation mode and run without autograd.
/// </summary>
public sealed class ReferenceModel : IDisposable
{
    readonly CausalLM model;

    /// <summary>Takes ownership of <paramref name="frozen"/>: freezes it and disposes it with this.</summary>
    public ReferenceModel(CausalLM frozen)
    {
        model = frozen;
        foreach (var p in model.parameters()) p.requires_grad = false;
        model.eval();
    }

    /// <summary>Runs <paramref name="score"/> on the reference without autograd.</summary>
    /// <param name="policy">The policy being trained (unused by a separate reference).</param>
    public T Run<T>(CausalLM policy, Func<CausalLM, T> score)
    {
        using var noGrad = no_grad();
        return score(model);
    }

    public void Dispose() => model.Dispose();
}
