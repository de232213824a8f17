using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// Reward-model training on the shared loop (TRL's RewardTrainer). The model the loop trains is
/// the classifier's decoder; the score head is the method's extra module, trained in full (with
/// LoRA too, as PEFT's modules_to_save). Items are pairs: a micro-batch of B pairs is one
/// right-padded forward of 2B rows (each pair's chosen sequence, then each rejected one, padded
/// with the pad id, as TRL's DataCollatorForPreference), the reward of a row is the head at its
/// last token that is not the pad id (transformers' pooling), and the loss is the sum of the
/// per-pair losses (<see cref="RewardLoss"/>), divided by the loop by the pairs of the whole step.
/// The output (and every checkpoint-STEP) is a ...ForSequenceClassification directory, or with
/// LoRA a SEQ_CLS PEFT adapter whose head is saved beside the adapters.
/// </summary>
public sealed class RewardMethod(RewardOptions options, SequenceClassifier classifier, int padTokenId) : TrainingMethod<RewardPair>
{
    public SequenceClassifier Classifier => classifier;

    public override IReadOnlyList<(string Name, nn.Module Module)> ExtraModules => [(SequenceClassifier.ScoreName, classifier.Score)];

    public override long CountItems(IReadOnlyList<RewardPair> units) => units.Count;

    public override long CountTokens(IReadOnlyList<RewardPair> units) => units.Sum(u => (long)u.Tokens);

    /// <summary>The rewards [2B] of the micro-batch's chosen rows, then its rejected rows (with autograd).</summary>
    public Tensor Rewards(IReadOnlyList<RewardPair> units)
    {
        using var scope = NewDisposeScope();
        var rows = units.Select(u => u.ChosenIds).Concat(units.Select(u => u.RejectedIds)).ToList();
        int width = rows.Max(r => r.Length);
        var flat = new long[rows.Count * width];
        Array.Fill(flat, (long)padTokenId);
        for (int r = 0; r < rows.Count; r++)
            for (int t = 0; t < rows[r].Length; t++)
                flat[r * width + t] = rows[r][t];
        // Right padding: no real token attends to the pads after it, so no attention mask is needed.
        var logits = classifier.Forward(tensor(flat, [rows.Count, width]), null, padTokenId);
        return logits.select(1, 0).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<RewardPair> units)
    {
        if (!ReferenceEquals(model, classifier.Decoder))
            throw new InvalidOperationException("the reward method trains its classifier's decoder");
        int b = units.Count;
        var rewards = Rewards(units);
        var chosen = rewards.narrow(0, 0, b);
        var rejected = rewards.narrow(0, b, b);
        // TRL uses the margin column when the batch has one; a dataset has margins on every record or on none.
        var margins = units.Any(u => u.Margin is not null) ? tensor(units.Select(u => (float)(u.Margin ?? 0)).ToArray()) : null;
        var loss = RewardLoss.PerPair(chosen, rejected, margins, options.CenterRewardsCoefficient).sum();
        return new MicroBatchLoss(loss, RewardLoss.MetricSums(chosen, rejected));
    }

    /// <summary>
    /// A Hugging Face ...ForSequenceClassification directory (config.json with its architecture,
    /// id2label and pad_token_id; model.* and score.weight), or with LoRA a SEQ_CLS adapter
    /// (adapters and base_model.model.score.weight); the tokenizer files either way.
    /// </summary>
    public override void SaveModel(CausalLM model, string dir, string? filesFrom)
    {
        if (model.Lora is null)
        {
            HfCheckpoint.WriteInto(classifier, dir, new SaveOptions { CopyFilesFrom = filesFrom }, padTokenId);
            return;
        }
        PeftAdapter.WriteInto(model, dir, classifier.Score.weight);
        if (filesFrom is not null) HfCheckpoint.CopyTokenizerFiles(filesFrom, dir);
    }

    public override void LoadModel(CausalLM model, string dir)
    {
        if (model.Lora is not null) PeftAdapter.LoadWeights(model, dir, classifier.Score.weight);
        else HfCheckpoint.LoadWeights(classifier, dir);
    }
}
