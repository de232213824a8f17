using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// The frozen reference of DPO and of GRPO's KL penalty: a separate model, held frozen in
/// evaluation mode, or, for a policy trained with LoRA, the policy itself with its adapters
/// switched off (no second copy of the weights). Either runs without autograd.
/// </summary>
public sealed class ReferenceModel : IDisposable
{
    readonly CausalLM? model;

    /// <summary>Takes ownership of <paramref name="frozen"/>: freezes it and disposes it with this.</summary>
    public ReferenceModel(CausalLM frozen)
    {
        model = frozen;
        foreach (var p in model.parameters()) p.requires_grad = false;
        model.eval();
    }

    ReferenceModel() { }

    /// <summary>The reference is the policy's base: the policy with its LoRA adapters switched off.</summary>
    public static ReferenceModel AdaptersOff() => new();

    /// <summary>Whether this reference is the policy without its adapters (rather than a separate model).</summary>
    public bool IsPolicyBase => model is null;

    /// <summary>Runs <paramref name="score"/> on the reference without autograd.</summary>
    /// <param name="policy">The policy being trained: its base is the reference when this has no model of its own.</param>
    public T Run<T>(CausalLM policy, Func<CausalLM, T> score)
    {
        using var noGrad = no_grad();
        if (model is not null) return score(model);
        if (policy.Lora is null) throw new InvalidOperationException("the reference is the policy without adapters, but the policy has none");
        bool wasTraining = policy.training;
        policy.eval(); // no adapter dropout in the reference: it must be the base exactly
        try
        {
            using var off = LoraAdapters.Disabled(policy);
            return score(policy);
        }
        finally
        {
            if (wasTraining) policy.train();
        }
    }

    public void Dispose() => model?.Dispose();
}
