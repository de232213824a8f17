using PostTrain.Checkpoints;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Training;

/// <summary>
/// What a micro-batch contributes to a step: the loss summed over its items (trained tokens
/// for SFT, pairs for DPO, ...) and metric values summed likewise. The loop divides both by the
/// item count of the whole step, across all gradient-accumulation micro-batches.
/// </summary>
public sealed record MicroBatchLoss(Tensor LossSum, IReadOnlyDictionary<string, double> MetricSums);

/// <summary>
/// A post-training method as the shared loop sees it: how many items and tokens a group of
/// units holds, and the summed loss of one micro-batch. Units are whatever the method batches
/// (tokenized sequences, packed rows, preference pairs). A method may own trainable modules
/// beside the model (<see cref="ExtraModules"/>) and write its own output
/// (<see cref="SaveModel"/>, <see cref="LoadModel"/>).
/// </summary>
public abstract class TrainingMethod<TUnit>
{
    /// <summary>
    /// Trainable modules the method owns beside the model, by a name unique among them and the
    /// model's top-level names (a reward model's score head; PPO's value model). The loop trains
    /// their parameters that require gradients with the model's: AdamW (parameter NAME.PARAM,
    /// weight decay by the model's rule), the global gradient norm clipped over all of them,
    /// train/eval mode with the model's; and checkpoint-STEP holds their weights (in
    /// <c>extra_modules.safetensors</c>) and optimizer state, which --resume restores. Their place
    /// in the final output is the method's (<see cref="SaveModel"/>).
    /// </summary>
    public virtual IReadOnlyList<(string Name, nn.Module Module)> ExtraModules => [];

    /// <summary>
    /// Writes the trained model into <paramref name="dir"/>, an existing directory: each
    /// checkpoint-STEP and the final output. By default the model in Hugging Face layout, or with
    /// LoRA only its adapter in PEFT's (as TRL saves a PEFT model), with the tokenizer files of
    /// <paramref name="filesFrom"/> either way.
    /// </summary>
    public virtual void SaveModel(CausalLM model, string dir, string? filesFrom)
    {
        if (model.Lora is null)
        {
            HfCheckpoint.WriteInto(model, dir, new SaveOptions { CopyFilesFrom = filesFrom });
            return;
        }
        PeftAdapter.WriteInto(model, dir);
        if (filesFrom is not null) HfCheckpoint.CopyTokenizerFiles(filesFrom, dir);
    }

    /// <summary>Loads what <see cref="SaveModel"/> wrote into a checkpoint (resume): the model's weights, or its adapters'.</summary>
    public virtual void LoadModel(CausalLM model, string dir)
    {
        if (model.Lora is not null) PeftAdapter.LoadWeights(model, dir);
        else HfCheckpoint.LoadWeights(model, dir);
    }

    /// <summary>The loss normaliser's share of these units (e.g. trained tokens).</summary>
    public abstract long CountItems(IReadOnlyList<TUnit> units);

    /// <summary>Tokens processed, for throughput.</summary>
    public abstract long CountTokens(IReadOnlyList<TUnit> units);

    /// <summary>
    /// Optimiser steps taken on each data batch before the next (online RL's num_iterations);
    /// 1 for methods that train on fixed data.
    /// </summary>
    public virtual int StepsPerBatch => 1;

    /// <summary>
    /// Called before each optimiser step with the step's micro-batches, before
    /// <see cref="CountItems"/> and <see cref="Loss"/> see them: online methods sample and score
    /// their completions here. Fixed-data methods need nothing.
    /// </summary>
    public virtual void PrepareStep(CausalLM model, int step, IReadOnlyList<IReadOnlyList<TUnit>> microBatches) { }

    /// <summary>Summed loss of a micro-batch, with autograd; runs inside the loop's dispose scope.</summary>
    public abstract MicroBatchLoss Loss(CausalLM model, IReadOnlyList<TUnit> units);

    /// <summary>
    /// Metrics of the step as a whole, called after its micro-batches: values logged as they are
    /// (not divided by items), e.g. online RL's statistics of the rewards and completions sampled
    /// for the step, which TRL computes over the whole generation batch. NaN where a value is
    /// undefined: the log leaves it out of the average over logged steps, as TRL does.
    /// </summary>
    public virtual IReadOnlyDictionary<string, double> StepMetrics(int step) => NoMetrics;

    static readonly Dictionary<string, double> NoMetrics = new();

    /// <summary>Where the method reports warnings during training (the loop's console once training starts).</summary>
    public TextWriter Log { get; set; } = TextWriter.Null;
}
