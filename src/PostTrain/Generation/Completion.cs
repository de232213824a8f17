namespace PostTrain.Generation;

/// <summary>
/// One generated completion.
/// </summary>
/// <param name="TokenIds">The generated tokens (not the prompt), including the end-of-sequence
/// token when one ended it, and every token up to the one that completed a stop string.</param>
/// <param name="LogProbs">For each token, its log-probability under the distribution it was
/// drawn from: the processed one (after repetition penalty, temperature, top-k, top-p and
/// min-p), which is the model's own only when no processor is active. Greedy decoding: under
/// the model's distribution after the repetition penalty.</param>
/// <param name="FinishReason">"stop" (an end-of-sequence token or a stop string) or "length"
/// (max_new_tokens, or the model's context, reached).</param>
/// <param name="Text">The decoded completion when a decoder was given: without the
/// end-of-sequence token, and cut before a stop string; null otherwise.</param>
public sealed record Completion(int[] TokenIds, float[] LogProbs, string FinishReason, string? Text);

/// <summary>A token as it is produced (for streaming).</summary>
/// <param name="Prompt">Index of the prompt in the request.</param>
/// <param name="Sample">Which of the prompt's n samples.</param>
/// <param name="TokenId">The new token.</param>
/// <param name="Finished">Whether this token ended the completion.</param>
public readonly record struct GeneratedToken(int Prompt, int Sample, int TokenId, bool Finished);
