namespace PostTrain.Generation;

/// <summary>
/// The uniform draw behind each sampled token, a pure function of (seed, prompt, sample, token
/// position): SplitMix64's finaliser over the four, the top 24 bits as a float in [0, 1). A
/// completion therefore depends only on its seed, its place in the request and its own logits,
/// not on the other sequences decoded beside it, their number or their order. That is what
/// lets the local <see cref="GenerationEngine"/> and the continuous-batching server
/// (<see cref="Serving.ServingEngine"/>), where requests join and leave the batch at any step,
/// give the same completions for the same seed (vLLM likewise keeps a generator per seeded
/// request rather than one per batch).
/// </summary>
public static class SampleRandom
{
    /// <summary>A uniform draw in [0, 1) for token <paramref name="position"/> (0-based, of the completion) of sample <paramref name="sample"/> of prompt <paramref name="prompt"/>.</summary>
    public static float Uniform(long seed, int prompt, int sample, int position)
    {
        ulong h = Mix((ulong)seed);
        h = Mix(h ^ (uint)prompt);
        h = Mix(h ^ ((ulong)(uint)sample << 32));
        h = Mix(h ^ (uint)position ^ 0x5851F42D4C957F2DUL);
        return (h >> 40) * (1.0f / (1 << 24));
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
