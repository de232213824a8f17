using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>The model a trainer optimises, and its frozen reference, as the options ask.</summary>
public static class PolicyModel
{
    /// <summary>
    /// Loads --model; with --lora adds fresh adapters (seeded by --seed) and freezes the base,
    /// held in --base-dtype; with --adapter continues that adapter's training.
    /// </summary>
    public static CausalLM Load(TrainingOptions options)
    {
        var dir = options.Model ?? throw new InputError("--model: required");
        var model = HfCheckpoint.Load(dir, options.BaseDtype == BaseDtype.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32);
        try
        {
            if (options.Adapter is not null)
            {
                var config = PeftAdapter.Load(model, options.Adapter, options.Seed);
                model.Lora = config with { BaseModel = Path.GetFullPath(dir) };
            }
            else if (options.Lora)
            {
                LoraAdapters.Attach(model, options.LoraConfig(), options.Seed);
            }
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The frozen reference, as TRL's DPOTrainer, GRPOTrainer and RLOOTrainer choose it:
    /// <paramref name="referenceDir"/> when given; else, for a policy continuing an adapter
    /// (--adapter), its base with a frozen copy of that adapter as loaded (TRL's "ref" adapter);
    /// else, for fresh adapters (--lora), its base with the adapters off (the policy's starting
    /// point too, since B starts at 0); neither holds a second copy of the base weights; else a
    /// second copy of the starting model. The adapter copy is read from --adapter, not taken from
    /// the policy, so a resumed run's reference is the adapter as first loaded, not the checkpoint's.
    /// </summary>
    public static ReferenceModel Reference(TrainingOptions options, CausalLM policy, string? referenceDir)
    {
        if (referenceDir is not null)
        {
            var frozen = HfCheckpoint.Load(referenceDir, policy.DType);
            if (frozen.Config.VocabSize != policy.Config.VocabSize)
            {
                frozen.Dispose();
                throw new InputError($"--ref-model: {referenceDir} has a vocabulary of {frozen.Config.VocabSize} tokens, the policy {policy.Config.VocabSize}");
            }
            return new ReferenceModel(frozen);
        }
        if (policy.Lora is not null)
            return options.Adapter is null ? ReferenceModel.AdaptersOff() : ReferenceModel.FrozenAdapter(policy, options.Adapter);
        return new ReferenceModel(HfCheckpoint.Load(options.Model ?? throw new InputError("--model: required"), policy.DType));
    }
}
