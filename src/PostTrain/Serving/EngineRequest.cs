using PostTrain.Generation;

namespace PostTrain.Serving;

/// <summary>
/// One prompt for the <see cref="ServingEngine"/>, sampled <see cref="SamplingOptions.N"/> times.
/// An API request with several prompts submits one of these per prompt, each with its
/// <see cref="PromptIndex"/>, which with the seed decides the random draws
/// (<see cref="SampleRandom"/>): the same request gives the same completions as
/// <see cref="GenerationEngine.Generate"/> over the same prompts and options.
/// </summary>
public sealed record EngineRequest
{
    /// <summary>The prompt's token ids.</summary>
    public required int[] Prompt { get; init; }
    /// <summary>
    /// How to sample (<see cref="SamplingOptions.BatchSize"/> is not used: the engine batches).
    /// <see cref="SamplingOptions.MaxNewTokens"/> may be 0 when <see cref="PromptLogprobs"/> is
    /// set: the prompt is scored and nothing is generated.
    /// </summary>
    public required SamplingOptions Sampling { get; init; }
    /// <summary>The prompt's place in its API request (part of the random key).</summary>
    public int PromptIndex { get; init; }
    /// <summary>A LoRA adapter loaded with <see cref="ServingEngine.LoadAdapter"/>, or null for the base model.</summary>
    public string? Adapter { get; init; }
    /// <summary>Null: no log-probabilities; k: each generated token's, and the k most likely tokens' at its step.</summary>
    public int? Logprobs { get; init; }
    /// <summary>Null: the prompt is not scored; k: each prompt token's log-probability (from the second on) and the k most likely at each position.</summary>
    public int? PromptLogprobs { get; init; }
}

/// <summary>A token and its log-probability.</summary>
public readonly record struct TokenLogprob(int TokenId, float LogProb);

/// <summary>What a submitted request produces, in order, on <see cref="EngineStream.Events"/>.</summary>
public abstract record EngineEvent;

/// <summary>
/// The prompt's scores (only when <see cref="EngineRequest.PromptLogprobs"/> was asked): per
/// prompt token, its log-probability under the model given the tokens before it (null for the
/// first token), and the most likely tokens at that position (null for the first).
/// These are the model's own distribution: no sampling parameter applies to a prompt.
/// </summary>
public sealed record PromptScored(float?[] LogProbs, TokenLogprob[]?[]? Top) : EngineEvent;

/// <summary>
/// A generated token of sample <paramref name="Sample"/>. <paramref name="LogProb"/> is under
/// the distribution it was drawn from (after repetition penalty, temperature, top-k, top-p and
/// min-p), as <see cref="Completion.LogProbs"/>; <paramref name="Top"/> the most likely tokens
/// of that distribution when asked. When the token ends the sample,
/// <paramref name="FinishReason"/> is "stop" or "length" and <paramref name="Text"/> the
/// sample's whole text (without the end-of-sequence token, cut before a stop string), as
/// <see cref="Completion.Text"/>.
/// </summary>
public sealed record TokenGenerated(int Sample, int TokenId, float LogProb, TokenLogprob[]? Top, string? FinishReason, string? Text) : EngineEvent;
