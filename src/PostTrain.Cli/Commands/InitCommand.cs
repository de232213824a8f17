using System.CommandLine;
using PostTrain.Checkpoints;
using PostTrain.Models;
using PostTrain.Tokenization;
using TorchSharp;

namespace PostTrain.Cli.Commands;

/// <summary>`posttrain init`: a randomly initialised model in Hugging Face layout.</summary>
public static class InitCommand
{
    public static Command Create()
    {
        var arch = new Option<string>("--arch") { Description = "Architecture: qwen2, qwen3 or llama", Required = true };
        arch.AcceptOnlyFromAmong("qwen2", "qwen3", "llama");
        var preset = new Option<string>("--preset") { Description = "Shape: tiny or a real model's (qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b)", DefaultValueFactory = _ => "tiny" };
        preset.AcceptOnlyFromAmong(Preset.Names);
        var layers = new Option<int?>("--layers") { Description = "Number of decoder layers" };
        var hidden = new Option<int?>("--hidden-size") { Description = "Hidden size" };
        var heads = new Option<int?>("--heads") { Description = "Attention heads" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "Key/value heads (grouped-query attention)" };
        var headDim = new Option<int?>("--head-dim") { Description = "Per-head dimension (default: as the preset, or hidden/heads)" };
        var intermediate = new Option<int?>("--intermediate-size") { Description = "MLP intermediate size" };
        var vocab = new Option<int?>("--vocab-size") { Description = "Vocabulary size (default: the tokenizer's, else the preset's)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "Directory with tokenizer.json etc.: copied in; the vocabulary follows it" };
        var output = new Option<string>("--output") { Description = "Output directory", Required = true };
        var seed = new Option<long>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string>("--dtype") { Description = "Saved dtype: float32, bfloat16 or float16 (f32, bf16, f16 also accepted)", DefaultValueFactory = _ => "float32" };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a non-empty output directory" };

        var command = new Command("init", "Create a randomly initialised model in Hugging Face layout")
        {
            arch, preset, layers, hidden, heads, kvHeads, headDim, intermediate, vocab, tokenizer, output, seed, dtype, overwrite,
        };
        command.SetAction(result => Verbs.Guard(result, stdout =>
        {
            var architecture = ModelConfig.ParseArchitecture(result.GetValue(arch)!, field: "--arch");
            // Before any work (a real preset takes seconds to initialise): the save would refuse it.
            var outputDir = result.GetValue(output)!;
            if (!result.GetValue(overwrite) && Directory.Exists(outputDir) && Directory.EnumerateFileSystemEntries(outputDir).Any())
                throw new InputError($"{outputDir}: output directory exists and is not empty (--overwrite replaces it)");
            var p = Preset.Get(result.GetValue(preset)!, architecture);
            var tokenizerDir = result.GetValue(tokenizer);
            HfTokenizer? tok = tokenizerDir is null ? null : HfTokenizer.FromDirectory(tokenizerDir);

            int vocabSize = result.GetValue(vocab)
                ?? (tok is null ? p.VocabSize : p.IsTiny ? tok.VocabSize : Math.Max(p.VocabSize, tok.VocabSize));
            if (tok is not null && vocabSize < tok.VocabSize)
                throw new InputError($"--vocab-size: {vocabSize} is smaller than the tokenizer's {tok.VocabSize} ids");
            int h = result.GetValue(hidden) ?? p.HiddenSize;
            int nHeads = result.GetValue(heads) ?? p.Heads;
            int nKv = result.GetValue(kvHeads) ?? Math.Min(p.KvHeads, nHeads);
            bool shapeChanged = result.GetValue(hidden) is not null || result.GetValue(heads) is not null;
            int hd = result.GetValue(headDim) ?? (shapeChanged ? h / Math.Max(1, nHeads) : p.HeadDim);
            foreach (var (name, value) in new[] { ("--hidden-size", h), ("--heads", nHeads), ("--kv-heads", nKv), ("--head-dim", hd), ("--vocab-size", vocabSize) })
                if (value <= 0) throw new InputError($"{name}: must be positive");
            if (nHeads % nKv != 0) throw new InputError($"--kv-heads: {nKv} does not divide --heads {nHeads}");
            if (hd % 2 != 0) throw new InputError($"--head-dim: {hd} must be even (RoPE rotates pairs)");

            var savedDtype = Dtypes.Parse(result.GetValue(dtype), "--dtype");
            var eos = tok?.EosTokenId is { } e ? new[] { e } : p.EosTokenIds;
            var config = ModelConfig.Create(architecture, vocabSize, h, result.GetValue(intermediate) ?? p.IntermediateSize,
                result.GetValue(layers) ?? p.Layers, nHeads, nKv, hd, p.MaxPositions, p.RopeTheta, p.RopeScaling,
                p.RmsNormEps, p.TieWordEmbeddings, tok is null ? p.BosTokenId : tok.BosTokenId ?? p.BosTokenId, eos,
                Dtypes.Name(savedDtype));

            CheckFitsInMemory(config);
            using var model = new CausalLM(config);
            model.InitializeWeights(result.GetValue(seed));
            var dir = result.GetValue(output)!;
            HfCheckpoint.Save(model, dir, new SaveOptions
            {
                DType = savedDtype,
                CopyFilesFrom = tokenizerDir,
                Overwrite = result.GetValue(overwrite),
            });
            stdout.WriteLine($"Created a {config.ModelType} model ({p.Name} preset, {config.ParameterCount():N0} parameters, " +
                             $"{config.NumHiddenLayers} layers, hidden {config.HiddenSize}, vocab {config.VocabSize}) in {dir}");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// The model's float32 parameters fit in this machine's memory (GC.GetGCMemoryInfo's total
    /// available, which follows a container's limit): sizes beyond it (10^6 layers, a hidden size
    /// of 10^9) are refused before anything is allocated.
    /// </summary>
    static void CheckFitsInMemory(ModelConfig config)
    {
        Int128 parameters = config.DecoderParameterCount() + (config.TieWordEmbeddings ? 0 : (Int128)config.VocabSize * config.HiddenSize);
        Int128 bytes = parameters * 4;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (available > 0 && bytes > available)
            throw new InputError($"--layers, --hidden-size, --intermediate-size, --vocab-size: a model of {parameters:N0} parameters " +
                                 $"({(double)bytes / (1L << 30):N1} GiB in float32) is larger than this machine's {(double)available / (1L << 30):N1} GiB of memory " +
                                 $"({config.NumHiddenLayers:N0} layers, hidden {config.HiddenSize:N0}, intermediate {config.IntermediateSize:N0}, vocab {config.VocabSize:N0})");
    }
}
