using System.Diagnostics;
using System.Text.Json.Nodes;
using PostTrain.Evaluation;
using PostTrain.Generation;
using PostTrain.Models;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// Evaluation throughput on a preset's shape (random weights): multiple-choice scoring
/// (documents of --context tokens with --choices continuations of --choice-tokens, through the
/// evaluator's scorer, which prefills each context once) beside `logprobs` scoring the same
/// full sequences, and generate_until decoding at batch 1 and 16 (the generation engine,
/// greedy, --new-tokens per request).
/// Options: --preset qwen2.5-0.5b --docs 16 --context 256 --choices 4 --choice-tokens 4 --batch 16 --new-tokens 32 --dtype f32|bf16
/// </summary>
public sealed class EvalBenchmark : IBenchmark
{
    public string Name => "eval";
    public string Description => "multiple-choice requests/s (vs logprobs on the same tokens) and generate_until tokens/s at batch 1 and 16";

    public JsonObject Run(string[] args)
    {
        var options = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(options.Get("arch", "qwen2"));
        var preset = Preset.Get(options.Get("preset", "qwen2.5-0.5b"), arch);
        int docs = options.GetInt("docs", 16), context = options.GetInt("context", 256), choices = options.GetInt("choices", 4);
        int choiceTokens = options.GetInt("choice-tokens", 4), batch = options.GetInt("batch", 16), newTokens = options.GetInt("new-tokens", 32);
        var dtype = options.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var config = preset.ToConfig();
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        model.eval();
        var random = new Random(1);
        int[] Tokens(int n) => Enumerable.Range(0, n).Select(_ => random.Next(1000, 30000)).ToArray();

        var requests = new List<(int[] Context, int[] Continuation)>();
        for (int d = 0; d < docs; d++)
        {
            var ctx = Tokens(context);
            for (int c = 0; c < choices; c++) requests.Add((ctx, Tokens(choiceTokens)));
        }
        var full = requests.Select(r => r.Context.Concat(r.Continuation).ToArray()).ToList();
        LoglikelihoodScorer.Score(model, requests.Take(choices).ToList(), batch, out _); // warm-up
        double Time(Action a)
        {
            var sw = Stopwatch.StartNew();
            a();
            return sw.Elapsed.TotalSeconds;
        }
        var mc = Enumerable.Range(0, 3).Select(_ => Time(() => LoglikelihoodScorer.Score(model, requests, batch, out _))).ToArray();
        var lp = Enumerable.Range(0, 3).Select(_ => Time(() => TokenScorer.LogProbs(model, full, batch))).ToArray();
        double mcMedian = Stats.Median(mc), lpMedian = Stats.Median(lp);

        var engine = new GenerationEngine(model);
        var generation = new JsonObject();
        foreach (int rows in new[] { 1, 16 })
        {
            var prompts = Enumerable.Range(0, rows).Select(_ => Tokens(64)).ToList();
            var sampling = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, EosTokenIds = [], BatchSize = rows };
            engine.Generate(prompts, sampling with { MaxNewTokens = 2 }); // warm-up
            var t = Stats.Median(Enumerable.Range(0, 2).Select(_ => Time(() => engine.Generate(prompts, sampling))).ToArray());
            generation[$"batch_{rows}_tokens_per_second"] = Math.Round(rows * newTokens / t, 1);
        }

        return new JsonObject
        {
            ["preset"] = preset.Name,
            ["dtype"] = dtype == ScalarType.BFloat16 ? "bf16" : "f32",
            ["threads"] = get_num_threads(),
            ["multiple_choice"] = new JsonObject
            {
                ["documents"] = docs,
                ["context_tokens"] = context,
                ["choices"] = choices,
                ["choice_tokens"] = choiceTokens,
                ["batch"] = batch,
                ["seconds"] = Math.Round(mcMedian, 3),
                ["requests_per_second"] = Math.Round(requests.Count / mcMedian, 2),
                ["logprobs_same_sequences_seconds"] = Math.Round(lpMedian, 3),
                ["logprobs_requests_per_second"] = Math.Round(requests.Count / lpMedian, 2),
                ["speedup_over_logprobs"] = Math.Round(lpMedian / mcMedian, 2),
            },
            ["generate_until"] = generation,
        };
    }
}
