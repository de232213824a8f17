using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Cli.Serving;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Serving;
using PostTrain.Tokenization;
using static TorchSharp.torch;

namespace PostTrain.Benchmarks;

/// <summary>
/// `posttrain serve` under concurrent streaming clients over loopback HTTP: for 1, 8 and 32
/// clients (each a /v1/completions stream of --new tokens after a --prompt-token prompt, all
/// sent at once), the total generated tokens/s over the wall time, the time to first token and
/// the time per output token after it (means over clients). Beside it, the local engine
/// (`generate`) on the same prompts at batch 8: end-to-end tokens/s (prefill included, the
/// figure the server's total is set against) and decode-only tokens/s.
/// Options: --arch qwen2 --preset qwen2.5-0.5b --prompt 64 --new 64 --clients 1,8,32
/// --max-batch 32 --dtype f32|bf16 --tokenizer DIR (default: the test fixtures' Qwen3 tokenizer, unpacked).
/// </summary>
public sealed class ServeBenchmark : IBenchmark
{
    public string Name => "serve";
    public string Description => "OpenAI-server throughput, time to first token and per-token latency at 1, 8 and 32 concurrent streaming clients vs generate at batch 8";

    public JsonObject Run(string[] args)
    {
        var options = Options.Parse(args);
        var arch = ModelConfig.ParseArchitecture(options.Get("arch", "qwen2"));
        var config = options.Shape(Preset.Get(options.Get("preset", "qwen2.5-0.5b"), arch).ToConfig());
        int promptLen = options.GetInt("prompt", 64), newTokens = options.GetInt("new", 64), maxBatch = options.GetInt("max-batch", 32);
        var clientCounts = options.Get("clients", "1,8,32").Split(',').Select(int.Parse).ToArray();
        var dtype = options.Get("dtype", "f32") == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        var tokenizerDir = options.Get("tokenizer", "") is { Length: > 0 } given ? given : TokenizerBenchmark.Unpack("qwen3");
        var tokenizer = HfTokenizer.FromDirectory(tokenizerDir);
        using var model = new CausalLM(config, dtype);
        model.InitializeWeights(0);
        var random = new Random(1);
        int vocab = Math.Min(config.VocabSize, 150000);
        int[] Prompt() => Enumerable.Range(0, promptLen).Select(_ => random.Next(1000, vocab)).ToArray();

        var result = new JsonObject
        {
            ["arch"] = arch.ToString(), ["layers"] = config.NumHiddenLayers, ["hidden"] = config.HiddenSize, ["dtype"] = dtype.ToString(),
            ["prompt_tokens"] = promptLen, ["new_tokens"] = newTokens, ["max_batch"] = maxBatch, ["threads"] = get_num_threads(),
        };

        // The local engine at batch 8, same lengths, sampled (temperature 1), no eos.
        var local = new GenerationEngine(model);
        var sampling = new SamplingOptions { Temperature = 1, MaxNewTokens = newTokens, EosTokenIds = [], BatchSize = 8, Seed = 1 };
        local.Generate([Prompt()], sampling with { MaxNewTokens = 4 }); // warm-up
        double bestEndToEnd = 0, bestDecode = 0;
        for (int r = 0; r < 2; r++)
        {
            var prompts = Enumerable.Range(0, 8).Select(_ => Prompt()).ToArray();
            var clock = Stopwatch.StartNew();
            local.Generate(prompts, sampling);
            bestEndToEnd = Math.Max(bestEndToEnd, 8.0 * newTokens / clock.Elapsed.TotalSeconds);
            bestDecode = Math.Max(bestDecode, local.LastStats.DecodeRowTokens / local.LastStats.DecodeSeconds);
        }
        var one = Stopwatch.StartNew();
        local.Generate([Prompt()], sampling);
        result["generate_batch1_tokens_per_s"] = Math.Round(newTokens / one.Elapsed.TotalSeconds, 2);
        result["generate_batch8_tokens_per_s"] = Math.Round(bestEndToEnd, 2);
        result["generate_batch8_decode_tokens_per_s"] = Math.Round(bestDecode, 2);

        using var served = ServedModel.FromModel("bench", model, tokenizer, tokenizerDir, new ServingEngineOptions { MaxBatch = maxBatch, MaxModelLength = promptLen + newTokens + 8 });
        var server = OpenAiServer.StartAsync(served, new ServerOptions { Port = 0, HandleSignals = false }).GetAwaiter().GetResult();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
            var url = new Uri(server.Address, "v1/completions");
            Client(http, url, Prompt(), 4, 0).GetAwaiter().GetResult(); // warm-up
            var rows = new JsonArray();
            foreach (int clients in clientCounts)
            {
                var before = (served.Engine.Stats.PrefillSeconds, served.Engine.Stats.DecodeSeconds, served.Engine.Stats.DecodeSteps, served.Engine.Stats.DecodeRowTokens);
                var clock = Stopwatch.StartNew();
                var runs = Enumerable.Range(0, clients).Select(i => Client(http, url, Prompt(), newTokens, i)).ToArray();
                var stats = Task.WhenAll(runs).GetAwaiter().GetResult();
                double wall = clock.Elapsed.TotalSeconds;
                int tokens = stats.Sum(s => s.Tokens);
                var row = new JsonObject
                {
                    ["clients"] = clients,
                    ["total_tokens_per_s"] = Math.Round(tokens / wall, 2),
                    ["ttft_ms_mean"] = Math.Round(stats.Average(s => s.FirstToken) * 1000, 1),
                    ["ttft_ms_max"] = Math.Round(stats.Max(s => s.FirstToken) * 1000, 1),
                    ["tpot_ms_mean"] = Math.Round(stats.Average(s => s.PerToken) * 1000, 1),
                    ["wall_s"] = Math.Round(wall, 2),
                    ["tokens"] = tokens,
                    // The engine's own time: prefills, and decode steps (sampling and forwards) with their mean batch.
                    ["engine_prefill_s"] = Math.Round(served.Engine.Stats.PrefillSeconds - before.PrefillSeconds, 2),
                    ["engine_decode_s"] = Math.Round(served.Engine.Stats.DecodeSeconds - before.DecodeSeconds, 2),
                    ["engine_mean_batch"] = Math.Round((double)(served.Engine.Stats.DecodeRowTokens - before.DecodeRowTokens) / Math.Max(1, served.Engine.Stats.DecodeSteps - before.DecodeSteps), 2),
                };
                if (clients == 8) result["serve8_vs_generate8"] = Math.Round(tokens / wall / bestEndToEnd, 3);
                rows.Add(row);
            }
            result["serve"] = rows;
            result["mean_decode_batch"] = Math.Round((double)served.Engine.Stats.DecodeRowTokens / Math.Max(1, served.Engine.Stats.DecodeSteps), 2);
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        return result;
    }

    // One streaming client: seconds to the first token, mean seconds per token after it, tokens received.
    static async Task<(double FirstToken, double PerToken, int Tokens)> Client(HttpClient http, Uri url, int[] prompt, int newTokens, int seed)
    {
        var body = new JsonObject
        {
            ["prompt"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray()), ["max_tokens"] = newTokens, ["temperature"] = 1.0,
            ["seed"] = seed, ["ignore_eos"] = true, ["stream"] = true, ["return_token_ids"] = true,
        };
        var clock = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double first = -1, last = 0;
        int tokens = 0;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: {\"error\"", StringComparison.Ordinal)) throw new InvalidOperationException($"the server answered an error: {line}");
            if (!line.StartsWith("data: {", StringComparison.Ordinal)) continue;
            var chunk = JsonNode.Parse(line[6..])!;
            if (chunk["choices"]?[0]?["token_ids"] is JsonArray ids)
            {
                tokens += ids.Count;
                last = clock.Elapsed.TotalSeconds;
                if (first < 0) first = last;
            }
        }
        return (first, tokens > 1 ? (last - first) / (tokens - 1) : 0, tokens);
    }
}
