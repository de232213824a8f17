using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// GRPO and RLOO on the shared loop. Before each data step the method asks the rollout
/// component (<see cref="Rollouts"/>) for the step's <see cref="Rollout"/>: G completions per
/// prompt sampled by the policy (seeded by the step), scored by the rewards, with the policy's
/// sampling-time and the reference's log-probabilities where needed. From that value it computes
/// the advantages (GRPO: group-normalised; RLOO: leave-one-out after the KL penalty) and keeps
/// both for the step's micro-batches and the --num-iterations steps on the same batch. The loss
/// is GRPO's clipped token surrogate (<see cref="GrpoLoss"/>) or RLOO's clipped sequence
/// surrogate (<see cref="RlooLoss"/>), with importance ratios against the sampling-time
/// log-probabilities. Log-probabilities are those of the temperature-scaled logits, as TRL computes them.
/// </summary>
public sealed class GrpoMethod : TrainingMethod<PromptUnit>
{
    readonly GrpoOptions options;
    readonly RewardSet rewards;
    readonly Rollouts sampler;
    readonly string? completionsLog;
    Prepared? current;

    /// <summary>
    /// The rollout of a data step and what the method derived from it (advantages per completion,
    /// the step's rollout statistics), kept for the step's micro-batches and the following
    /// --num-iterations − 1 steps on the same completions.
    /// </summary>
    sealed record Prepared(int DataStep, Rollout Rollout, double[] Advantages, IReadOnlyDictionary<string, double> Metrics);

    /// <param name="decode">Token ids to text (the tokenizer's decode, special tokens skipped) for the rewards.</param>
    /// <param name="eosTokenIds">End-of-sequence ids: a completion ends at one (else it is truncated).</param>
    /// <param name="completionsLog">OUTPUT/completions.jsonl, or null not to log.</param>
    /// <param name="completions">Where completions come from (null: the policy samples them; a remote server with --rollout-server).</param>
    public GrpoMethod(GrpoOptions options, RewardSet rewards, ReferenceModel? reference, Func<IReadOnlyList<int>, string>? decode,
        IReadOnlyList<int> eosTokenIds, string? completionsLog, ICompletionSampler? completions = null)
    {
        this.options = options;
        this.rewards = rewards;
        var kept = options.EffectiveBeta > 0 ? reference ?? throw new ArgumentException("beta > 0 needs a reference model") : null;
        sampler = new Rollouts(rewards, decode, eosTokenIds, kept, completions);
        this.completionsLog = completionsLog;
    }

    public override int StepsPerBatch => options.NumIterations;

    bool Rloo => options.Algorithm == OnlineAlgorithm.Rloo;

    /// <summary>The rollout the current step trains on (null before the first <see cref="PrepareStep"/>).</summary>
    public Rollout? StepRollout => current?.Rollout;

    /// <summary>Seconds the last <see cref="PrepareStep"/> spent generating (the rest scored: rewards and log-probabilities).</summary>
    public double LastSamplingSeconds => current?.Rollout.SamplingSeconds ?? 0;

    /// <summary>The prepared step and the part of its rollout that <paramref name="units"/> are; an error when they were not prepared.</summary>
    (Prepared Step, RolloutPart Part) Get(IReadOnlyList<PromptUnit> units)
    {
        if (current is null)
            throw new InvalidOperationException("no completions were sampled yet: PrepareStep must run with the step's micro-batches before CountItems, CountTokens or Loss");
        var part = current.Rollout.PartOf(units) ?? throw new InvalidOperationException(
            $"prompts [{string.Join(",", units.Select(u => u.Index))}] are not a micro-batch that PrepareStep sampled for the current step (data step {current.DataStep})");
        return (current, part);
    }

    public override long CountItems(IReadOnlyList<PromptUnit> units)
    {
        var (step, part) = Get(units);
        // RLOO: the mean over completions (TRL's per_sequence_loss.mean()), a completion left out of the loss included.
        return Rloo ? part.Completions
            : GrpoLoss.Items(options.EffectiveLossType, part.Completions, step.Rollout.LossTokens(part), options.MaxCompletionLength);
    }

    public override long CountTokens(IReadOnlyList<PromptUnit> units)
    {
        var (step, part) = Get(units);
        var r = step.Rollout;
        return Rollout.Completions(part).Sum(i => (long)r.PromptIds[i].Count + r.CompletionIds[i].Count);
    }

    public override void PrepareStep(CausalLM model, int step, IReadOnlyList<IReadOnlyList<PromptUnit>> microBatches)
    {
        int dataStep = step / options.NumIterations;
        if (current is not null && current.DataStep == dataStep && microBatches.All(b => current.Rollout.PartOf(b) is not null))
            return; // the next iteration on the same completions
        current = null;
        int g = options.EffectiveNumGenerations;
        double beta = options.EffectiveBeta;
        var rollout = sampler.Sample(model, microBatches, new RolloutSettings
        {
            Generations = g, MaxCompletionLength = options.MaxCompletionLength, Temperature = options.Temperature, TopP = options.TopP, TopK = options.TopK,
            Seed = options.Seed * 1_000_003 + dataStep, BatchSize = Math.Max(g, microBatches.Sum(b => b.Count) * g),
            MaskTruncated = options.MaskTruncatedCompletions,
            // Sampling-time log-probabilities: the ratio's denominator after the first iteration, and RLOO's KL.
            SamplingLogProbs = options.NumIterations > 1 || (Rloo && beta > 0),
            ReferenceLogProbs = beta > 0,
            PolicyStep = step, ImportanceSampling = options.ImportanceSampling,
        }, Log, $"step {step + 1}");
        var (advantages, groupStd, extra) = Rloo ? RlooAdvantages(rollout) : GrpoAdvantages(rollout);
        var metrics = GrpoLoss.RolloutMetrics(rewards.Names, rollout.Rewards, groupStd,
            rollout.CompletionIds.Select(c => c.Count).ToList(), rollout.Truncated);
        foreach (var (k, v) in extra) metrics[k] = v;
        foreach (var (k, v) in rollout.SamplerMetrics) metrics[k] = v;
        current = new Prepared(dataStep, rollout, advantages, metrics);
        if (completionsLog is not null && options.LogCompletionsSteps > 0 && step % options.LogCompletionsSteps == 0)
            rollout.AppendCompletions(completionsLog, step, rewards.Names, advantages);
    }

    /// <summary>
    /// GRPO (TRL's GRPOTrainer): the step's advantages, and per group the std TRL compares with 0
    /// for frac_reward_zero_std (the group's, or with batch scaling the batch's).
    /// </summary>
    (double[] Advantages, double[] GroupStd, Dictionary<string, double> Extra) GrpoAdvantages(Rollout rollout)
    {
        var (advantages, groupStd) = GrpoLoss.GroupAdvantages(rollout.Rewards.Total, rollout.Generations, options.EffectiveScaleRewards);
        return (advantages, groupStd, new());
    }

    /// <summary>
    /// RLOO (TRL's RLOOTrainer): with beta &gt; 0 the completion's KL to the reference (summed
    /// log-ratio at sampling time) is taken from its reward, then leave-one-out advantages over the
    /// step (normalised with --normalize-advantages); frac_reward_zero_std checks the std of each
    /// group's rewards after the KL penalty, and kl is the mean per-token log-ratio of the step.
    /// </summary>
    (double[] Advantages, double[] GroupStd, Dictionary<string, double> Extra) RlooAdvantages(Rollout rollout)
    {
        double beta = options.EffectiveBeta;
        var shaped = rollout.Rewards.Total;
        var extra = new Dictionary<string, double>();
        if (beta > 0)
        {
            var (sequenceKl, meanKl) = RlooLoss.Kl(rollout.SamplingLogps!, rollout.ReferenceLogps!);
            shaped = RlooLoss.ShapedRewards(shaped, sequenceKl, beta);
            extra["kl"] = meanKl;
        }
        var advantages = RlooLoss.Advantages(shaped, rollout.Generations, options.NormalizeAdvantages);
        return (advantages, GrpoLoss.GroupAdvantages(shaped, rollout.Generations, ScaleRewards.None).Std, extra);
    }

    /// <summary>
    /// Held-out prompts (--eval-data) sampled at --eval-temperature (0: greedy),
    /// --eval-num-generations each, and scored with the run's rewards (the same rollout component):
    /// TRL's rollout statistics (<see cref="GrpoLoss.RolloutMetrics"/>) prefixed eval_: eval_reward,
    /// eval_reward_std, eval_rewards/NAME/mean and /std, eval_frac_reward_zero_std (each prompt's
    /// group; 1 with one completion per prompt, as TRL), eval_completions/*.
    /// </summary>
    public Dictionary<string, double> EvaluatePrompts(CausalLM model, IReadOnlyList<PromptUnit> units) =>
        sampler.Evaluate(model, units, options, Rloo ? ScaleRewards.None : options.EffectiveScaleRewards, Log);

    /// <summary>
    /// Log-probabilities of the scored tokens under logits / temperature, as TRL computes them,
    /// and, when asked, their entropies (no gradient) from the same logits.
    /// </summary>
    (Tensor Logps, float[] Entropy) Score(CausalLM model, TokenRows rows, bool entropy = false)
    {
        var scores = TokenLogProbs.Score(model, rows, new TokenScoring { Temperature = options.Temperature, Statistics = entropy });
        return (scores.Logps, scores.Entropy);
    }

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<PromptUnit> units)
    {
        var (step, part) = Get(units);
        var r = step.Rollout;
        var rows = r.Rows(part);
        long items = CountItems(units);
        var advantages = step.Advantages.Skip(part.FirstCompletion).Take(part.Completions).Select(a => (float)a).ToArray();
        var metrics = Rloo ? RlooSequenceLoss(model, r, part, rows, advantages, out var loss) : GrpoTokenLoss(model, r, part, rows, advantages, out loss);
        // The loop divides metric sums by the step's items: weight each micro-batch mean by its items.
        return new MicroBatchLoss(loss, metrics.ToDictionary(kv => kv.Key, kv => kv.Value * items));
    }

    /// <summary>GRPO: the clipped token surrogate (+ β k3 KL), normalised as --loss-type; TRL's token-level clip statistics.</summary>
    Dictionary<string, double> GrpoTokenLoss(CausalLM model, Rollout r, RolloutPart part, TokenRows rows, float[] sequenceAdvantages, out Tensor loss)
    {
        var metrics = new Dictionary<string, double>();
        if (rows.Tokens == 0)
        {
            loss = Score(model, rows).Logps.sum();
            return metrics;
        }
        var (logps, entropy) = Score(model, rows, entropy: true);
        var sequenceOfToken = rows.RowIndex;
        var old = r.SamplingLogps is null ? logps.detach() : tensor(r.TokenValues(r.SamplingLogps, part));
        var refLogps = r.ReferenceLogps is null ? null : tensor(r.TokenValues(r.ReferenceLogps, part));
        var advantages = tensor(sequenceAdvantages)[sequenceOfToken];
        var weights = r.ImportanceWeights is null ? null : tensor(r.TokenValues(r.ImportanceWeights, part));
        var terms = GrpoLoss.TokenLoss(logps, old, refLogps, advantages, options.Epsilon, options.EffectiveEpsilonHigh, options.EffectiveBeta, weights);
        loss = GrpoLoss.LossSum(terms.Loss, sequenceOfToken, part.Completions, options.EffectiveLossType);
        using (no_grad())
        {
            double Mean(Tensor t) => t.to(ScalarType.Float64).mean().item<double>();
            metrics["clip_ratio/low_mean"] = Mean(terms.LowClipped);
            metrics["clip_ratio/high_mean"] = Mean(terms.HighClipped);
            metrics["clip_ratio/region_mean"] = Mean(terms.LowClipped.logical_or(terms.HighClipped).to(ScalarType.Float32));
            // TRL: the smallest (largest) share of a completion's tokens clipped low (high), over the completions with tokens.
            var perSequence = GrpoLoss.SequenceMeans(stack([terms.LowClipped, terms.HighClipped], 1), sequenceOfToken, part.Completions);
            metrics["clip_ratio/low_min"] = perSequence.Min(x => x[0]);
            metrics["clip_ratio/high_max"] = perSequence.Max(x => x[1]);
            metrics["entropy"] = entropy.Average(e => (double)e);
            if (terms.Kl is not null) metrics["kl"] = Mean(terms.Kl);
        }
        return metrics;
    }

    /// <summary>
    /// RLOO (TRL's RLOOTrainer._compute_loss): each completion's log-probability (summed over its
    /// tokens) against its sampling-time one, one clipped ratio per completion, the per-completion
    /// losses summed (the loop divides by the step's completions); TRL's clip statistics over
    /// completions and the mean entropy of the micro-batch's tokens (0 when it has none, as TRL).
    /// </summary>
    Dictionary<string, double> RlooSequenceLoss(CausalLM model, Rollout r, RolloutPart part, TokenRows rows, float[] sequenceAdvantages, out Tensor loss)
    {
        var (logps, entropy) = Score(model, rows, entropy: true);
        var sequenceOfToken = rows.RowIndex;
        var sequenceLogps = RlooLoss.SequenceSums(logps, sequenceOfToken, part.Completions);
        // With one iteration and no KL the ratio is 1 (TRL computes the same numbers in a second pass).
        var old = r.SamplingLogps is null ? sequenceLogps.detach()
            : RlooLoss.SequenceSums(tensor(r.TokenValues(r.SamplingLogps, part)), sequenceOfToken, part.Completions);
        var terms = RlooLoss.SequenceLoss(sequenceLogps, old, tensor(sequenceAdvantages), options.Epsilon, options.EffectiveEpsilonHigh);
        // Remote rollouts' correction: one weight per completion (sequence modes; 1 for a completion without tokens in the loss).
        loss = r.ImportanceWeights is { } w
            ? (terms.Loss * tensor(Rollout.Completions(part).Select(i => w[i] is { Length: > 0 } t ? t[0] : 1f).ToArray())).sum()
            : terms.Loss.sum();
        var metrics = RlooLoss.ClipMetrics(terms);
        metrics["entropy"] = entropy.Length == 0 ? 0 : entropy.Average(e => (double)e);
        return metrics;
    }

    /// <summary>
    /// The statistics of the completions sampled for this step (<see cref="GrpoLoss.RolloutMetrics"/>,
    /// and RLOO's kl), as TRL logs them once per generation batch; each of the --num-iterations
    /// steps on that batch reports them.
    /// </summary>
    public override IReadOnlyDictionary<string, double> StepMetrics(int step) => current?.Metrics ?? new Dictionary<string, double>();
}
