namespace PostTrain.Generation;

/// <summary>
/// How to generate: the sampling parameters of transformers' GenerationConfig (same names and
/// meanings), stopping conditions, samples per prompt and the seed.
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Most tokens generated per completion (fewer when the model's context ends first).</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Softmax temperature; 0 means greedy decoding (no sampling, no warpers).</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep the k most likely tokens; 0 turns it off.</summary>
    public int TopK { get; init; }
    /// <summary>Keep the smallest set of most likely tokens whose probability reaches top_p; 1 turns it off.</summary>
    public double TopP { get; init; } = 1.0;
    /// <summary>Drop tokens less likely than min_p times the most likely one's probability; 0 turns it off.</summary>
    public double MinP { get; init; }
    /// <summary>Divide positive (multiply negative) logits of tokens already in prompt or completion; 1 turns it off.</summary>
    public double RepetitionPenalty { get; init; } = 1.0;
    /// <summary>Completions per prompt; they share one prefill of the prompt.</summary>
    public int N { get; init; } = 1;
    /// <summary>Seed of the sampling generator: the same seed, prompts and options give the same outputs.</summary>
    public long Seed { get; init; }
    /// <summary>Stop strings: generation stops when the completion's text contains one; it and what follows are cut from the text.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>End-of-sequence token ids; null means the model config's (use <see cref="GenerationConfig"/> for generation_config.json's).</summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }
    /// <summary>Most sequences (prompts x n) decoded together; a prompt's n samples are never split.</summary>
    public int BatchSize { get; init; } = 16;

    public bool Greedy => Temperature == 0;

    /// <summary>Checks every value; errors name the CLI option.</summary>
    public void Validate()
    {
        if (MaxNewTokens <= 0) throw new InputError($"--max-new-tokens: must be positive, got {MaxNewTokens}");
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new InputError($"--temperature: must be 0 (greedy) or positive, got {Temperature}");
        if (TopK < 0) throw new InputError($"--top-k: must be 0 (off) or positive, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new InputError($"--top-p: must be in (0, 1], got {TopP}");
        if (!(MinP >= 0 && MinP <= 1)) throw new InputError($"--min-p: must be in [0, 1], got {MinP}");
        if (!(RepetitionPenalty > 0) || double.IsInfinity(RepetitionPenalty)) throw new InputError($"--repetition-penalty: must be positive, got {RepetitionPenalty}");
        if (N <= 0) throw new InputError($"--n: must be positive, got {N}");
        if (BatchSize <= 0) throw new InputError($"--batch-size: must be positive, got {BatchSize}");
        if (Greedy && N > 1) throw new InputError("--n: greedy decoding (--temperature 0) gives the same completion every time; use n = 1 or sample");
        foreach (var s in Stop)
            if (string.IsNullOrEmpty(s)) throw new InputError("--stop: stop strings must not be empty");
    }
}
