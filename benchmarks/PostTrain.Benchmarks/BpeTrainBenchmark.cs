using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Tokenization;

namespace PostTrain.Benchmarks;

/// <summary>
/// <see cref="BpeTrainer"/> wall time (one thread) on ~2 MB of text: TokenizerBenchmark's mixed
/// text (prose, code, numbers, other scripts, emoji), fed one line (with its ending) per sequence,
/// as Hugging Face's train(files) reads a file. Writes the text and the first --compare-merges
/// merges learned with MinFrequency 0 so that tests/reference/bpe_goldens.mjs --compare can check
/// them against HF's BpeTrainer on the same file.
/// Options: --mb N (default 2), --merges N,N (default 400,800), --passes N (default 3),
/// --text-out PATH, --merges-out PATH, --compare-merges N (default 5000).
/// </summary>
public sealed class BpeTrainBenchmark : IBenchmark
{
    public string Name => "bpe-train";
    public string Description => "BpeTrainer seconds to learn 400/800 merges from ~2 MB of text";

    public JsonObject Run(string[] args)
    {
        int mb = 2, passes = 3, compare = 5000;
        int[] mergeCounts = [400, 800];
        string textOut = Path.Combine(Path.GetTempPath(), "posttrain-bpe-bench.txt");
        string mergesOut = Path.Combine(Path.GetTempPath(), "posttrain-bpe-bench-merges.txt");
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--mb": mb = int.Parse(args[++i]); break;
                case "--merges": mergeCounts = [.. args[++i].Split(',').Select(int.Parse)]; break;
                case "--passes": passes = int.Parse(args[++i]); break;
                case "--text-out": textOut = args[++i]; break;
                case "--merges-out": mergesOut = args[++i]; break;
                case "--compare-merges": compare = int.Parse(args[++i]); break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        var text = TokenizerBenchmark.BuildText(mb * 1_000_000);
        File.WriteAllText(textOut, text, new UTF8Encoding(false));
        var lines = Lines(text);
        var result = new JsonObject
        {
            ["text_file"] = textOut,
            ["text_mb"] = Math.Round(Encoding.UTF8.GetByteCount(text) / 1e6, 2),
            ["sequences"] = lines.Count,
            ["threads"] = 1,
        };
        var dir = Path.Combine(Path.GetTempPath(), "posttrain-bpe-bench-out");
        var cold = Stopwatch.StartNew();
        BpeTrainer.Train(lines, dir, new BpeTrainerOptions(mergeCounts[0]));
        result["cold_s"] = Math.Round(cold.Elapsed.TotalSeconds, 3);
        foreach (var merges in mergeCounts)
        {
            var times = new List<double>();
            for (int p = 0; p < passes; p++)
            {
                var sw = Stopwatch.StartNew();
                BpeTrainer.Train(lines, dir, new BpeTrainerOptions(merges));
                times.Add(sw.Elapsed.TotalSeconds);
            }
            times.Sort();
            result[$"merges_{merges}_s"] = Math.Round(times[times.Count / 2], 3);
        }
        // Where the time goes: counting words (pre-tokenizing) alone, i.e. no merges.
        var count = Stopwatch.StartNew();
        BpeTrainer.Learn(lines, new BpeTrainerOptions(0));
        result["count_words_s"] = Math.Round(count.Elapsed.TotalSeconds, 3);

        var (_, learned) = BpeTrainer.Learn(lines, new BpeTrainerOptions(compare, MinFrequency: 0));
        File.WriteAllLines(mergesOut, learned.Select(m => m.A + " " + m.B), new UTF8Encoding(false));
        result["merges_file"] = mergesOut;
        result["merges_written"] = learned.Count;
        return result;
    }

    /// <summary>Lines with their line endings, as tokenizers' train(files) reads them.</summary>
    static List<string> Lines(string text)
    {
        var lines = new List<string>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
            if (text[i] == '\n') { lines.Add(text[start..(i + 1)]); start = i + 1; }
        if (start < text.Length) lines.Add(text[start..]);
        return lines;
    }
}
