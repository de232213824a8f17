namespace PostTrain.Models;

/// <summary>Shapes for `posttrain init`: a tiny test model and the real models' shapes.</summary>
public sealed record Preset(
    string Name, Architecture Architecture, int VocabSize, int HiddenSize, int IntermediateSize, int Layers,
    int Heads, int KvHeads, int HeadDim, int MaxPositions, double RopeTheta, RopeScaling? RopeScaling,
    double RmsNormEps, bool TieWordEmbeddings, int? BosTokenId, int[] EosTokenIds)
{
    /// <summary>Presets for an architecture. "tiny" exists for every one; real shapes for their own family.</summary>
    public static Preset Get(string name, Architecture arch) => name switch
    {
        "tiny" => Tiny(arch),
        "qwen2.5-0.5b" when arch == Architecture.Qwen2 => new(name, arch, 151936, 896, 4864, 24, 14, 2, 64, 32768,
            1000000.0, null, 1e-6, true, 151643, [151643]),
        "qwen3-0.6b" when arch == Architecture.Qwen3 => new(name, arch, 151936, 1024, 3072, 28, 16, 8, 128, 40960,
            1000000.0, null, 1e-6, true, 151643, [151645]),
        "llama-3.2-1b" when arch == Architecture.Llama => new(name, arch, 128256, 2048, 8192, 16, 32, 8, 64, 131072,
            500000.0, new RopeScaling("llama3", 32.0, 1.0, 4.0, 8192), 1e-5, true, 128000, [128001]),
        "qwen2.5-0.5b" or "qwen3-0.6b" or "llama-3.2-1b" =>
            throw new InputError($"--preset: '{name}' is not a {arch.ToString().ToLowerInvariant()} model (qwen2.5-0.5b is qwen2, qwen3-0.6b is qwen3, llama-3.2-1b is llama)"),
        _ => throw new InputError($"--preset: unknown preset '{name}' (tiny, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b)"),
    };

    public static readonly string[] Names = ["tiny", "qwen2.5-0.5b", "qwen3-0.6b", "llama-3.2-1b"];

    public bool IsTiny => Name == "tiny";

    static Preset Tiny(Architecture arch) => arch switch
    {
        Architecture.Qwen3 => new("tiny", arch, 512, 64, 128, 2, 4, 2, 32, 2048, 1000000.0, null, 1e-6, true, null, []),
        Architecture.Llama => new("tiny", arch, 512, 64, 128, 2, 4, 2, 16, 2048, 500000.0,
            new RopeScaling("llama3", 8.0, 1.0, 4.0, 256), 1e-5, false, null, []),
        _ => new("tiny", arch, 512, 64, 128, 2, 4, 2, 16, 2048, 1000000.0, null, 1e-6, true, null, []),
    };

    public ModelConfig ToConfig(string torchDtype = "float32") => ModelConfig.Create(
        Architecture, VocabSize, HiddenSize, IntermediateSize, Layers, Heads, KvHeads, HeadDim, MaxPositions,
        RopeTheta, RopeScaling, RmsNormEps, TieWordEmbeddings, BosTokenId, EosTokenIds, torchDtype);
}
