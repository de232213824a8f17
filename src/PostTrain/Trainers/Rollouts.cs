using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Trainers;

/// <summary>How <see cref="Rollouts.Sample"/> samples and what it scores.</summary>
public sealed record RolloutSettings
{
    /// <summary>Completions per prompt (G).</summary>
    public required int Generations { get; init; }
    public required int MaxCompletionLength { get; init; }
    /// <summary>Sampling temperature (0: greedy); log-probabilities are of logits / temperature (unscaled when greedy).</summary>
    public double Temperature { get; init; } = 1.0;
    public double TopP { get; init; } = 1.0;
    public int TopK { get; init; }
    public long Seed { get; init; }
    /// <summary>Most sequences (prompts x G) decoded together.</summary>
    public required int BatchSize { get; init; }
    /// <summary>Leave truncated completions out of the loss (TRL's mask_truncated_completions): <see cref="Rollout.InLoss"/> false, no log-probabilities.</summary>
    public bool MaskTruncated { get; init; }
    /// <summary>Compute <see cref="Rollout.SamplingLogps"/> (num_iterations &gt; 1, RLOO's KL, PPO).</summary>
    public bool SamplingLogProbs { get; init; }
    /// <summary>Compute <see cref="Rollout.ReferenceLogps"/> (needs the sampler's reference).</summary>
    public bool ReferenceLogProbs { get; init; }
    /// <summary>Optimiser steps the policy has taken (a remote sampler publishes the policy when it changed).</summary>
    public int PolicyStep { get; init; }
    /// <summary>
    /// The correction of a remote sampler's completions (<see cref="Rollout.ImportanceWeights"/>; it
    /// computes <see cref="Rollout.SamplingLogps"/> too, as TRL always does with vLLM); ignored for local sampling.
    /// </summary>
    public ImportanceSampling? ImportanceSampling { get; init; }
}

/// <summary>
/// The rollout of every online method (GRPO, RLOO, PPO): prompts in, a <see cref="Rollout"/>
/// out. The policy samples G completions per prompt with the generation engine, or an
/// OpenAI-compatible server does (<see cref="ICompletionSampler"/>; all the prompts in one call,
/// seeded by <see cref="RolloutSettings.Seed"/>), the rewards score them
/// together, and, when asked, the policy at sampling time and the reference score each part's
/// completion tokens (no gradient, evaluation mode). A method then derives its advantages and
/// loss from the value and never samples by itself.
/// <code>
/// var sampler = new Rollouts(rewards, ids => tokenizer.Decode(ids, skipSpecialTokens: true), eos, reference);
/// var rollout = sampler.Sample(model, microBatches, new RolloutSettings { Generations = 8, MaxCompletionLength = 256, BatchSize = 64, SamplingLogProbs = true });
/// </code>
/// </summary>
/// <param name="decode">Token ids to text (special tokens skipped) for the rewards; null: the engine's text or "".</param>
/// <param name="eosTokenIds">End-of-sequence ids: a completion ends at one (else it is truncated).</param>
/// <param name="reference">The frozen reference, for <see cref="RolloutSettings.ReferenceLogProbs"/>.</param>
/// <param name="sampler">Where completions come from (null: the policy, <see cref="LocalCompletionSampler"/>); --eval-data prompts are always sampled locally.</param>
public sealed class Rollouts(RewardSet rewards, Func<IReadOnlyList<int>, string>? decode, IReadOnlyList<int> eosTokenIds, ReferenceModel? reference = null,
    ICompletionSampler? sampler = null)
{
    readonly ICompletionSampler local = new LocalCompletionSampler(decode);

    public RewardSet Rewards => rewards;

    /// <summary>
    /// Samples and scores the prompts of <paramref name="parts"/> (a step's micro-batches, in
    /// order). The model is put in evaluation mode for it and restored. Warns on
    /// <paramref name="log"/> when a completion is unscorable, naming <paramref name="when"/>.
    /// </summary>
    public Rollout Sample(CausalLM model, IReadOnlyList<IReadOnlyList<PromptUnit>> parts, RolloutSettings settings, TextWriter? log = null, string when = "rollout") =>
        Sample(sampler ?? local, model, parts, settings, log, when);

    Rollout Sample(ICompletionSampler generator, CausalLM model, IReadOnlyList<IReadOnlyList<PromptUnit>> parts, RolloutSettings settings, TextWriter? log, string when)
    {
        if (settings.ReferenceLogProbs && reference is null) throw new InvalidOperationException("reference log-probabilities need a reference model");
        bool wasTraining = model.training;
        model.eval();
        try
        {
            int g = settings.Generations;
            var prompts = parts.SelectMany(p => p).ToList();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            // Every prompt in one call: decoding batches all their samples together.
            var sampling = new SamplingOptions
            {
                MaxNewTokens = settings.MaxCompletionLength, Temperature = settings.Temperature, TopP = settings.TopP, TopK = settings.TopK,
                N = g, Seed = settings.Seed, EosTokenIds = eosTokenIds, BatchSize = settings.BatchSize,
            };
            var completions = generator.Generate(model, prompts.Select(u => u.Ids).ToList(), sampling, settings.PolicyStep)
                .SelectMany(c => c).ToArray();
            var correction = generator.Remote ? settings.ImportanceSampling : null;
            double samplingSeconds = clock.Elapsed.TotalSeconds;
            var texts = completions.Select(c => c.Text ?? decode?.Invoke(c.TokenIds) ?? "").ToArray();
            var samples = completions.Select((c, i) => new RewardSample(prompts[i / g].Text, prompts[i / g].Example.Messages, texts[i], c.TokenIds, prompts[i / g].Example.Row)).ToList();
            clock.Restart();
            var scores = rewards.Score(samples);
            double rewardSeconds = clock.Elapsed.TotalSeconds;
            double policySeconds = 0, referenceSeconds = 0;
            var truncated = completions.Select(c => c.FinishReason == "length").ToArray();
            var inLoss = truncated.Select(t => !(settings.MaskTruncated && t)).ToArray();
            var unscored = new Rollout(prompts, g, parts.Select(p => p.Count).ToList(), completions.Select(c => c.TokenIds).ToList(), truncated, inLoss, texts, scores);
            float[]?[]? samplingLogps = settings.SamplingLogProbs || correction is not null ? new float[]?[unscored.Count] : null;
            float[]?[]? referenceLogps = settings.ReferenceLogProbs ? new float[]?[unscored.Count] : null;
            var scoring = new TokenScoring { Temperature = settings.Temperature > 0 ? settings.Temperature : 1.0 };
            if (samplingLogps is not null || referenceLogps is not null)
                foreach (var part in unscored.Parts) // a part at a time: the rows a method's loss scores
                {
                    using var scope = NewDisposeScope();
                    using var noGrad = no_grad();
                    var rows = unscored.Rows(part);
                    if (samplingLogps is not null)
                    {
                        clock.Restart();
                        Split(rows.Tokens == 0 ? [] : TokenLogProbs.Score(model, rows, scoring).Logps.data<float>().ToArray(), unscored, part, samplingLogps);
                        policySeconds += clock.Elapsed.TotalSeconds;
                    }
                    if (referenceLogps is not null)
                    {
                        clock.Restart();
                        Split(rows.Tokens == 0 ? [] : reference!.Run(model, m => TokenLogProbs.Score(m, rows, scoring).Logps).data<float>().ToArray(), unscored, part, referenceLogps);
                        referenceSeconds += clock.Elapsed.TotalSeconds;
                    }
                }
            WarnUnscorable(log, when, unscored);
            float[]?[]? weights = null;
            Dictionary<string, double> samplerMetrics = [];
            if (correction is not null)
            {
                weights = samplingLogps!.Select((old, i) => old is null ? null : correction.Weights(old, completions[i].LogProbs)).ToArray();
                samplerMetrics = correction.Metrics(samplingLogps!, completions.Select(c => c.LogProbs).ToArray(), weights);
            }
            return new Rollout(prompts, g, parts.Select(p => p.Count).ToList(), completions.Select(c => c.TokenIds).ToList(), truncated, inLoss,
                texts, scores, samplingLogps, referenceLogps, samplingSeconds)
            {
                ScoringSeconds = new RolloutScoringSeconds(rewardSeconds, policySeconds, referenceSeconds),
                ImportanceWeights = weights,
                SamplerMetrics = samplerMetrics,
            };
        }
        finally
        {
            if (wasTraining) model.train();
        }
    }

    /// <summary>
    /// The --eval-data prompts sampled with the evaluation settings (--eval-temperature, greedy by
    /// default; --eval-num-generations) and scored with the rewards: the rollout metrics prefixed
    /// eval_ (group stds scaled as <paramref name="scale"/> when there are several completions per prompt).
    /// </summary>
    public Dictionary<string, double> Evaluate(CausalLM model, IReadOnlyList<PromptUnit> units, OnlineOptions options, ScaleRewards scale, TextWriter? log)
    {
        int n = options.EvalNumGenerations;
        // Locally: the policy as trained so far (a remote server holds the adapter of the last rollout).
        var rollout = Sample(local, model, [units], new RolloutSettings
        {
            Generations = n, MaxCompletionLength = options.MaxCompletionLength, Temperature = options.EvalTemperature, TopP = options.TopP, TopK = options.TopK,
            Seed = options.Seed, BatchSize = Math.Max(n, options.BatchSize),
        }, log, "evaluation");
        var groupStd = n > 1 ? GrpoLoss.GroupAdvantages(rollout.Rewards.Total, n, scale).Std : new double[units.Count];
        return GrpoLoss.RolloutMetrics(rewards.Names, rollout.Rewards, groupStd, rollout.CompletionIds.Select(c => c.Count).ToList(),
            rollout.Truncated, prefix: "eval_");
    }

    /// <summary>A part's scored-token values split per completion in the loss.</summary>
    static void Split(float[] flat, Rollout rollout, RolloutPart part, float[]?[] into)
    {
        int t = 0;
        foreach (int i in Rollout.Completions(part).Where(i => rollout.InLoss[i]))
        {
            int length = rollout.CompletionIds[i].Count;
            into[i] = flat.AsSpan(t, length).ToArray();
            t += length;
        }
    }

    /// <summary>
    /// TRL warns when every reward function returned None for a completion; here once per
    /// rollout (<paramref name="when"/>: the step it is for, or the evaluation), with the count
    /// and the first such prompt and completion.
    /// </summary>
    static void WarnUnscorable(TextWriter? log, string when, Rollout rollout)
    {
        int count = rollout.Rewards.Unscorable;
        if (count == 0 || log is null) return;
        int first = Array.FindIndex(rollout.Rewards.Total, double.IsNaN);
        log.WriteLine($"Warning: {when}: every reward function returned null for {count} of {rollout.Count} completions " +
                      $"(reward NaN, left out of the baselines, advantage 0), e.g. prompt \"{Shorten(rollout.PromptTexts[first])}\", " +
                      $"completion \"{Shorten(rollout.CompletionTexts[first])}\"; make sure at least one reward function scores every completion");
    }

    static string Shorten(string s) => s.Length <= 80 ? s : s[..77] + "...";
}
