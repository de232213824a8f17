using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// The frozen reference of DPO and of GRPO's and RLOO's KL term. One of: a separate model, held
/// frozen in evaluation mode; for a policy trained with fresh LoRA adapters, the policy itself with
/// its adapters switched off; or, for a policy that continues an adapter, the policy with a frozen
/// copy of that adapter as loaded standing in for the trained one (TRL's "ref" adapter). The last
/// two hold no second copy of the base weights. Every kind runs without autograd and without dropout.
/// </summary>
public sealed class ReferenceModel : IDisposable
{
    readonly CausalLM? model;
    readonly Dictionary<string, (Tensor A, Tensor B)>? frozenAdapter;

    /// <summary>Takes ownership of <paramref name="frozen"/>: freezes it and disposes it with this.</summary>
    public ReferenceModel(CausalLM frozen)
    {
        model = frozen;
        foreach (var p in model.parameters()) p.requires_grad = false;
        model.eval();
    }

    ReferenceModel(Dictionary<string, (Tensor A, Tensor B)>? frozenAdapter) => this.frozenAdapter = frozenAdapter;

    /// <summary>The reference is the policy's base: the policy with its LoRA adapters switched off.</summary>
    public static ReferenceModel AdaptersOff() => new(frozenAdapter: null);

    /// <summary>
    /// The reference is the policy's base with the adapter saved in <paramref name="adapterDir"/>:
    /// a frozen copy of its A and B (read from the directory, so a resumed run gets the adapter as
    /// first loaded, not the checkpoint's), used in place of the policy's trained adapter on the same
    /// layers. <paramref name="policy"/> must carry that adapter's layers (it was loaded from it).
    /// </summary>
    public static ReferenceModel FrozenAdapter(CausalLM policy, string adapterDir)
    {
        if (policy.Lora is null) throw new InvalidOperationException("the policy has no adapters to hold a frozen copy of");
        return new(PeftAdapter.ReadCopy(policy, adapterDir));
    }

    /// <summary>Whether this reference is the policy without its adapters (rather than a separate model).</summary>
    public bool IsPolicyBase => model is null && frozenAdapter is null;

    /// <summary>Whether this reference is the policy's base with a frozen copy of the adapter it started from.</summary>
    public bool IsFrozenAdapter => frozenAdapter is not null;

    /// <summary>Runs <paramref name="score"/> on the reference without autograd.</summary>
    /// <param name="policy">The policy being trained: its base (with the frozen adapter copy, if any) is the reference when this has no model of its own.</param>
    public T Run<T>(CausalLM policy, Func<CausalLM, T> score)
    {
        using var noGrad = no_grad();
        if (model is not null) return score(model);
        if (policy.Lora is null) throw new InvalidOperationException("the reference is the policy's base, but the policy has no adapters");
        bool wasTraining = policy.training;
        policy.eval(); // no adapter dropout in the reference: it must be the frozen model exactly
        try
        {
            using var swap = frozenAdapter is null ? LoraAdapters.Disabled(policy) : LoraAdapters.Substituted(policy, frozenAdapter);
            return score(policy);
        }
        finally
        {
            if (wasTraining) policy.train();
        }
    }

    public void Dispose()
    {
        model?.Dispose();
        if (frozenAdapter is not null)
            foreach (var (a, b) in frozenAdapter.Values)
            {
                a.Dispose();
                b.Dispose();
            }
    }
}
