using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>
/// GRPO and RLOO on the shared loop: before each data step the policy samples G completions
/// per prompt (the generation engine, seeded by the step), the rewards score them, and
/// advantages are computed (group-normalised, or leave-one-out); the step then optimises the
/// clipped surrogate on those completions for --num-iterations steps, with importance ratios
/// against the log-probabilities at sampling time. Log-probabilities are those of the
/// temperature-scaled logits, as TRL computes them.
/// </summary>
public sealed class GrpoMethod : TrainingMethod<PromptUnit>
{
    readonly GrpoOptions options;
    readonly RewardSet rewards;
    readonly ReferenceModel? reference;
    readonly Func<IReadOnlyList<int>, string>? decode;
    readonly IReadOnlyList<int> eos;
    readonly string? completionsLog;
    readonly Dictionary<string, Rollout> rollouts = new();
    int rolloutDataStep = -1;
    Dictionary<string, double> rolloutMetrics = new();

    /// <summary>Sampled completions of a micro-batch with everything its loss needs.</summary>
    sealed class Rollout
    {
        public required int[][] Prompts, Completions;
        public required bool[] Truncated;
        public required double[] Advantages, Rewards; // Rewards: NaN where no function scored the completion
        public float[]? OldLogps, RefLogps; // per trained token, in row order
        public long Tokens;
    }

    /// <param name="decode">Token ids to text (the tokenizer's decode, special tokens skipped) for the rewards.</param>
    /// <param name="eosTokenIds">End-of-sequence ids: a completion ends at one (else it is truncated).</param>
    /// <param name="completionsLog">OUTPUT/completions.jsonl, or null not to log.</param>
    public GrpoMethod(GrpoOptions options, RewardSet rewards, ReferenceModel? reference, Func<IReadOnlyList<int>, string>? decode,
        IReadOnlyList<int> eosTokenIds, string? completionsLog)
    {
        this.options = options;
        this.rewards = rewards;
        this.reference = options.EffectiveBeta > 0 ? reference ?? throw new ArgumentException("beta > 0 needs a reference model") : null;
        this.decode = decode;
        eos = eosTokenIds;
        this.completionsLog = completionsLog;
    }

    public override int StepsPerBatch => options.NumIterations;

    /// <summary>Seconds the last <see cref="PrepareStep"/> spent generating (the rest scored: rewards and log-probabilities).</summary>
    public double LastSamplingSeconds { get; private set; }

    static string Key(IReadOnlyList<PromptUnit> units) => string.Join(",", units.Select(u => u.Index));

    Rollout Get(IReadOnlyList<PromptUnit> units) =>
        rollouts.TryGetValue(Key(units), out var r) ? r : throw new InvalidOperationException("no completions were sampled for these prompts (PrepareStep was not called)");

    public override long CountItems(IReadOnlyList<PromptUnit> units)
    {
        var r = Get(units);
        return GrpoLoss.Items(options.LossType, r.Completions.Length, r.Tokens, options.MaxCompletionLength);
    }

    public override long CountTokens(IReadOnlyList<PromptUnit> units)
    {
        var r = Get(units);
        return r.Prompts.Sum(p => (long)p.Length) + r.Completions.Sum(c => (long)c.Length);
    }

    public override void PrepareStep(CausalLM model, int step, IReadOnlyList<IReadOnlyList<PromptUnit>> microBatches)
    {
        int dataStep = step / options.NumIterations;
        if (dataStep == rolloutDataStep && microBatches.All(b => rollouts.ContainsKey(Key(b)))) return; // the next iteration on the same completions
        rollouts.Clear();
        rolloutDataStep = dataStep;
        bool wasTraining = model.training;
        model.eval();
        try
        {
            var engine = new GenerationEngine(model, decode);
            int g = options.NumGenerations;
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Every prompt of the step in one call: decoding batches all their samples together.
            var sampling = new SamplingOptions
            {
                MaxNewTokens = options.MaxCompletionLength, Temperature = options.Temperature, TopP = options.TopP, TopK = options.TopK,
                N = g, Seed = options.Seed * 1_000_003 + dataStep, EosTokenIds = eos,
                BatchSize = Math.Max(g, microBatches.Sum(b => b.Count) * g),
            };
            var all = engine.Generate(microBatches.SelectMany(b => b.Select(u => u.Ids)).ToList(), sampling);
            var sampled = new List<(IReadOnlyList<PromptUnit> Units, Completion[][] Completions)>();
            int first = 0;
            foreach (var b in microBatches)
            {
                sampled.Add((b, all.Skip(first).Take(b.Count).ToArray()));
                first += b.Count;
            }
            LastSamplingSeconds = clock.Elapsed.TotalSeconds;
            // Rewards of the whole step (batch scaling normalises over all of them).
            var samples = sampled.SelectMany(s => Samples(s.Units, s.Completions)).ToList();
            var scores = rewards.Score(samples);
            int offset = 0;
            var built = new List<Rollout>();
            foreach (var (units, completions) in sampled)
            {
                int n = units.Count * g;
                var total = scores.Total.Skip(offset).Take(n).ToArray();
                var flat = completions.SelectMany(c => c).ToArray();
                var rollout = new Rollout
                {
                    Prompts = units.SelectMany(u => Enumerable.Repeat(u.Ids, g)).ToArray(),
                    Completions = flat.Select(c => c.TokenIds).ToArray(),
                    Truncated = flat.Select(c => c.FinishReason == "length").ToArray(),
                    Rewards = total,
                    Advantages = [],
                };
                rollout.Tokens = Enumerable.Range(0, n).Where(i => !Masked(rollout, i)).Sum(i => (long)rollout.Completions[i].Length);
                built.Add(rollout);
                offset += n;
            }
            var groupStd = ComputeAdvantages(model, built);
            rolloutMetrics = GrpoLoss.RolloutMetrics(rewards.Names, scores, groupStd,
                built.SelectMany(b => b.Completions.Select(c => c.Length)).ToList(), built.SelectMany(b => b.Truncated).ToList());
            WarnUnscorable($"step {step + 1}", samples, scores);
            for (int k = 0; k < built.Count; k++) rollouts[Key(sampled[k].Units)] = built[k];
            if (completionsLog is not null && options.LogCompletionsSteps > 0 && step % options.LogCompletionsSteps == 0)
                LogCompletions(step, samples, scores, built.SelectMany(b => b.Advantages).ToArray());
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>
    /// Held-out prompts (--eval-data) sampled at --eval-temperature (0: greedy),
    /// --eval-num-generations each, and scored with the run's rewards: TRL's rollout statistics
    /// (<see cref="GrpoLoss.RolloutMetrics"/>) prefixed eval_: eval_reward, eval_reward_std,
    /// eval_rewards/NAME/mean and /std, eval_frac_reward_zero_std (each prompt's group; 1 with one
    /// completion per prompt, as TRL), eval_completions/*.
    /// </summary>
    public Dictionary<string, double> EvaluatePrompts(CausalLM model, IReadOnlyList<PromptUnit> units)
    {
        var engine = new GenerationEngine(model, decode);
        int n = options.EvalNumGenerations;
        var sampling = new SamplingOptions
        {
            MaxNewTokens = options.MaxCompletionLength, Temperature = options.EvalTemperature, TopP = options.TopP, TopK = options.TopK,
            N = n, Seed = options.Seed, EosTokenIds = eos, BatchSize = Math.Max(n, options.BatchSize),
        };
        var completions = engine.Generate(units.Select(u => u.Ids).ToList(), sampling);
        var samples = Samples(units, completions).ToList();
        var scores = rewards.Score(samples);
        WarnUnscorable("evaluation", samples, scores);
        var flat = completions.SelectMany(c => c).ToList();
        var scale = options.Algorithm == OnlineAlgorithm.Grpo ? options.ScaleRewards : ScaleRewards.None;
        var groupStd = n > 1 ? GrpoLoss.GroupAdvantages(scores.Total, n, scale).Std : new double[units.Count];
        return GrpoLoss.RolloutMetrics(rewards.Names, scores, groupStd, flat.Select(c => c.TokenIds.Length).ToList(),
            flat.Select(c => c.FinishReason == "length").ToList(), prefix: "eval_");
    }

    /// <summary>Each prompt's completions as the rewards see them (text decoded when the engine gave none).</summary>
    IEnumerable<RewardSample> Samples(IReadOnlyList<PromptUnit> units, Completion[][] completions) =>
        units.SelectMany((u, i) => completions[i].Select(c => new RewardSample(
            u.Text, u.Example.Messages, c.Text ?? decode?.Invoke(c.TokenIds) ?? "", c.TokenIds, u.Example.Row)));

    bool Masked(Rollout r, int i) => options.MaskTruncatedCompletions && r.Truncated[i];

    /// <summary>
    /// Sets each rollout's advantages (and old and reference log-probabilities where needed) and
    /// returns, per group of the step, the std TRL compares with 0 for frac_reward_zero_std
    /// (GRPO: of the rewards, the group's or with batch scaling the batch's; RLOO: of the rewards
    /// after the KL penalty).
    /// </summary>
    double[] ComputeAdvantages(CausalLM model, List<Rollout> built)
    {
        int g = options.NumGenerations;
        double beta = options.EffectiveBeta;
        bool needOld = options.NumIterations > 1 || (options.Algorithm == OnlineAlgorithm.Rloo && beta > 0);
        foreach (var r in built)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var rows = Rows(r);
            if (needOld) r.OldLogps = rows.Tokens == 0 ? [] : Score(model, rows).Logps.data<float>().ToArray();
            if (beta > 0) r.RefLogps = rows.Tokens == 0 ? [] : reference!.Run(model, m => Score(m, rows).Logps).data<float>().ToArray();
        }
        if (options.Algorithm == OnlineAlgorithm.Grpo)
        {
            var all = built.SelectMany(r => r.Rewards).ToArray();
            var (advantages, groupStd) = GrpoLoss.GroupAdvantages(all, g, options.ScaleRewards);
            int offset = 0;
            foreach (var r in built)
            {
                r.Advantages = advantages.Skip(offset).Take(r.Rewards.Length).ToArray();
                offset += r.Rewards.Length;
            }
            return groupStd;
        }
        // RLOO (TRL's RLOOTrainer): the sequence KL to the reference is taken from the reward.
        var stds = new List<double>();
        foreach (var r in built)
        {
            var shaped = r.Rewards.ToArray();
            if (beta > 0)
            {
                int t = 0;
                for (int i = 0; i < shaped.Length; i++)
                {
                    if (Masked(r, i)) continue;
                    double kl = 0;
                    for (int k = 0; k < r.Completions[i].Length; k++, t++) kl += r.OldLogps![t] - r.RefLogps![t];
                    shaped[i] -= beta * kl;
                }
            }
            r.Advantages = GrpoLoss.LeaveOneOutAdvantages(shaped, g);
            stds.AddRange(GrpoLoss.GroupAdvantages(shaped, g, ScaleRewards.None).Std);
        }
        return stds.ToArray();
    }

    /// <summary>
    /// TRL warns when every reward function returned None for a completion; here once per sampled
    /// batch (<paramref name="when"/>: the step it is for, or the evaluation), with the count and
    /// the first such prompt and completion.
    /// </summary>
    void WarnUnscorable(string when, List<RewardSample> samples, RewardScores scores)
    {
        int count = scores.Unscorable;
        if (count == 0) return;
        int first = Array.FindIndex(scores.Total, double.IsNaN);
        Log.WriteLine($"Warning: {when}: every reward function returned null for {count} of {samples.Count} completions " +
                      $"(reward NaN, left out of the baselines, advantage 0), e.g. prompt \"{Shorten(samples[first].Prompt)}\", " +
                      $"completion \"{Shorten(samples[first].Completion)}\"; make sure at least one reward function scores every completion");
    }

    static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";

    /// <summary>A micro-batch's rows (prompt + completion, right-padded); the completion tokens of the completions in the loss are scored.</summary>
    TokenRows Rows(Rollout r) =>
        TokenRows.PromptCompletion(Enumerable.Range(0, r.Completions.Length).Select(i => (r.Prompts[i], r.Completions[i])).ToList(), i => !Masked(r, i));

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
        var r = Get(units);
        var rows = Rows(r);
        long items = CountItems(units);
        if (rows.Tokens == 0)
            return new MicroBatchLoss(Score(model, rows).Logps.sum(), new Dictionary<string, double>());
        var (logps, entropy) = Score(model, rows, entropy: true);
        var sequenceOfToken = rows.RowIndex;
        var old = r.OldLogps is null ? logps.detach() : tensor(r.OldLogps);
        var refLogps = options.Algorithm == OnlineAlgorithm.Grpo && r.RefLogps is not null ? tensor(r.RefLogps) : null;
        var advantages = tensor(r.Advantages.Select(a => (float)a).ToArray())[sequenceOfToken];
        double beta = options.Algorithm == OnlineAlgorithm.Grpo ? options.EffectiveBeta : 0;
        var terms = GrpoLoss.TokenLoss(logps, old, refLogps, advantages, options.Epsilon, options.EffectiveEpsilonHigh, beta);
        var loss = GrpoLoss.LossSum(terms.Loss, sequenceOfToken, r.Completions.Length, options.LossType);
        var metrics = new Dictionary<string, double>();
        using (no_grad())
        {
            double Mean(Tensor t) => t.to(ScalarType.Float64).mean().item<double>();
            metrics["clip_ratio/low_mean"] = Mean(terms.LowClipped);
            metrics["clip_ratio/high_mean"] = Mean(terms.HighClipped);
            metrics["clip_ratio/region_mean"] = Mean(terms.LowClipped.logical_or(terms.HighClipped).to(ScalarType.Float32));
            // TRL: the smallest (largest) share of a completion's tokens clipped low (high), over the completions with tokens.
            var perSequence = GrpoLoss.SequenceMeans(stack([terms.LowClipped, terms.HighClipped], 1), sequenceOfToken, r.Completions.Length);
            metrics["clip_ratio/low_min"] = perSequence.Min(x => x[0]);
            metrics["clip_ratio/high_max"] = perSequence.Max(x => x[1]);
            metrics["entropy"] = entropy.Average(e => (double)e);
            if (terms.Kl is not null) metrics["kl"] = Mean(terms.Kl);
            else if (options.Algorithm == OnlineAlgorithm.Rloo && r.RefLogps is not null) metrics["kl"] = Mean(old - tensor(r.RefLogps));
        }
        // The loop divides metric sums by the step's items: weight each micro-batch mean by its items.
        return new MicroBatchLoss(loss, metrics.ToDictionary(kv => kv.Key, kv => kv.Value * items));
    }

    /// <summary>
    /// The statistics of the completions sampled for this step (<see cref="GrpoLoss.RolloutMetrics"/>),
    /// as TRL logs them once per generation batch; each of the --num-iterations steps on that
    /// batch reports them.
    /// </summary>
    public override IReadOnlyDictionary<string, double> StepMetrics(int step) => rolloutMetrics;

    void LogCompletions(int step, List<RewardSample> samples, RewardScores scores, double[] advantages)
    {
        var names = rewards.Names;
        using var writer = File.AppendText(completionsLog!);
        for (int i = 0; i < samples.Count; i++)
        {
            var per = new JsonObject();
            for (int f = 0; f < names.Count; f++) per[names[f]] = scores.PerFunction[f][i] is { } v ? v : null;
            writer.WriteLine(new JsonObject
            {
                ["step"] = step,
                ["prompt"] = samples[i].Prompt,
                ["completion"] = samples[i].Completion,
                ["reward"] = double.IsNaN(scores.Total[i]) ? null : scores.Total[i],
                ["rewards"] = per,
                ["advantage"] = advantages[i],
            }.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
    }
}
