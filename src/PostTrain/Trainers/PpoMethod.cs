using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// PPO with a value model, as TRL's PPOTrainer defines it, on the shared loop. Each data batch of
/// prompts is one rollout (one completion per prompt, sampled by <see cref="Rollouts"/> with the
/// policy's and the reference's log-probabilities); the value model scores every completion token,
/// the score (rewards, minus --missing-eos-penalty without an end-of-sequence token) and the
/// per-token KL penalty become per-token rewards, GAE gives advantages (whitened over the batch) and
/// returns. Then --num-ppo-epochs passes, each over --num-mini-batches seeded shuffled mini-batches,
/// one optimiser step each, train the policy (clipped ratio against the sampling log-probabilities)
/// and the value model (clipped value loss, weighted by --vf-coef) together: the value model is an
/// extra module of the loop, so clipping, checkpoints and exact resume include it. Losses are means
/// over the mini-batch's completion tokens (TRL: the mean of its micro-batches' token means).
/// </summary>
public sealed class PpoMethod : TrainingMethod<PromptUnit>
{
    readonly PpoOptions options;
    readonly Rollouts rollouts;
    readonly SequenceClassifier value;
    readonly string? completionsLog;
    readonly int? padTokenId;
    Batch? batch;
    HashSet<int> miniBatch = [];

    /// <param name="value">The value model (trained with the policy; owned by the caller).</param>
    /// <param name="padTokenId">Written to the saved value model's config.json (how transformers pools it).</param>
    public PpoMethod(PpoOptions options, Rollouts rollouts, SequenceClassifier value, int? padTokenId, string? completionsLog = null)
    {
        this.padTokenId = padTokenId;
        this.options = options;
        this.rollouts = rollouts;
        this.value = value;
        this.completionsLog = completionsLog;
    }

    public override IReadOnlyList<(string Name, nn.Module Module)> ExtraModules =>
        [("value_model", value.Decoder), ("value_head", value.Score)];

    public override int StepsPerBatch => options.NumPpoEpochs * options.NumMiniBatches;

    /// <summary>One rollout and what PPO derived from it, per completion (padded [completions, tokens] on the host).</summary>
    sealed class Batch
    {
        public required int DataStep;
        public required Rollout Rollout;
        public required float[][] OldLogps, OldValues, Advantages, Returns;
        /// <summary>Remote rollouts' importance-sampling weights per token (null: no correction).</summary>
        public float[][]? ImportanceWeights;
        public required bool[] InLoss;
        public required Dictionary<string, double> Metrics;
        public required double ValueSeconds;
    }

    /// <summary>The rollout the current step trains on (null before the first <see cref="PrepareStep"/>).</summary>
    public Rollout? StepRollout => batch?.Rollout;

    /// <summary>Seconds the last rollout's value model spent scoring its completions (no gradient), for the benchmarks.</summary>
    public double LastValueSeconds => batch?.ValueSeconds ?? 0;

    public override long CountItems(IReadOnlyList<PromptUnit> units) => Selected(units).Sum(i => (long)batch!.Rollout.CompletionIds[i].Count);

    public override long CountTokens(IReadOnlyList<PromptUnit> units) =>
        Selected(units).Sum(i => (long)batch!.Rollout.PromptIds[i].Count + batch.Rollout.CompletionIds[i].Count);

    /// <summary>The completions of these units that this step's mini-batch trains on.</summary>
    IEnumerable<int> Selected(IReadOnlyList<PromptUnit> units)
    {
        var part = Part(units);
        return Enumerable.Range(part.FirstCompletion, part.Completions).Where(i => miniBatch.Contains(i) && batch!.InLoss[i]);
    }

    RolloutPart Part(IReadOnlyList<PromptUnit> units) =>
        (batch ?? throw new InvalidOperationException("PPO's Loss before PrepareStep")).Rollout.PartOf(units)
        ?? throw new InvalidOperationException("PPO's Loss for units that are not a micro-batch of the prepared step");

    public override void PrepareStep(CausalLM model, int step, IReadOnlyList<IReadOnlyList<PromptUnit>> microBatches)
    {
        int dataStep = step / StepsPerBatch, iteration = step % StepsPerBatch;
        if (batch is null || batch.DataStep != dataStep) batch = Roll(model, dataStep, step, microBatches);
        int epoch = iteration / options.NumMiniBatches, mini = iteration % options.NumMiniBatches;
        // A fresh seeded permutation of the batch per PPO epoch, cut into --num-mini-batches slices.
        int n = batch.Rollout.Count;
        var order = Enumerable.Range(0, n).ToArray();
        new Random(unchecked((int)(options.Seed * 7919 + dataStep * 104729 + epoch))).Shuffle(order);
        int size = (n + options.NumMiniBatches - 1) / options.NumMiniBatches;
        miniBatch = order.Skip(mini * size).Take(size).ToHashSet();
    }

    public override IReadOnlyDictionary<string, double> StepMetrics(int step) => batch?.Metrics ?? new Dictionary<string, double>();

    Batch Roll(CausalLM model, int dataStep, int step, IReadOnlyList<IReadOnlyList<PromptUnit>> microBatches)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var rollout = rollouts.Sample(model, microBatches, new RolloutSettings
        {
            Generations = 1, MaxCompletionLength = options.MaxCompletionLength, Temperature = options.Temperature,
            TopP = options.TopP, TopK = options.TopK, Seed = options.Seed * 1_000_003 + dataStep,
            BatchSize = Math.Max(1, options.BatchSize * options.GradientAccumulationSteps), SamplingLogProbs = true, ReferenceLogProbs = options.KlCoef > 0,
            PolicyStep = step, ImportanceSampling = options.ImportanceSampling,
        }, Log, $"step {step + 1}");
        int n = rollout.Count;
        var oldValues = new float[n][];
        var valueClock = System.Diagnostics.Stopwatch.StartNew();
        using (no_grad())
        {
            bool wasTraining = value.Decoder.training;
            value.Decoder.eval();
            try
            {
                foreach (var part in rollout.Parts)
                {
                    using var scope = NewDisposeScope();
                    var rows = rollout.Rows(part);
                    var flat = rows.Tokens == 0 ? [] : Values(rows).data<float>().ToArray();
                    int t = 0;
                    foreach (int i in Rollout.Completions(part).Where(i => rollout.InLoss[i]))
                    {
                        oldValues[i] = flat.AsSpan(t, rollout.CompletionIds[i].Count).ToArray();
                        t += rollout.CompletionIds[i].Count;
                    }
                }
            }
            finally
            {
                if (wasTraining) value.Decoder.train();
            }
        }
        double valueSeconds = valueClock.Elapsed.TotalSeconds;
        // Scores: the rewards' total; no end-of-sequence token costs --missing-eos-penalty; a completion no reward scores is left out.
        var scores = new double[n];
        var inLoss = new bool[n];
        for (int i = 0; i < n; i++)
        {
            double s = rollout.Rewards.Total[i];
            inLoss[i] = rollout.InLoss[i] && !double.IsNaN(s);
            scores[i] = double.IsNaN(s) ? 0 : s - (rollout.Truncated[i] && options.MissingEosPenalty is { } p ? p : 0);
        }
        using var outer = NewDisposeScope();
        int width = Math.Max(1, rollout.CompletionIds.Max(c => c.Count));
        Tensor Padded(Func<int, IReadOnlyList<float>?> row)
        {
            var data = new double[n * width];
            for (int i = 0; i < n; i++)
                if (inLoss[i] && row(i) is { } r)
                    for (int t = 0; t < r.Count; t++) data[i * width + t] = r[t];
            return tensor(data, [n, width]);
        }
        var mask = Padded(i => Enumerable.Repeat(1f, rollout.CompletionIds[i].Count).ToArray());
        var logps = Padded(i => rollout.SamplingLogps![i]);
        var refLogps = rollout.ReferenceLogps is null ? logps : Padded(i => rollout.ReferenceLogps[i]); // no reference: KL 0
        var values = Padded(i => oldValues[i]);
        var kl = PpoLoss.Kl(logps, refLogps, mask, options.KlEstimator);
        var (rewards, nonScore) = PpoLoss.TokenRewards(kl, mask, tensor(scores), options.KlCoef);
        if (options.WhitenRewards) rewards = PpoLoss.MaskedWhiten(rewards, mask, shiftMean: false) * mask;
        var (advantages, returns) = PpoLoss.Gae(rewards, values, mask, options.Gamma, options.Lam);
        advantages = PpoLoss.MaskedWhiten(advantages, mask) * mask;

        float[][] Rows(Tensor t)
        {
            var flat = t.to(ScalarType.Float32).data<float>().ToArray();
            return Enumerable.Range(0, n).Select(i => flat.AsSpan(i * width, inLoss[i] ? rollout.CompletionIds[i].Count : 0).ToArray()).ToArray();
        }
        var valid = inLoss.Count(v => v);
        var rowValid = tensor(inLoss.Select(v => v ? 1.0 : 0.0).ToArray());
        double RowMean(Tensor perRow) => valid == 0 ? double.NaN : (perRow * rowValid).sum().item<double>() / valid;
        double meanScore = RowMean(tensor(scores));
        double meanNonScore = RowMean(nonScore.sum(1));
        var metrics = new Dictionary<string, double>
        {
            ["objective/kl"] = RowMean((kl * mask).sum(1)),
            ["objective/entropy"] = RowMean((-logps * mask).sum(1)),
            ["objective/non_score_reward"] = meanNonScore,
            ["objective/rlhf_reward"] = meanNonScore + meanScore,
            ["objective/scores"] = meanScore,
            ["val/num_eos_tokens"] = rollout.Truncated.Count(t => !t),
            ["eps"] = n / Math.Max(1e-9, clock.Elapsed.TotalSeconds),
        };
        foreach (var (k, v) in rollout.SamplerMetrics) metrics[k] = v;
        // Logged when one of the optimiser steps this rollout feeds (step + 1 .. step + StepsPerBatch) is a multiple of N.
        if (completionsLog is not null && options.LogCompletionsSteps > 0 &&
            (step + StepsPerBatch) / options.LogCompletionsSteps > step / options.LogCompletionsSteps)
            rollout.AppendCompletions(completionsLog, step + 1, rollouts.Rewards.Names, scores);
        return new Batch
        {
            DataStep = dataStep, Rollout = rollout, InLoss = inLoss, Metrics = metrics, ValueSeconds = valueSeconds,
            OldLogps = Rows(logps), OldValues = Rows(values), Advantages = Rows(advantages), Returns = Rows(returns),
            ImportanceWeights = rollout.ImportanceWeights is { } w ? Enumerable.Range(0, n).Select(i => inLoss[i] ? w[i]! : []).ToArray() : null,
        };
    }

    /// <summary>The --eval-data prompts sampled (greedy by default) and scored with the run's rewards: eval_reward, eval_rewards/NAME/mean, the eval_completions/* lengths.</summary>
    public Dictionary<string, double> EvaluatePrompts(CausalLM model, IReadOnlyList<PromptUnit> units) =>
        rollouts.Evaluate(model, units, options, ScaleRewards.None, Log);

    /// <summary>The value model's estimate at each scored position: the state each completion token is predicted from.</summary>
    Tensor Values(TokenRows rows)
    {
        var hidden = value.Decoder.ForwardHidden(rows.InputIds, positionIds: rows.PositionIds);
        var picked = hidden[rows.RowIndex, rows.ColIndex];
        var head = value.Score;
        return head.forward(picked.dtype == head.weight!.dtype ? picked : picked.to(head.weight.dtype)).squeeze(-1).to(ScalarType.Float32);
    }

    public override MicroBatchLoss Loss(CausalLM model, IReadOnlyList<PromptUnit> units)
    {
        var b = batch!;
        var selected = Selected(units).ToArray();
        if (selected.Length == 0)
            // Nothing of this micro-batch is in the mini-batch: a zero that still reaches the graph.
            return new MicroBatchLoss(value.Score.weight!.sum() * 0, new Dictionary<string, double>());
        var rows = TokenRows.PromptCompletion(selected.Select(i => (b.Rollout.PromptIds[i].ToArray(), b.Rollout.CompletionIds[i].ToArray())).ToList());
        var scores = TokenLogProbs.Score(model, rows, new TokenScoring { Temperature = options.Temperature, Statistics = true });
        var values = Values(rows);
        float[] Flat(float[][] perCompletion) => selected.SelectMany(i => perCompletion[i]).ToArray();
        var old = tensor(Flat(b.OldLogps));
        var advantages = tensor(Flat(b.Advantages));
        var returns = tensor(Flat(b.Returns));
        var oldValues = tensor(Flat(b.OldValues));

        var diff = scores.Logps - old;
        var ratio = diff.exp();
        var unclipped = -advantages * ratio;
        var clipped = -advantages * ratio.clamp(1 - options.Cliprange, 1 + options.Cliprange);
        var policyTokens = maximum(unclipped, clipped);
        // Remote rollouts: each token's policy-gradient term weighted as GRPO's (the value loss regresses on returns and is not).
        if (b.ImportanceWeights is { } weights) policyTokens = policyTokens * tensor(Flat(weights));
        var clippedValues = minimum(maximum(values, oldValues - options.CliprangeValue), oldValues + options.CliprangeValue);
        var vUnclipped = (values - returns).square();
        var vClipped = (clippedValues - returns).square();
        var valueTokens = 0.5 * maximum(vUnclipped, vClipped);
        var loss = (policyTokens + options.VfCoef * valueTokens).sum();
        using var noGrad = no_grad();
        return new MicroBatchLoss(loss, new Dictionary<string, double>
        {
            ["loss/policy_avg"] = policyTokens.sum().item<float>(),
            ["loss/value_avg"] = valueTokens.sum().item<float>(),
            ["policy/clipfrac_avg"] = (clipped > unclipped).sum().item<long>(),
            ["val/clipfrac_avg"] = (vClipped > vUnclipped).sum().item<long>(),
            ["policy/approxkl_avg"] = (0.5 * diff.square()).sum().item<float>(),
            ["policy/entropy_avg"] = scores.Entropy.Sum(e => (double)e),
            ["val/ratio"] = ratio.sum().item<float>(),
        });
    }

    /// <summary>The policy as the loop saves it, and the value model beside it in OUTPUT/value_model (sequence-classification layout).</summary>
    public override void SaveModel(CausalLM model, string dir, string? filesFrom)
    {
        base.SaveModel(model, dir, filesFrom);
        var valueDir = Path.Combine(dir, "value_model");
        Directory.CreateDirectory(valueDir);
        HfCheckpoint.WriteInto(value, valueDir, new SaveOptions { CopyFilesFrom = filesFrom }, padTokenId);
    }
}
