using System.Text.Json;
using System.Text.Json.Nodes;
using PostTrain.Rewards;

namespace PostTrain.Trainers;

/// <summary>
/// Where a rollout's scoring time went: the reward functions, the policy's sampling-time
/// log-probabilities and the reference's (zero when not computed).
/// </summary>
public sealed record RolloutScoringSeconds(double Rewards, double PolicyLogProbs, double ReferenceLogProbs);

/// <summary>
/// A run of consecutive prompts of a <see cref="Rollout"/> and their completions: one
/// micro-batch of the step. Its completions are <c>FirstCompletion .. FirstCompletion + Completions - 1</c>.
/// </summary>
public sealed record RolloutPart(int Index, int FirstCompletion, int Completions, IReadOnlyList<PromptUnit> Prompts);

/// <summary>
/// What online RL sampled and scored for a set of prompts (one step, or an evaluation): an
/// immutable value that GRPO, RLOO and PPO each turn into their advantages and loss. Completions
/// are ordered by prompt, <see cref="Generations"/> per prompt: completion <c>i</c> answers
/// <c>Prompts[i / Generations]</c>. Per completion: its prompt and completion ids, whether it was
/// truncated (cut at the length limit without an end-of-sequence token), whether it is in the
/// loss (TRL's completion_mask: false for a truncated completion under
/// --mask-truncated-completions), the decoded texts, and the rewards (per function, null where
/// a function does not apply; the weighted total, NaN where none does). When asked for, the
/// per-token log-probabilities of each completion in the loss: the policy's at sampling time and
/// the reference's, both of logits / temperature as TRL computes them (null for a completion not
/// in the loss). <see cref="Parts"/> are the micro-batches the prompts came in; log-probabilities
/// were computed one part at a time, so a method that rescored a part the same way would get the
/// same numbers.
/// </summary>
public sealed class Rollout
{
    readonly int[][] promptIds, completionIds;
    readonly bool[] truncated, inLoss;
    readonly string[] completionTexts;
    readonly float[]?[]? samplingLogps, referenceLogps;

    /// <param name="prompts">The prompts, each sampled <paramref name="generations"/> times.</param>
    /// <param name="parts">How many consecutive prompts each micro-batch holds (null: one part of all).</param>
    /// <param name="completionIds">Per completion, its tokens (the end-of-sequence token included when one ended it).</param>
    /// <param name="truncated">Per completion: cut at the length limit.</param>
    /// <param name="inLoss">Per completion: in the loss (null: all).</param>
    /// <param name="completionTexts">Per completion, its text as the rewards saw it.</param>
    /// <param name="rewards">The rewards, one per completion.</param>
    /// <param name="samplingLogps">Per completion in the loss, one log-probability per completion token (null for the others); null: not computed.</param>
    /// <param name="referenceLogps">As <paramref name="samplingLogps"/>, under the reference.</param>
    public Rollout(IReadOnlyList<PromptUnit> prompts, int generations, IReadOnlyList<int>? parts, IReadOnlyList<int[]> completionIds,
        IReadOnlyList<bool> truncated, IReadOnlyList<bool>? inLoss, IReadOnlyList<string> completionTexts, RewardScores rewards,
        IReadOnlyList<float[]?>? samplingLogps = null, IReadOnlyList<float[]?>? referenceLogps = null, double samplingSeconds = 0)
    {
        if (generations < 1) throw new ArgumentException("at least one completion per prompt", nameof(generations));
        int n = prompts.Count * generations;
        void Check(int count, string name)
        {
            if (count != n) throw new ArgumentException($"{count} values for {n} completions ({prompts.Count} prompts x {generations})", name);
        }
        Check(completionIds.Count, nameof(completionIds));
        Check(truncated.Count, nameof(truncated));
        if (inLoss is not null) Check(inLoss.Count, nameof(inLoss));
        Check(completionTexts.Count, nameof(completionTexts));
        Check(rewards.Total.Length, nameof(rewards));
        Prompts = prompts.ToArray();
        Generations = generations;
        this.completionIds = completionIds.Select(c => c.ToArray()).ToArray();
        promptIds = Enumerable.Range(0, n).Select(i => Prompts[i / generations].Ids).ToArray();
        this.truncated = truncated.ToArray();
        this.inLoss = inLoss?.ToArray() ?? Enumerable.Repeat(true, n).ToArray();
        this.completionTexts = completionTexts.ToArray();
        Rewards = new RewardScores(rewards.Total.ToArray(), rewards.PerFunction.Select(f => f.ToArray()).ToArray());
        this.samplingLogps = TokenValues(samplingLogps, nameof(samplingLogps));
        this.referenceLogps = TokenValues(referenceLogps, nameof(referenceLogps));
        SamplingSeconds = samplingSeconds;

        var sizes = parts ?? [prompts.Count];
        if (sizes.Any(s => s < 1) || sizes.Sum() != prompts.Count) throw new ArgumentException($"parts of {string.Join(",", sizes)} prompts for {prompts.Count} prompts", nameof(parts));
        var built = new List<RolloutPart>();
        int first = 0;
        foreach (var size in sizes)
        {
            built.Add(new RolloutPart(built.Count, first * generations, size * generations, Prompts.Skip(first).Take(size).ToArray()));
            first += size;
        }
        Parts = built;
    }

    float[]?[]? TokenValues(IReadOnlyList<float[]?>? values, string name)
    {
        if (values is null) return null;
        if (values.Count != Count) throw new ArgumentException($"{values.Count} values for {Count} completions", name);
        for (int i = 0; i < Count; i++)
            if (inLoss[i] ? values[i]?.Length != completionIds[i].Length : values[i] is not null)
                throw new ArgumentException($"completion {i}: {(inLoss[i] ? $"one value per token ({completionIds[i].Length})" : "null (not in the loss)")} expected", name);
        return values.Select(v => v?.ToArray()).ToArray();
    }

    /// <summary>Completions per prompt (G).</summary>
    public int Generations { get; }
    public IReadOnlyList<PromptUnit> Prompts { get; }
    /// <summary>The micro-batches, in order: consecutive prompts with their completions.</summary>
    public IReadOnlyList<RolloutPart> Parts { get; }
    public int Count => completionIds.Length;
    /// <summary>Per completion, its prompt's ids.</summary>
    public IReadOnlyList<IReadOnlyList<int>> PromptIds => promptIds;
    public IReadOnlyList<IReadOnlyList<int>> CompletionIds => completionIds;
    /// <summary>Per completion: cut at the length limit without an end-of-sequence token.</summary>
    public IReadOnlyList<bool> Truncated => truncated;
    /// <summary>Per completion: in the loss (TRL's completion_mask; false only for truncated completions under --mask-truncated-completions).</summary>
    public IReadOnlyList<bool> InLoss => inLoss;
    /// <summary>Per completion, its prompt's text as the rewards saw it.</summary>
    public IReadOnlyList<string> PromptTexts => promptIds.Select((_, i) => Prompts[i / Generations].Text).ToArray();
    public IReadOnlyList<string> CompletionTexts => completionTexts;
    /// <summary>Per function (null where it does not apply) and the weighted total (NaN where no function applies).</summary>
    public RewardScores Rewards { get; }
    /// <summary>Per completion in the loss, the policy's log-probability of each token at sampling time (logits / temperature); null when not computed.</summary>
    public IReadOnlyList<IReadOnlyList<float>?>? SamplingLogps => samplingLogps;
    /// <summary>As <see cref="SamplingLogps"/>, under the reference model; null without a reference.</summary>
    public IReadOnlyList<IReadOnlyList<float>?>? ReferenceLogps => referenceLogps;
    /// <summary>
    /// Per completion in the loss, the importance-sampling weight of each token (remote rollouts with
    /// the correction: <see cref="ImportanceSampling.Weights"/>; null for the others); null: no correction.
    /// </summary>
    public IReadOnlyList<float[]?>? ImportanceWeights { get; init; }
    /// <summary>Statistics of the sampler against the trainer (TRL's sampling/*), empty without a correction.</summary>
    public IReadOnlyDictionary<string, double> SamplerMetrics { get; init; } = new Dictionary<string, double>();
    /// <summary>Seconds spent generating (the rest of sampling is scoring: rewards and log-probabilities).</summary>
    public double SamplingSeconds { get; }
    /// <summary>Seconds spent scoring what was sampled (for the benchmarks; zeros where not measured).</summary>
    public RolloutScoringSeconds ScoringSeconds { get; init; } = new(0, 0, 0);

    /// <summary>The part whose prompts are exactly <paramref name="units"/> (by index, in order), or null.</summary>
    public RolloutPart? PartOf(IReadOnlyList<PromptUnit> units) =>
        Parts.FirstOrDefault(p => p.Prompts.Count == units.Count && p.Prompts.Select(u => u.Index).SequenceEqual(units.Select(u => u.Index)));

    /// <summary>The completions of a part, as indices into the rollout.</summary>
    public static IEnumerable<int> Completions(RolloutPart part) => Enumerable.Range(part.FirstCompletion, part.Completions);

    /// <summary>
    /// A part's rows (prompt + completion, right-padded), the completion tokens of the completions
    /// in the loss scored: the rows every method scores (policy, reference, value model), whose
    /// scored tokens are in the order of <see cref="TokenValues"/>.
    /// </summary>
    public TokenRows Rows(RolloutPart part) =>
        TokenRows.PromptCompletion(Completions(part).Select(i => (promptIds[i], completionIds[i])).ToList(), r => inLoss[part.FirstCompletion + r]);

    /// <summary>A part's per-token values (e.g. <see cref="SamplingLogps"/>) in the order of its <see cref="Rows"/>' scored tokens.</summary>
    public float[] TokenValues(IReadOnlyList<IReadOnlyList<float>?> values, RolloutPart part) =>
        Completions(part).Where(i => inLoss[i]).SelectMany(i => values[i]!).ToArray();

    /// <summary>The completion tokens of a part in the loss (its rows' scored tokens).</summary>
    public long LossTokens(RolloutPart part) => Completions(part).Where(i => inLoss[i]).Sum(i => (long)completionIds[i].Length);

    /// <summary>
    /// Appends one JSON line per completion to <paramref name="path"/> (OUTPUT/completions.jsonl):
    /// step, prompt, completion, reward (null when unscorable), rewards per function and the method's advantage.
    /// </summary>
    public void AppendCompletions(string path, int step, IReadOnlyList<string> rewardNames, IReadOnlyList<double> advantages)
    {
        using var writer = File.AppendText(path);
        var json = new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        for (int i = 0; i < Count; i++)
        {
            var per = new JsonObject();
            for (int f = 0; f < rewardNames.Count; f++) per[rewardNames[f]] = Rewards.PerFunction[f][i] is { } v ? v : null;
            writer.WriteLine(new JsonObject
            {
                ["step"] = step,
                ["prompt"] = Prompts[i / Generations].Text,
                ["completion"] = completionTexts[i],
                ["reward"] = double.IsNaN(Rewards.Total[i]) ? null : Rewards.Total[i],
                ["rewards"] = per,
                ["advantage"] = advantages[i],
            }.ToJsonString(json));
        }
    }
}
