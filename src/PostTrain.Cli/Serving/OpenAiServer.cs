using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using PostTrain.Generation;
using PostTrain.Serving;

namespace PostTrain.Cli.Serving;

/// <summary>How <see cref="OpenAiServer"/> listens.</summary>
public sealed record ServerOptions
{
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>0: any free port (see <see cref="OpenAiServer.Address"/>).</summary>
    public int Port { get; init; } = 8000;
    /// <summary>When set, /v1 requests need "Authorization: Bearer KEY".</summary>
    public string? ApiKey { get; init; }
    /// <summary>Largest request body; a larger one is answered 413.</summary>
    public long MaxBodyBytes { get; init; } = 16 << 20;
    /// <summary>After SIGTERM or SIGINT, how long requests in flight may take to finish.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>"hermes": chat answers' &lt;tool_call&gt; blocks become tool_calls when the request has tools (vLLM's --tool-call-parser); null: text as it is.</summary>
    public string? ToolCallParser { get; init; }
    /// <summary>Stop on SIGTERM/SIGINT (the CLI); off for a server started inside a test.</summary>
    public bool HandleSignals { get; init; } = true;
}

/// <summary>
/// `posttrain serve`: an OpenAI-compatible HTTP server (Kestrel) over a <see cref="ServedModel"/>,
/// speaking the protocol as OpenAI defines it and as vLLM extends it: /v1/models,
/// /v1/completions, /v1/chat/completions (both streaming as server-sent events), vLLM's runtime
/// LoRA endpoints and /health. Concurrent requests share decode steps (the engine's continuous
/// batching); a client that disconnects cancels its request; every bad request gets an
/// OpenAI-shaped error and the server keeps serving.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    readonly WebApplication app;
    readonly ServedModel served;
    readonly Dictionary<string, string> adapterPaths = new(StringComparer.Ordinal);
    readonly long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    readonly bool parseToolCalls;

    OpenAiServer(WebApplication app, ServedModel served, bool parseToolCalls)
    {
        this.app = app;
        this.served = served;
        this.parseToolCalls = parseToolCalls;
    }

    /// <summary>The address the server listens on, e.g. http://127.0.0.1:8000.</summary>
    public Uri Address { get; private set; } = null!;

    public ServedModel Served => served;

    /// <summary>Starts listening; the adapters in <paramref name="adapters"/> (name, directory) are loaded first.</summary>
    public static async Task<OpenAiServer> StartAsync(ServedModel served, ServerOptions options, IEnumerable<(string Name, string Dir)>? adapters = null)
    {
        if (options.ToolCallParser is not (null or "hermes"))
            throw new InputError($"--tool-call-parser: '{options.ToolCallParser}' is not known (hermes: Qwen's and Hermes' <tool_call> blocks)");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.ShutdownTimeout);
        if (!options.HandleSignals) builder.Services.AddSingleton<IHostLifetime, QuietLifetime>();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            var ip = options.Host is "localhost" ? IPAddress.Loopback
                : IPAddress.TryParse(options.Host, out var parsed) ? parsed
                : throw new InputError($"--host: '{options.Host}' is not an IP address (use 127.0.0.1, 0.0.0.0 or ::)");
            k.Listen(ip, options.Port);
        });
        var app = builder.Build();
        var server = new OpenAiServer(app, served, options.ToolCallParser is not null);
        foreach (var (name, dir) in adapters ?? [])
        {
            if (name == served.Name) throw new InputError($"--adapter: '{name}' is the base model's name");
            served.Engine.LoadAdapter(name, dir);
            server.adapterPaths[name] = dir;
        }
        server.Map(options.ApiKey);
        try
        {
            await app.StartAsync();
        }
        catch (IOException e)
        {
            throw new InputError($"--port: cannot listen on {options.Host}:{options.Port}: {e.Message}");
        }
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Address = new Uri(address.Replace("[::]", "localhost"));
        return server;
    }

    /// <summary>Completes when the host stops (SIGTERM, SIGINT or <see cref="StopAsync"/>), after requests in flight have finished.</summary>
    public Task WaitForShutdownAsync() => app.WaitForShutdownAsync();

    public Task StopAsync() => app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    void Map(string? apiKey)
    {
        app.Use(async (context, next) =>
        {
            try
            {
                if (apiKey is not null && context.Request.Path.StartsWithSegments("/v1") &&
                    context.Request.Headers.Authorization.ToString() != $"Bearer {apiKey}")
                    throw new ApiError(401, "Incorrect API key provided.", null, "invalid_request_error", "invalid_api_key");
                await next(context);
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                var error = AsApiError(e);
                context.Response.StatusCode = error.Status;
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync(error.Body().ToJsonString(Compact));
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away mid-stream: nothing to answer.
            }
        });
        app.MapGet("/health", () => Results.Ok());
        app.MapGet("/v1/models", () => Results.Json(Models(), Compact));
        app.MapPost("/v1/completions", Completions);
        app.MapPost("/v1/chat/completions", ChatCompletions);
        app.MapPost("/v1/load_lora_adapter", LoadAdapter);
        app.MapPost("/v1/unload_lora_adapter", UnloadAdapter);
        app.MapFallback(context => throw new ApiError(404, $"{context.Request.Method} {context.Request.Path}: no such endpoint", null, "not_found_error"));
    }

    static ApiError AsApiError(Exception e) => e switch
    {
        ApiError a => a,
        InputError i => new ApiError(400, i.Message),
        BadHttpRequestException b when b.StatusCode == 413 => new ApiError(413, "the request body is too large", null, "invalid_request_error", "request_too_large"),
        BadHttpRequestException b => new ApiError(b.StatusCode, b.Message),
        _ => new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}", null, "internal_server_error"),
    };

    JsonObject Models()
    {
        var data = new JsonArray
        {
            new JsonObject
            {
                ["id"] = served.Name, ["object"] = "model", ["created"] = created, ["owned_by"] = "posttrain",
                ["root"] = served.Directory, ["parent"] = null, ["max_model_len"] = served.Engine.MaxModelLength,
            },
        };
        lock (adapterPaths)
            foreach (var name in served.Engine.Adapters)
                data.Add(new JsonObject
                {
                    ["id"] = name, ["object"] = "model", ["created"] = created, ["owned_by"] = "posttrain",
                    ["root"] = adapterPaths.GetValueOrDefault(name), ["parent"] = served.Name,
                });
        return new JsonObject { ["object"] = "list", ["data"] = data };
    }

    static async Task<ApiRequest> ReadBody(HttpContext context)
    {
        JsonNode? node;
        try
        {
            node = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted);
        }
        catch (JsonException e)
        {
            throw new ApiError(400, $"the request body is not valid JSON: {e.Message.Split('\n')[0]}");
        }
        return node is JsonObject o ? new ApiRequest(o) : throw new ApiError(400, "the request body must be a JSON object");
    }

    // The model a request names: null for the base (or no name), else a loaded adapter.
    string? Adapter(ApiRequest request)
    {
        var name = request.String("model");
        if (name is null || name == served.Name) return null;
        if (served.Engine.Adapters.Contains(name)) return name;
        throw new ApiError(404, $"The model `{name}` does not exist.", "model", "NotFoundError", "model_not_found");
    }

    async Task LoadAdapter(HttpContext context)
    {
        var request = await ReadBody(context);
        var name = request.String("lora_name") ?? throw ApiError.Bad("lora_name", "required");
        var path = request.String("lora_path") ?? throw ApiError.Bad("lora_path", "required");
        if (name == served.Name) throw ApiError.Bad("lora_name", $"'{name}' is the base model's name");
        served.Engine.LoadAdapter(name, path);
        lock (adapterPaths) adapterPaths[name] = path;
        await context.Response.WriteAsync($"Success: LoRA adapter '{name}' added successfully.");
    }

    async Task UnloadAdapter(HttpContext context)
    {
        var request = await ReadBody(context);
        var name = request.String("lora_name") ?? throw ApiError.Bad("lora_name", "required");
        served.Engine.UnloadAdapter(name);
        lock (adapterPaths) adapterPaths.Remove(name);
        await context.Response.WriteAsync($"Success: LoRA adapter '{name}' removed successfully.");
    }

    // The prompts of a completions request: a string, a list of strings, a list of token ids or a list of such lists.
    List<(int[] Ids, string? Text)> Prompts(ApiRequest request)
    {
        var node = request.Body["prompt"] ?? throw ApiError.Bad("prompt", "required");
        var prompts = new List<(int[], string?)>();
        static bool IsInt(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<int>(out _);
        static int[] Ids(JsonArray a) => a.Select(n => IsInt(n) ? n!.GetValue<int>() : throw ApiError.Bad("prompt", "a list of token ids must hold integers only")).ToArray();
        switch (node)
        {
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                var text = v.GetValue<string>();
                prompts.Add((served.EncodePrompt(text), text));
                break;
            case JsonArray { Count: 0 }:
                throw ApiError.Bad("prompt", "empty list");
            case JsonArray a when IsInt(a[0]):
                prompts.Add((Ids(a), null));
                break;
            case JsonArray a:
                foreach (var item in a)
                    switch (item)
                    {
                        case JsonValue s when s.GetValueKind() == JsonValueKind.String:
                            prompts.Add((served.EncodePrompt(s.GetValue<string>()), s.GetValue<string>()));
                            break;
                        case JsonArray ids:
                            prompts.Add((Ids(ids), null));
                            break;
                        default: throw ApiError.Bad("prompt", "expected a string, a list of strings, a list of token ids or a list of lists of token ids");
                    }
                break;
            default: throw ApiError.Bad("prompt", "expected a string, a list of strings, a list of token ids or a list of lists of token ids");
        }
        foreach (var (ids, _) in prompts)
            if (ids.Length == 0) throw ApiError.Bad("prompt", "a prompt has no tokens");
        return prompts;
    }

    // Submits one engine request per prompt; on an error, the ones already submitted are cancelled.
    List<EngineStream> Submit(List<int[]> prompts, SamplingOptions sampling, string? adapter, int? logprobs, int? promptLogprobs, CancellationTokenSource cancel)
    {
        var streams = new List<EngineStream>();
        try
        {
            for (int p = 0; p < prompts.Count; p++)
                streams.Add(served.Engine.Submit(new EngineRequest
                {
                    Prompt = prompts[p], Sampling = sampling, PromptIndex = p, Adapter = adapter, Logprobs = logprobs, PromptLogprobs = promptLogprobs,
                }, cancel.Token));
        }
        catch (InputError e)
        {
            cancel.Cancel();
            var param = e.Message.StartsWith("This model's maximum context length", StringComparison.Ordinal) ? "messages" : null;
            throw new ApiError(400, prompts.Count > 1 ? $"prompt {streams.Count}: {e.Message}" : e.Message, param);
        }
        return streams;
    }

    // Default max_tokens: completions 16 (OpenAI's legacy default, vLLM's), chat what the context leaves.
    int LeftInContext(IEnumerable<int[]> prompts) => Math.Max(1, served.Engine.MaxModelLength - prompts.Max(p => p.Length));

    /// <summary>A choice's events as (choice index, event), all choices merged in arrival order.</summary>
    static ChannelReader<(int Choice, EngineEvent Event)> Merge(List<EngineStream> streams, int n, CancellationToken cancel)
    {
        var merged = Channel.CreateUnbounded<(int, EngineEvent)>();
        var pumps = streams.Select((s, p) => Task.Run(async () =>
        {
            await foreach (var e in s.Events.ReadAllAsync(cancel))
                await merged.Writer.WriteAsync((e is TokenGenerated t ? p * n + t.Sample : p * n, e), cancel);
        }, cancel)).ToArray();
        _ = Task.WhenAll(pumps).ContinueWith(t => merged.Writer.TryComplete(t.Exception?.InnerException), TaskScheduler.Default);
        return merged.Reader;
    }

    sealed class Choice
    {
        public readonly List<int> Tokens = [];
        public readonly List<float> LogProbs = [];
        public readonly List<TokenLogprob[]?> Top = [];
        public string? FinishReason;
        public string Text = "";
        public PromptScored? Prompt;
    }

    async Task Completions(HttpContext context)
    {
        var request = await ReadBody(context);
        var adapter = Adapter(request);
        var prompts = Prompts(request);
        var sampling = request.Sampling(served.DefaultSampling(), 16, chat: false);
        int? logprobs = request.Int("logprobs", 0, 20);
        bool echo = request.Bool("echo") ?? false;
        bool tokenIds = request.Bool("return_token_ids") ?? false;
        bool stream = request.Bool("stream") ?? false;
        bool usage = request.Body["stream_options"]?["include_usage"]?.GetValue<bool>() ?? false;
        if (sampling.MaxNewTokens == 0 && !echo) throw ApiError.Bad("max_tokens", "must be at least 1 (0 only with echo, to score the prompt)");
        // Cancelled when the client goes away, and when this handler ends for any reason (a failed
        // write to a closed connection included): the engine then drops what is still running.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        using var stopOnExit = new CancelOnDispose(cancel);
        var ids = prompts.Select(p => p.Ids).ToList();
        var streams = Submit(ids, sampling, adapter, logprobs, echo && logprobs is not null ? logprobs : null, cancel);
        int n = sampling.N;
        var id = "cmpl-" + Guid.NewGuid().ToString("N");
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = adapter ?? served.Name;
        var stops = sampling.Stop;
        var eos = sampling.EosTokenIds ?? [];
        var promptTexts = prompts.Select(p => p.Text ?? served.Decode(p.Ids)).ToList();
        var choices = Enumerable.Range(0, prompts.Count * n).Select(_ => new Choice()).ToArray();
        var deltas = choices.Select(_ => new TextDeltas(served.Decode, eos.ToList(), stops)).ToArray();
        JsonObject Usage() => new()
        {
            ["prompt_tokens"] = prompts.Sum(p => p.Ids.Length), ["completion_tokens"] = choices.Sum(c => c.Tokens.Count),
            ["total_tokens"] = prompts.Sum(p => p.Ids.Length) + choices.Sum(c => c.Tokens.Count),
        };

        if (!stream)
        {
            await foreach (var (k, e) in Merge(streams, n, cancel.Token).ReadAllAsync(cancel.Token))
                Record(choices, k, n, e);
            var list = new JsonArray();
            for (int k = 0; k < choices.Length; k++)
            {
                var c = choices[k];
                int p = k / n;
                var text = (echo ? promptTexts[p] : "") + c.Text;
                var choice = new JsonObject { ["index"] = k, ["text"] = text };
                choice["logprobs"] = logprobs is null ? null : CompletionLogprobs(echo ? c.Prompt : null, echo ? prompts[p].Ids : [], c.Tokens, c.LogProbs, c.Top);
                choice["finish_reason"] = c.FinishReason;
                choice["stop_reason"] = null;
                if (tokenIds)
                {
                    choice["prompt_token_ids"] = new JsonArray(prompts[p].Ids.Select(t => (JsonNode)t).ToArray());
                    choice["token_ids"] = new JsonArray(c.Tokens.Select(t => (JsonNode)t).ToArray());
                }
                list.Add(choice);
            }
            var body = new JsonObject
            {
                ["id"] = id, ["object"] = "text_completion", ["created"] = now, ["model"] = model, ["choices"] = list, ["usage"] = Usage(),
            };
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body.ToJsonString(Compact), cancel.Token);
            return;
        }

        await StartEvents(context);
        JsonObject Chunk(JsonArray choiceList) => new()
        {
            ["id"] = id, ["object"] = "text_completion", ["created"] = now, ["model"] = model, ["choices"] = choiceList,
        };
        if (echo)
            for (int k = 0; k < choices.Length; k++)
                if (logprobs is null)
                    await Send(context, Chunk([new JsonObject { ["index"] = k, ["text"] = promptTexts[k / n], ["logprobs"] = null, ["finish_reason"] = null }]), cancel.Token);
        if (!await Stream(context, Merge(streams, n, cancel.Token), cancel.Token, async (k, e) =>
        {
            var c = choices[k];
            Record(choices, k, n, e);
            if (e is PromptScored scored)
            {
                // echo with logprobs: the prompt's text and scores first, for each of its choices
                for (int s = 0; s < n; s++)
                    await Send(context, Chunk([new JsonObject
                    {
                        ["index"] = k + s, ["text"] = promptTexts[k / n],
                        ["logprobs"] = CompletionLogprobs(scored, prompts[k / n].Ids, [], [], []), ["finish_reason"] = null,
                    }]), cancel.Token);
                return;
            }
            var t = (TokenGenerated)e;
            var delta = deltas[k].Next(t);
            if (delta.Length == 0 && t.FinishReason is null && logprobs is null && !tokenIds) return;
            var choice = new JsonObject
            {
                ["index"] = k, ["text"] = delta,
                ["logprobs"] = logprobs is null ? null : CompletionLogprobs(null, [], [t.TokenId], [t.LogProb], [t.Top]),
                ["finish_reason"] = t.FinishReason, ["stop_reason"] = null,
            };
            if (tokenIds) choice["token_ids"] = new JsonArray(t.TokenId);
            await Send(context, Chunk([choice]), cancel.Token);
        })) return;
        await Finish(context, usage ? Chunk([]) : null, Usage(), cancel.Token);
    }

    static void Record(Choice[] choices, int k, int n, EngineEvent e)
    {
        switch (e)
        {
            case PromptScored p:
                for (int s = 0; s < n; s++) choices[k + s].Prompt = p;
                break;
            case TokenGenerated t:
                var c = choices[k];
                c.Tokens.Add(t.TokenId);
                c.LogProbs.Add(t.LogProb);
                c.Top.Add(t.Top);
                if (t.FinishReason is not null)
                {
                    c.FinishReason = t.FinishReason;
                    c.Text = t.Text ?? "";
                }
                break;
        }
    }

    // The legacy completions logprobs object: tokens, token_logprobs, top_logprobs (token -> logprob,
    // the chosen token included, as OpenAI and vLLM list it) and text_offset (into the choice's text).
    JsonObject CompletionLogprobs(PromptScored? prompt, int[] promptIds, IReadOnlyList<int> tokens, IReadOnlyList<float> logps, IReadOnlyList<TokenLogprob[]?> tops)
    {
        var names = new JsonArray();
        var values = new JsonArray();
        var topList = new JsonArray();
        var offsets = new JsonArray();
        int offset = 0;
        void Add(int token, float? logp, TokenLogprob[]? top)
        {
            var text = served.TokenText(token);
            names.Add(text);
            values.Add(logp is { } v && float.IsFinite(v) ? v : logp is null ? null : -9999f);
            offsets.Add(offset);
            offset += text.Length;
            if (top is null) topList.Add(null);
            else
            {
                var o = new JsonObject();
                foreach (var t in top) o[served.TokenText(t.TokenId)] = float.IsFinite(t.LogProb) ? t.LogProb : -9999f;
                var own = served.TokenText(token);
                if (!o.ContainsKey(own) && logp is { } l) o[own] = float.IsFinite(l) ? l : -9999f;
                topList.Add(o);
            }
        }
        if (prompt is not null)
            for (int i = 0; i < promptIds.Length; i++) Add(promptIds[i], prompt.LogProbs[i], prompt.Top?[i] ?? (i == 0 ? null : []));
        for (int i = 0; i < tokens.Count; i++) Add(tokens[i], logps[i], tops[i] ?? []);
        return new JsonObject { ["tokens"] = names, ["token_logprobs"] = values, ["top_logprobs"] = topList, ["text_offset"] = offsets };
    }

    async Task ChatCompletions(HttpContext context)
    {
        var request = await ReadBody(context);
        var adapter = Adapter(request);
        if (request.Body["messages"] is not JsonArray { Count: > 0 } messages) throw ApiError.Bad("messages", "required: a non-empty list of messages");
        var tools = request.Body["tools"] switch
        {
            null => null,
            JsonArray a => a,
            _ => throw ApiError.Bad("tools", "expected a list"),
        };
        if (request.String("tool_choice") is "required" || request.Body["tool_choice"] is JsonObject)
            throw ApiError.Bad("tool_choice", "only \"auto\" and \"none\" are supported");
        if (request.Bool("continue_final_message") == true) throw ApiError.Bad("continue_final_message", "not supported by this server");
        if (request.String("tool_choice") == "none") tools = null;
        Dictionary<string, object?>? variables = null;
        if (request.Body["chat_template_kwargs"] is { } kwargs)
        {
            if (kwargs is not JsonObject) throw ApiError.Bad("chat_template_kwargs", "expected an object");
            try { variables = new Dictionary<string, object?>(ChatTemplateKwargsOf(kwargs)); }
            catch (InputError e) { throw ApiError.Bad("chat_template_kwargs", e.Message); }
        }
        int[] prompt;
        try
        {
            prompt = served.EncodeChat((JsonArray)messages.DeepClone(), tools?.DeepClone() as JsonArray, variables, request.Bool("add_generation_prompt") ?? true, "messages");
        }
        catch (InputError e)
        {
            throw new ApiError(400, e.Message, "messages");
        }
        var sampling = request.Sampling(served.DefaultSampling(), LeftInContext([prompt]), chat: true);
        if (sampling.MaxNewTokens == 0) throw ApiError.Bad("max_tokens", "must be at least 1");
        bool logprobs = request.Bool("logprobs") ?? false;
        int? top = request.Int("top_logprobs", 0, 20);
        if (top is not null && !logprobs) throw ApiError.Bad("top_logprobs", "needs logprobs: true");
        bool tokenIds = request.Bool("return_token_ids") ?? false;
        bool stream = request.Bool("stream") ?? false;
        bool usage = request.Body["stream_options"]?["include_usage"]?.GetValue<bool>() ?? false;
        // Cancelled when the client goes away, and when this handler ends for any reason (a failed
        // write to a closed connection included): the engine then drops what is still running.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        using var stopOnExit = new CancelOnDispose(cancel);
        var streams = Submit([prompt], sampling, adapter, logprobs ? top ?? 0 : null, null, cancel);
        int n = sampling.N;
        var id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string model = adapter ?? served.Name;
        var choices = Enumerable.Range(0, n).Select(_ => new Choice()).ToArray();
        var deltas = choices.Select(_ => new TextDeltas(served.Decode, (sampling.EosTokenIds ?? []).ToList(), sampling.Stop)).ToArray();
        bool parseCalls = parseToolCalls && tools is { Count: > 0 };
        var held = choices.Select(_ => new PostTrainChatClient.StreamedText(parseCalls)).ToArray();
        JsonObject Usage() => new()
        {
            ["prompt_tokens"] = prompt.Length, ["completion_tokens"] = choices.Sum(c => c.Tokens.Count),
            ["total_tokens"] = prompt.Length + choices.Sum(c => c.Tokens.Count),
        };
        if (!stream)
        {
            await foreach (var (k, e) in Merge(streams, n, cancel.Token).ReadAllAsync(cancel.Token))
                Record(choices, k, n, e);
            var list = new JsonArray();
            for (int k = 0; k < n; k++)
            {
                var c = choices[k];
                var message = new JsonObject { ["role"] = "assistant", ["content"] = c.Text, ["tool_calls"] = new JsonArray() };
                var finish = c.FinishReason;
                if (parseCalls && PostTrainChatClient.ParseToolCalls(c.Text) is { } parsed)
                {
                    message["content"] = parsed.Text.Length > 0 ? parsed.Text : null;
                    message["tool_calls"] = ToolCalls(parsed.Calls, withIndex: false);
                    finish = "tool_calls";
                }
                var choice = new JsonObject
                {
                    ["index"] = k,
                    ["message"] = message,
                    ["logprobs"] = logprobs ? ChatLogprobs(c.Tokens, c.LogProbs, c.Top) : null,
                    ["finish_reason"] = finish, ["stop_reason"] = null,
                };
                if (tokenIds) choice["token_ids"] = new JsonArray(c.Tokens.Select(t => (JsonNode)t).ToArray());
                list.Add(choice);
            }
            var body = new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion", ["created"] = now, ["model"] = model, ["choices"] = list, ["usage"] = Usage(),
            };
            if (tokenIds) body["prompt_token_ids"] = new JsonArray(prompt.Select(t => (JsonNode)t).ToArray());
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body.ToJsonString(Compact), cancel.Token);
            return;
        }

        await StartEvents(context);
        JsonObject Chunk(JsonArray choiceList) => new()
        {
            ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = now, ["model"] = model, ["choices"] = choiceList,
        };
        for (int k = 0; k < n; k++)
            await Send(context, Chunk([new JsonObject
            {
                ["index"] = k, ["delta"] = new JsonObject { ["role"] = "assistant", ["content"] = "" }, ["logprobs"] = null, ["finish_reason"] = null,
            }]), cancel.Token);
        if (!await Stream(context, Merge(streams, n, cancel.Token), cancel.Token, async (k, e) =>
        {
            Record(choices, k, n, e);
            if (e is not TokenGenerated t) return;
            var delta = held[k].Add(deltas[k].Next(t));
            var deltaObject = new JsonObject();
            var finish = t.FinishReason;
            if (finish is not null)
            {
                // The rest of the text, and with the tool-call parser the calls, arrive with the last token.
                var (rest, calls) = held[k].End();
                delta += string.Concat(rest.OfType<Microsoft.Extensions.AI.TextContent>().Select(x => x.Text));
                if (calls)
                {
                    deltaObject["tool_calls"] = ToolCalls(rest.OfType<Microsoft.Extensions.AI.FunctionCallContent>(), withIndex: true);
                    finish = "tool_calls";
                }
            }
            if (delta.Length == 0 && finish is null && !logprobs && !tokenIds) return;
            if (delta.Length > 0 || finish is null) deltaObject["content"] = delta;
            var choice = new JsonObject
            {
                ["index"] = k,
                ["delta"] = deltaObject,
                ["logprobs"] = logprobs ? ChatLogprobs([t.TokenId], [t.LogProb], [t.Top]) : null,
                ["finish_reason"] = finish,
            };
            if (tokenIds) choice["token_ids"] = new JsonArray(t.TokenId);
            await Send(context, Chunk([choice]), cancel.Token);
        })) return;
        await Finish(context, usage ? Chunk([]) : null, Usage(), cancel.Token);
    }

    // OpenAI's tool_calls: [{"id", "type": "function", "function": {"name", "arguments": JSON text}}] (streamed with their index).
    internal static JsonArray ToolCalls(IEnumerable<Microsoft.Extensions.AI.FunctionCallContent> calls, bool withIndex)
    {
        var list = new JsonArray();
        int i = 0;
        foreach (var call in calls)
        {
            var item = new JsonObject
            {
                ["id"] = call.CallId, ["type"] = "function",
                ["function"] = new JsonObject { ["name"] = call.Name, ["arguments"] = JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), Compact) },
            };
            if (withIndex) item["index"] = i;
            list.Add(item);
            i++;
        }
        return list;
    }

    static IReadOnlyDictionary<string, object?> ChatTemplateKwargsOf(JsonNode kwargs) =>
        PostTrain.Tokenization.ChatTemplateKwargs.Parse(kwargs.ToJsonString(), "chat_template_kwargs");

    // Chat logprobs: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}]}.
    JsonObject ChatLogprobs(IReadOnlyList<int> tokens, IReadOnlyList<float> logps, IReadOnlyList<TokenLogprob[]?> tops)
    {
        JsonObject Entry(int token, float logp)
        {
            var text = served.TokenText(token);
            return new JsonObject
            {
                ["token"] = text, ["logprob"] = float.IsFinite(logp) ? logp : -9999f,
                ["bytes"] = new JsonArray(Encoding.UTF8.GetBytes(text).Select(b => (JsonNode)(int)b).ToArray()),
            };
        }
        var content = new JsonArray();
        for (int i = 0; i < tokens.Count; i++)
        {
            var entry = Entry(tokens[i], logps[i]);
            entry["top_logprobs"] = new JsonArray((tops[i] ?? []).Select(t => (JsonNode)Entry(t.TokenId, t.LogProb)).ToArray());
            content.Add(entry);
        }
        return new JsonObject { ["content"] = content };
    }

    static async Task StartEvents(HttpContext context)
    {
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync();
    }

    static async Task Send(HttpContext context, JsonObject chunk, CancellationToken cancel)
    {
        await context.Response.WriteAsync($"data: {chunk.ToJsonString(Compact)}\n\n", cancel);
        await context.Response.Body.FlushAsync(cancel);
    }

    static Task Done(HttpContext context, CancellationToken cancel) => context.Response.WriteAsync("data: [DONE]\n\n", cancel);

    // A stream's end: the usage chunk when stream_options.include_usage asked for it, then [DONE].
    static async Task Finish(HttpContext context, JsonObject? usageChunk, JsonObject usage, CancellationToken cancel)
    {
        if (usageChunk is not null)
        {
            usageChunk["usage"] = usage;
            await Send(context, usageChunk, cancel);
        }
        await Done(context, cancel);
    }

    // Streams the merged events; a failure after the headers went out is sent as an error event
    // (as vLLM does), then [DONE].
    // Returns false when it ended with an error event.
    static async Task<bool> Stream(HttpContext context, ChannelReader<(int Choice, EngineEvent Event)> events, CancellationToken cancel, Func<int, EngineEvent, Task> each)
    {
        try
        {
            await foreach (var (k, e) in events.ReadAllAsync(cancel)) await each(k, e);
            return true;
        }
        catch (Exception e) when (!cancel.IsCancellationRequested && e is not IOException)
        {
            var error = AsApiError(e);
            await context.Response.WriteAsync($"data: {error.Body().ToJsonString(Compact)}\n\n", cancel);
            await Done(context, cancel);
            return false;
        }
    }

    sealed class CancelOnDispose(CancellationTokenSource cancel) : IDisposable
    {
        public void Dispose() => cancel.Cancel();
    }

    // For a server inside a test: no signal handlers, nothing printed.
    sealed class QuietLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
