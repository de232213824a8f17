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
    /// The frozen reference: <paramref name="referenceDir"/> when given; else, for a LoRA
    /// policy, its base with the adapters off (no second copy of the weights; as TRL does for a
    /// PEFT model, also when continuing an adapter); else a second copy of the starting model.
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
        if (policy.Lora is not null) return ReferenceModel.AdaptersOff();
        return new ReferenceModel(HfCheckpoint.Load(options.Model ?? throw new InputError("--model: required"), policy.DType));
    }
}
