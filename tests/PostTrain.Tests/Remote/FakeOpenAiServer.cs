using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Tokenization;
using static TorchSharp.torch;

namespace PostTrain.Tests.Remote;

/// <summary>
/// An OpenAI-compatible server for the tests (System.Net.HttpListener on loopback), answering in
/// the shape vLLM does: GET /v1/models; POST /v1/completions with token-id or text prompts, n,
/// seed, sampling settings, vLLM's return_token_ids and stop_token_ids, logprobs and echo (the
/// prompt's token_logprobs, top_logprobs, tokens and text_offset); POST /v1/load_lora_adapter and
/// /v1/unload_lora_adapter (vLLM's runtime LoRA endpoints), which it records and which load the
/// adapter into its model. Completions come from the real <see cref="GenerationEngine"/> on the
/// model of a directory, batched as the trainer batches a rollout, so they equal local sampling.
/// It can be told to fail the next requests (a status with an OpenAI error, an answer that is not
/// JSON, a slow answer); a server that is down is a port nothing listens on (<see cref="FreePort"/>). Requests are answered one at a time.
/// </summary>
public sealed class FakeOpenAiServer : IDisposable
{
    /// <summary>How the next request fails.</summary>
    public abstract record Fault;
    public sealed record Status(int Code, string Message) : Fault;
    public sealed record Garbage(string Body) : Fault;
    /// <summary>Answers normally after a pause.</summary>
    public sealed record Slow(int Milliseconds) : Fault;

    readonly HttpListener listener = new();
    readonly CausalLM model;
    readonly HfTokenizer tokenizer;
    readonly string servedName;
    readonly Thread loop;
    readonly Queue<Fault> faults = new();
    readonly Dictionary<string, string> adapters = new();
    readonly object gate = new();
    string? activeAdapter;

    public FakeOpenAiServer(string modelDir, string servedName = "tiny", string? apiKey = null)
    {
        model = HfCheckpoint.Load(modelDir);
        model.eval();
        tokenizer = HfTokenizer.FromDirectory(modelDir);
        this.servedName = servedName;
        ApiKey = apiKey;
        int port = FreePort();
        Url = $"http://127.0.0.1:{port}";
        listener.Prefixes.Add(Url + "/");
        listener.Start();
        loop = new Thread(Serve) { IsBackground = true };
        loop.Start();
    }

    public string Url { get; }
    public string? ApiKey { get; }
    /// <summary>Every request: its path and JSON body (null for GET).</summary>
    public List<(string Path, JsonObject? Body)> Requests { get; } = [];
    /// <summary>Adapters loaded: name, path, and whether the path held adapter_model.safetensors then.</summary>
    public List<(string Name, string Path, bool HadWeights)> Loaded { get; } = [];
    public List<string> Unloaded { get; } = [];
    /// <summary>Added to every generated token's log-probability: a server whose numbers differ from the trainer's.</summary>
    public double LogprobShift { get; set; }

    /// <summary>The next requests fail as given, in order.</summary>
    public void FailNext(params Fault[] next)
    {
        lock (gate) foreach (var f in next) faults.Enqueue(f);
    }

    /// <summary>A loopback port nothing listens on now.</summary>
    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    void Serve()
    {
        while (listener.IsListening)
        {
            HttpListenerContext context;
            try { context = listener.GetContext(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            try { Handle(context); }
            catch (Exception e)
            {
                try { Reply(context.Response, 500, Error(e.GetType().Name + ": " + e.Message)); }
                catch (Exception e2) when (e2 is HttpListenerException or ObjectDisposedException or InvalidOperationException) { }
            }
        }
    }

    static JsonObject Error(string message, string type = "BadRequestError") => new() { ["error"] = new JsonObject { ["message"] = message, ["type"] = type } };

    static void Reply(HttpListenerResponse response, int status, JsonObject body) => Reply(response, status, body.ToJsonString());

    static void Reply(HttpListenerResponse response, int status, string body)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        response.StatusCode = status;
        response.ContentType = "application/json";
        response.ContentLength64 = bytes.Length;
        response.OutputStream.Write(bytes);
        response.Close();
    }

    void Handle(HttpListenerContext context)
    {
        var path = context.Request.Url!.AbsolutePath;
        JsonObject? body = null;
        if (context.Request.HttpMethod == "POST")
        {
            using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
            body = JsonNode.Parse(reader.ReadToEnd()) as JsonObject;
        }
        Fault? fault;
        lock (gate)
        {
            Requests.Add((path, body));
            faults.TryDequeue(out fault);
        }
        switch (fault)
        {
            case Status s: Reply(context.Response, s.Code, Error(s.Message)); return;
            case Garbage g: Reply(context.Response, 200, g.Body); return;
            case Slow slow: Thread.Sleep(slow.Milliseconds); break;
        }
        if (ApiKey is not null && context.Request.Headers["Authorization"] != $"Bearer {ApiKey}")
        {
            Reply(context.Response, 401, Error("Unauthorized", "AuthenticationError"));
            return;
        }
        (int, object) answer = (context.Request.HttpMethod, path) switch
        {
            ("GET", "/v1/models") => (200, new JsonObject { ["object"] = "list", ["data"] = new JsonArray(new JsonObject { ["id"] = servedName, ["object"] = "model" }) }),
            ("POST", "/v1/completions") => Completions(body!),
            ("POST", "/v1/load_lora_adapter") => LoadAdapter(body!),
            ("POST", "/v1/unload_lora_adapter") => UnloadAdapter(body!),
            _ => (404, Error($"{path}: not found", "NotFoundError")),
        };
        Reply(context.Response, answer.Item1, answer.Item2 is string text ? text : ((JsonObject)answer.Item2).ToJsonString());
    }

    (int, object) LoadAdapter(JsonObject body)
    {
        var name = body["lora_name"]!.GetValue<string>();
        var dir = body["lora_path"]!.GetValue<string>();
        bool hadWeights = File.Exists(Path.Combine(dir, PeftAdapter.WeightsFile));
        Loaded.Add((name, dir, hadWeights));
        if (adapters.ContainsKey(name)) return (400, Error($"The lora adapter '{name}' has already been loaded."));
        if (!hadWeights) return (400, Error($"Loading lora {name} failed: No adapter found for {dir}"));
        adapters[name] = dir;
        return (200, $"Success: LoRA adapter '{name}' added successfully."); // vLLM answers plain text
    }

    (int, object) UnloadAdapter(JsonObject body)
    {
        var name = body["lora_name"]!.GetValue<string>();
        Unloaded.Add(name);
        if (!adapters.Remove(name)) return (404, Error($"The lora adapter '{name}' cannot be found.", "NotFoundError"));
        return (200, $"Success: LoRA adapter '{name}' removed successfully.");
    }

    /// <summary>Puts the named model in place: the base, or an adapter's weights (read from its directory now, as vLLM reads it at load).</summary>
    bool Select(string name)
    {
        if (name == servedName) return model.Lora is null;
        if (!adapters.TryGetValue(name, out var dir)) return false;
        if (activeAdapter == name) return true;
        if (model.Lora is null) PeftAdapter.Load(model, dir);
        else PeftAdapter.LoadWeights(model, dir);
        model.eval();
        activeAdapter = name;
        return true;
    }

    (int, JsonObject) Completions(JsonObject body)
    {
        var name = body["model"]?.GetValue<string>() ?? "";
        if (!Select(name)) return (404, Error($"The model `{name}` does not exist.", "NotFoundError"));
        var prompts = Prompts(body["prompt"]!);
        int n = body["n"]?.GetValue<int>() ?? 1;
        int maxTokens = body["max_tokens"]?.GetValue<int>() ?? 16;
        bool echo = body["echo"]?.GetValue<bool>() ?? false;
        int? logprobs = body["logprobs"]?.GetValue<int>();
        bool returnIds = body["return_token_ids"]?.GetValue<bool>() ?? false;
        var eos = model.Config.EosTokenIds.ToList();
        if (body["stop_token_ids"] is JsonArray stopIds) eos.AddRange(stopIds.Select(t => t!.GetValue<int>()));
        var stop = body["stop"] switch
        {
            JsonArray a => a.Select(s => s!.GetValue<string>()).ToList(),
            JsonValue v => [v.GetValue<string>()],
            _ => new List<string>(),
        };
        int topK = body["top_k"]?.GetValue<int>() ?? 0;
        var sampling = new SamplingOptions
        {
            MaxNewTokens = maxTokens, Temperature = body["temperature"]?.GetValue<double>() ?? 1.0, TopP = body["top_p"]?.GetValue<double>() ?? 1.0,
            TopK = topK < 0 ? 0 : topK, N = n, Seed = body["seed"]?.GetValue<long>() ?? 0, EosTokenIds = eos.Distinct().ToList(), Stop = stop,
            BatchSize = Math.Max(n, prompts.Count * n),
        };
        var completions = new GenerationEngine(model, ids => tokenizer.Decode(ids, skipSpecialTokens: true)).Generate(prompts, sampling);
        var choices = new JsonArray();
        for (int p = 0; p < prompts.Count; p++)
            for (int j = 0; j < n; j++)
            {
                var c = completions[p][j];
                var choice = new JsonObject
                {
                    ["index"] = p * n + j,
                    ["text"] = (echo ? tokenizer.Decode(prompts[p], skipSpecialTokens: true) : "") + c.Text,
                    ["finish_reason"] = c.FinishReason,
                };
                if (logprobs is { } k) choice["logprobs"] = Logprobs(echo ? prompts[p] : [], c, k);
                if (returnIds)
                {
                    choice["token_ids"] = new JsonArray(c.TokenIds.Select(t => (JsonNode)t).ToArray());
                    choice["prompt_token_ids"] = new JsonArray(prompts[p].Select(t => (JsonNode)t).ToArray());
                }
                choices.Add(choice);
            }
        return (200, new JsonObject
        {
            ["id"] = "cmpl-fake", ["object"] = "text_completion", ["model"] = name, ["choices"] = choices,
            ["usage"] = new JsonObject { ["prompt_tokens"] = prompts.Sum(p => p.Length), ["completion_tokens"] = completions.Sum(c => c.Sum(x => x.TokenIds.Length)) },
        });
    }

    List<int[]> Prompts(JsonNode prompt) => prompt switch
    {
        JsonValue v => [tokenizer.Encode(v.GetValue<string>(), addSpecialTokens: true)],
        JsonArray a when a.Count > 0 && a[0] is JsonValue first && first.TryGetValue<int>(out _) => [a.Select(t => t!.GetValue<int>()).ToArray()],
        JsonArray a => a.Select(x => x is JsonArray ids ? ids.Select(t => t!.GetValue<int>()).ToArray() : tokenizer.Encode(x!.GetValue<string>(), addSpecialTokens: true)).ToList(),
        _ => throw new InvalidOperationException("prompt: expected a string, token ids or a list of either"),
    };

    /// <summary>
    /// OpenAI's completions logprobs: per token (the echoed prompt's first, then the generated ones)
    /// its text, log-probability (null for the first prompt token), the top-k alternatives with it
    /// (k = <paramref name="k"/>, the token itself always included, as vLLM) and its text offset.
    /// </summary>
    JsonObject Logprobs(int[] prompt, Completion completion, int k)
    {
        var tokens = new JsonArray();
        var logps = new JsonArray();
        var tops = new JsonArray();
        var offsets = new JsonArray();
        int offset = 0;
        void Add(int id, double? lp, JsonObject? top)
        {
            var text = tokenizer.Decode([id], skipSpecialTokens: false);
            tokens.Add(text);
            logps.Add(lp);
            tops.Add(top);
            offsets.Add(offset);
            offset += text.Length;
        }
        if (prompt.Length > 0)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var all = model.Forward(tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Length])).log_softmax(-1)[0].to(ScalarType.Float64);
            Add(prompt[0], null, null);
            for (int t = 1; t < prompt.Length; t++)
            {
                var row = all[t - 1];
                double lp = row[prompt[t]].item<double>();
                var top = new JsonObject();
                if (k > 0)
                {
                    var (values, indices) = row.topk(k);
                    for (int j = 0; j < k; j++) top[tokenizer.Decode([(int)indices[j].item<long>()], skipSpecialTokens: false)] = values[j].item<double>();
                }
                top[tokenizer.Decode([prompt[t]], skipSpecialTokens: false)] = lp;
                Add(prompt[t], lp, top);
            }
        }
        for (int t = 0; t < completion.TokenIds.Length; t++)
        {
            double lp = completion.LogProbs[t] + LogprobShift;
            Add(completion.TokenIds[t], lp, new JsonObject { [tokenizer.Decode([completion.TokenIds[t]], skipSpecialTokens: false)] = lp });
        }
        return new JsonObject { ["tokens"] = tokens, ["token_logprobs"] = logps, ["top_logprobs"] = tops, ["text_offset"] = offsets };
    }

    public void Dispose()
    {
        listener.Stop();
        listener.Close();
        loop.Join(TimeSpan.FromSeconds(5));
        model.Dispose();
    }
}
