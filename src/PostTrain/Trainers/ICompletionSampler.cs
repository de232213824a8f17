using PostTrain.Generation;
using PostTrain.Models;

namespace PostTrain.Trainers;

/// <summary>
/// Where a rollout's completions come from: the policy itself (<see cref="LocalCompletionSampler"/>,
/// the generation engine) or an OpenAI-compatible server (<see cref="Remote.RemoteCompletionSampler"/>,
/// vLLM or `posttrain serve`). <see cref="Rollouts"/> scores what either returns the same way.
/// </summary>
public interface ICompletionSampler
{
    /// <summary>
    /// <c>sampling.N</c> completions for each prompt, in prompt order, sampled by the policy as it is
    /// after <paramref name="policyStep"/> optimiser steps (a remote sampler publishes it first when it changed).
    /// </summary>
    Completion[][] Generate(CausalLM model, IReadOnlyList<int[]> prompts, SamplingOptions sampling, int policyStep);

    /// <summary>
    /// Whether another engine sampled, so that <see cref="Completion.LogProbs"/> are its own and not the
    /// trainer's: the importance-sampling correction compares the two.
    /// </summary>
    bool Remote { get; }
}

/// <summary>The policy samples its own completions with the <see cref="GenerationEngine"/>.</summary>
/// <param name="decode">Token ids to text for <see cref="Completion.Text"/>; null: no text.</param>
public sealed class LocalCompletionSampler(Func<IReadOnlyList<int>, string>? decode) : ICompletionSampler
{
    public Completion[][] Generate(CausalLM model, IReadOnlyList<int[]> prompts, SamplingOptions sampling, int policyStep) =>
        new GenerationEngine(model, decode).Generate(prompts, sampling);

    public bool Remote => false;
}
