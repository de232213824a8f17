using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;
using PostTrain.Generation;

namespace PostTrain.Serving;

/// <summary>
/// A PostTrain model as a Microsoft.Extensions.AI <see cref="IChatClient"/>, in process: Semantic
/// Kernel, agent frameworks and other .NET AI code talk to the model with no server between.
/// Requests go to the <see cref="ServedModel"/>'s continuous-batching engine, so several callers
/// share decode steps, and answer as the OpenAI-compatible server would for the same request:
/// <list type="bullet">
/// <item>Messages become the OpenAI/transformers message dictionaries the chat template expects
/// (text content; <see cref="FunctionCallContent"/> as an assistant's <c>tool_calls</c> with the
/// arguments as an object; each <see cref="FunctionResultContent"/> as a <c>tool</c> message with
/// <c>tool_call_id</c>); <see cref="ChatOptions.Instructions"/> is a system message before them.
/// Images and other media are not supported (<see cref="NotSupportedException"/>); reasoning and
/// other non-text content in the history is left out.</item>
/// <item>Sampling starts from <see cref="ServedModel.DefaultSampling"/>; Temperature, TopP, TopK,
/// Seed and StopSequences override it. No Seed with sampling draws a random one (as vLLM and
/// OpenAI: the same request twice gives different answers); set it to reproduce a response.
/// FrequencyPenalty and PresencePenalty other than 0, and a JSON ResponseFormat, throw
/// <see cref="NotSupportedException"/>.</item>
/// <item>MaxOutputTokens unset: generation_config.json's max_new_tokens, else
/// <see cref="DefaultMaxOutputTokens"/>, either way at most what the engine's
/// <see cref="ServingEngine.MaxModelLength"/> leaves after the prompt.</item>
/// <item>Tools (<see cref="AIFunctionDeclaration"/>s) go to the template's <c>tools</c> as OpenAI
/// function schemas; ToolMode None leaves them out. With tools, Hermes/Qwen-style
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c> blocks in the output
/// become <see cref="FunctionCallContent"/>s and the finish reason
/// <see cref="ChatFinishReason.ToolCalls"/> (vLLM's <c>--tool-call-parser hermes</c>): see
/// <see cref="ParseToolCalls"/>. Tool calls are not forced (RequireAny is a hint only).</item>
/// <item><c>AdditionalProperties["chat_template_kwargs"]</c> (a dictionary or JSON object) adds
/// chat-template variables, e.g. enable_thinking for Qwen3.</item>
/// <item>ModelId null or <see cref="ServedModel.Name"/> is the base model; another names a LoRA
/// adapter loaded with <see cref="ServingEngine.LoadAdapter"/>.</item>
/// </list>
/// Errors in the request (a prompt longer than the context, bad sampling values, an unknown model)
/// are <see cref="InputError"/>s with the server's message, thrown before anything runs.
/// Cancelling the token, or leaving a streaming enumeration early, cancels the engine request and
/// frees its batch rows at the next decode step.
/// </summary>
public sealed class PostTrainChatClient : IChatClient
{
    /// <summary>The most tokens a response gets when neither the request nor generation_config.json says.</summary>
    public const int DefaultMaxOutputTokens = 1024;

    // Microsoft.Extensions.AI's serializer settings, written compactly as OpenAI's API and transformers' messages have them.
    static readonly JsonSerializerOptions Json = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    readonly ServedModel served;
    readonly bool ownsModel;
    readonly ChatClientMetadata metadata;

    /// <param name="served">The model; not disposed with the client unless <paramref name="ownsModel"/>.</param>
    public PostTrainChatClient(ServedModel served, bool ownsModel = false)
    {
        this.served = served ?? throw new ArgumentNullException(nameof(served));
        this.ownsModel = ownsModel;
        metadata = new ChatClientMetadata("posttrain", null, served.Name);
    }

    public ServedModel Model => served;

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var call = Prepare(messages, options);
        var stream = served.Engine.Submit(call.Request, cancellationToken);
        var (_, samples) = await stream.CollectAsync(1, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        var completion = samples[0];
        if (completion.FinishReason == "abort") throw new OperationCanceledException("the engine ended the request");
        var text = completion.Text ?? served.Decode(completion.TokenIds);
        var contents = new List<AIContent>();
        var finish = FinishReason(completion.FinishReason);
        if (call.Tools is not null && ParseToolCalls(text) is { } parsed)
        {
            if (parsed.Text.Length > 0) contents.Add(new TextContent(parsed.Text));
            contents.AddRange(parsed.Calls);
            finish = ChatFinishReason.ToolCalls;
        }
        else contents.Add(new TextContent(text));
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, contents) { MessageId = call.Id, CreatedAt = call.Created })
        {
            ResponseId = call.Id,
            ModelId = call.ModelId,
            CreatedAt = call.Created,
            FinishReason = finish,
            Usage = Usage(call.Request.Prompt.Length, completion.TokenIds.Length),
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var call = Prepare(messages, options);
        // Cancelled when the caller's token is, and when the enumeration ends early (disposed):
        // either way the engine drops the request's rows.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bool finished = false;
        try
        {
            var stream = served.Engine.Submit(call.Request, cancel.Token);
            var sampling = call.Request.Sampling;
            var deltas = new TextDeltas(served.Decode, sampling.EosTokenIds ?? served.Model.Config.EosTokenIds, sampling.Stop);
            var text = new StreamedText(call.Tools is not null);
            int generated = 0;
            TokenGenerated? last = null;
            await foreach (var e in stream.Events.ReadAllAsync(cancel.Token).ConfigureAwait(false))
            {
                cancellationToken.ThrowIfCancellationRequested(); // events already queued are not read after a cancel
                if (e is not TokenGenerated token) continue;
                generated++;
                var send = text.Add(deltas.Next(token));
                if (send.Length > 0) yield return Update(call, [new TextContent(send)]);
                if (token.FinishReason is not null) last = token;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (last is null) throw new OperationCanceledException("the engine ended the request");
            var (final, toolCalls) = text.End();
            var finish = toolCalls ? ChatFinishReason.ToolCalls : FinishReason(last.FinishReason!);
            final.Add(new UsageContent(Usage(call.Request.Prompt.Length, generated)));
            var end = Update(call, final);
            end.FinishReason = finish;
            finished = true;
            yield return end;
        }
        finally
        {
            if (!finished) cancel.Cancel();
        }
    }

    /// <summary>
    /// A streamed response's text: what to send as each delta arrives, and what the last update
    /// carries. Without tools, everything at once. With tools, text from a "&lt;tool_call&gt;" on
    /// is held back to be parsed at the end (<see cref="ParseToolCalls"/>), and before one, so are
    /// a trailing piece that may turn out to start one and trailing whitespace (which the parse
    /// drops when only whitespace precedes a call): the updates add up to the text and calls of
    /// the same response not streamed.
    /// </summary>
    public sealed class StreamedText(bool tools)
    {
        readonly System.Text.StringBuilder text = new();
        int sent;
        bool inToolCall;

        public string Add(string delta)
        {
            text.Append(delta);
            int upTo = text.Length;
            if (tools)
            {
                if (inToolCall) upTo = sent;
                else
                {
                    var all = text.ToString();
                    int at = all.IndexOf(ToolCallStart, StringComparison.Ordinal);
                    inToolCall = at >= 0;
                    upTo = inToolCall ? at : all.Length - PartialPrefix(all, ToolCallStart);
                    while (upTo > sent && char.IsWhiteSpace(all[upTo - 1])) upTo--;
                }
            }
            if (upTo <= sent) return "";
            var send = text.ToString(sent, upTo - sent);
            sent = upTo;
            return send;
        }

        /// <summary>The last update's contents (the text not sent yet, the tool calls), and whether there are tool calls.</summary>
        public (List<AIContent> Contents, bool ToolCalls) End()
        {
            var full = text.ToString();
            var contents = new List<AIContent>();
            var parsed = tools ? ParseToolCalls(full) : null;
            if (parsed is not null && parsed.Text.StartsWith(full[..sent], StringComparison.Ordinal))
            {
                if (parsed.Text.Length > sent) contents.Add(new TextContent(parsed.Text[sent..]));
                contents.AddRange(parsed.Calls);
                return (contents, true);
            }
            if (full.Length > sent) contents.Add(new TextContent(full[sent..]));
            return (contents, false);
        }
    }

    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return metadata;
        if (serviceType == typeof(ServedModel)) return served;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    public void Dispose()
    {
        if (ownsModel) served.Dispose();
    }

    // ---- request ----

    /// <summary>The engine request a chat request becomes (tests read its prompt).</summary>
    internal EngineRequest Request(IEnumerable<ChatMessage> messages, ChatOptions? options = null) => Prepare(messages, options).Request;

    sealed record Call(EngineRequest Request, JsonArray? Tools, string ModelId, string Id, DateTimeOffset Created);

    Call Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var o = options ?? new ChatOptions();
        if (o.FrequencyPenalty is { } fp && fp != 0) throw new NotSupportedException($"FrequencyPenalty: not supported by PostTrain's engine (got {fp}); use 0 or leave it unset");
        if (o.PresencePenalty is { } pp && pp != 0) throw new NotSupportedException($"PresencePenalty: not supported by PostTrain's engine (got {pp}); use 0 or leave it unset");
        if (o.ResponseFormat is ChatResponseFormatJson)
            throw new NotSupportedException("ResponseFormat: JSON output is not supported (PostTrain has no constrained decoding); ask for JSON in the prompt instead");

        string? adapter = null;
        if (o.ModelId is { } id && id != served.Name)
        {
            if (!served.Engine.Adapters.Contains(id))
                throw new InputError($"model: '{id}' is neither the base model '{served.Name}' nor a loaded adapter" +
                                     (served.Engine.Adapters.Count > 0 ? $" ({string.Join(", ", served.Engine.Adapters)})" : ""));
            adapter = id;
        }

        var tools = o.ToolMode is NoneChatToolMode ? null : Tools(o.Tools);
        var prompt = served.EncodeChat(Messages(messages, o.Instructions), tools, TemplateVariables(o.AdditionalProperties), addGenerationPrompt: true);
        int left = served.Engine.MaxModelLength - prompt.Length;
        int maxNew = o.MaxOutputTokens ?? Math.Max(1, Math.Min(left, served.Generation.MaxNewTokens ?? DefaultMaxOutputTokens)); // a prompt too long fails in Submit, with the server's message

        var sampling = served.DefaultSampling() with { MaxNewTokens = maxNew, N = 1 };
        if (o.Temperature is { } temperature) sampling = sampling with { Temperature = Exact(temperature) };
        if (o.TopP is { } topP) sampling = sampling with { TopP = Exact(topP) };
        if (o.TopK is { } topK) sampling = sampling with { TopK = topK };
        if (o.StopSequences is { Count: > 0 } stop) sampling = sampling with { Stop = stop.ToArray() };
        sampling = sampling with { Seed = o.Seed ?? (sampling.Greedy ? 0 : Random.Shared.NextInt64()) };

        var request = new EngineRequest { Prompt = prompt, Sampling = sampling, Adapter = adapter };
        return new Call(request, tools, adapter ?? served.Name, $"chatcmpl-{Guid.NewGuid():N}", DateTimeOffset.UtcNow);
    }

    // A float option as the decimal the caller wrote (0.9f is 0.9, not 0.899999976), so a value
    // matches the same value given to the CLI or the server.
    static double Exact(float value) => float.IsFinite(value) ? (double)(decimal)value : value;

    /// <summary>The conversation as the OpenAI/transformers message dictionaries chat templates read.</summary>
    internal static JsonArray Messages(IEnumerable<ChatMessage> messages, string? instructions = null)
    {
        var result = new JsonArray();
        if (!string.IsNullOrEmpty(instructions)) result.Add(new JsonObject { ["role"] = "system", ["content"] = instructions });
        int index = 0;
        foreach (var message in messages)
        {
            var where = $"messages[{index++}]";
            var text = new System.Text.StringBuilder();
            var calls = new JsonArray();
            var results = new List<JsonObject>();
            foreach (var content in message.Contents)
                switch (content)
                {
                    case TextContent t: text.Append(t.Text); break;
                    case FunctionCallContent c:
                        calls.Add(new JsonObject
                        {
                            ["id"] = c.CallId,
                            ["type"] = "function",
                            ["function"] = new JsonObject
                            {
                                ["name"] = c.Name,
                                ["arguments"] = JsonSerializer.SerializeToNode(c.Arguments ?? new Dictionary<string, object?>(), Json),
                            },
                        });
                        break;
                    case FunctionResultContent r:
                        var tool = new JsonObject { ["role"] = "tool", ["content"] = ResultText(r) };
                        if (!string.IsNullOrEmpty(r.CallId)) tool["tool_call_id"] = r.CallId;
                        results.Add(tool);
                        break;
                    case DataContent or UriContent:
                        throw new NotSupportedException($"{where}: {content.GetType().Name}: PostTrain models take text only (text, function calls and function results)");
                    default: break; // reasoning, usage and other non-text content: not part of the prompt
                }
            var role = message.Role.Value;
            if (results.Count > 0)
            {
                // Each result is a tool message of its own (OpenAI's shape); text beside them, rare, goes first.
                if (text.Length > 0) result.Add(new JsonObject { ["role"] = role, ["content"] = text.ToString() });
                foreach (var r in results) result.Add(r);
                continue;
            }
            var m = new JsonObject { ["role"] = role, ["content"] = text.ToString() };
            if (calls.Count > 0) m["tool_calls"] = calls;
            result.Add(m);
        }
        return result;
    }

    static string ResultText(FunctionResultContent r) => r.Result switch
    {
        null => r.Exception is { } e ? $"Error: {e.Message}" : "",
        string s => s,
        _ => JsonSerializer.Serialize(r.Result, Json),
    };

    /// <summary>The function declarations as the template's tools: OpenAI function schemas.</summary>
    internal static JsonArray? Tools(IList<AITool>? tools)
    {
        if (tools is null || tools.Count == 0) return null;
        var result = new JsonArray();
        foreach (var tool in tools)
        {
            if (tool is not AIFunctionDeclaration f)
                throw new NotSupportedException($"Tools: {tool.Name} ({tool.GetType().Name}): only function tools (AIFunctionDeclaration) are supported");
            var function = new JsonObject { ["name"] = f.Name };
            if (!string.IsNullOrEmpty(f.Description)) function["description"] = f.Description;
            function["parameters"] = f.JsonSchema.ValueKind == JsonValueKind.Undefined
                ? new JsonObject { ["type"] = "object", ["properties"] = new JsonObject() }
                : JsonNode.Parse(f.JsonSchema.GetRawText());
            result.Add(new JsonObject { ["type"] = "function", ["function"] = function });
        }
        return result;
    }

    static IReadOnlyDictionary<string, object?>? TemplateVariables(AdditionalPropertiesDictionary? properties)
    {
        if (properties is null || !properties.TryGetValue("chat_template_kwargs", out var value) || value is null) return null;
        var node = value as JsonNode ?? JsonSerializer.SerializeToNode(value, Json);
        if (node is not JsonObject o)
            throw new ArgumentException("AdditionalProperties[\"chat_template_kwargs\"]: expected a dictionary or JSON object of template variables");
        return o.ToDictionary(p => p.Key, p => (object?)p.Value?.DeepClone());
    }

    // ---- response ----

    static ChatFinishReason FinishReason(string reason) => reason switch
    {
        "length" => ChatFinishReason.Length,
        _ => ChatFinishReason.Stop,
    };

    static UsageDetails Usage(int input, int output) => new() { InputTokenCount = input, OutputTokenCount = output, TotalTokenCount = input + output };

    static ChatResponseUpdate Update(Call call, IList<AIContent> contents) => new(ChatRole.Assistant, contents)
    {
        ResponseId = call.Id,
        MessageId = call.Id,
        ModelId = call.ModelId,
        CreatedAt = call.Created,
    };

    const string ToolCallStart = "<tool_call>";
    static readonly Regex ToolCallBlock = new(@"<tool_call>(.*?)</tool_call>|<tool_call>(.*)", RegexOptions.Singleline | RegexOptions.CultureInvariant);

    // How many trailing characters of text are a proper prefix of marker (could start it).
    static int PartialPrefix(string text, string marker)
    {
        for (int n = Math.Min(marker.Length - 1, text.Length); n > 0; n--)
            if (string.CompareOrdinal(text, text.Length - n, marker, 0, n) == 0) return n;
        return 0;
    }

    /// <summary>A response's text split into its tool calls and the rest.</summary>
    public sealed record ParsedToolCalls(string Text, IReadOnlyList<FunctionCallContent> Calls);

    /// <summary>
    /// The Hermes/Qwen tool calls in <paramref name="text"/>, as vLLM's hermes parser reads them:
    /// each <c>&lt;tool_call&gt;</c> block (the last may be unclosed, a response cut by its length)
    /// holds a JSON object with "name" and "arguments" (an object, or a string of JSON). Null when
    /// there is no block or any block is not such JSON: then the whole text is the answer. The
    /// text is what lies outside the blocks, pieces that are only whitespace left out. Each call
    /// gets a new CallId.
    /// </summary>
    public static ParsedToolCalls? ParseToolCalls(string text)
    {
        if (!text.Contains(ToolCallStart, StringComparison.Ordinal)) return null;
        var calls = new List<FunctionCallContent>();
        var rest = new System.Text.StringBuilder();
        int at = 0;
        foreach (Match match in ToolCallBlock.Matches(text))
        {
            var outside = text[at..match.Index];
            if (!string.IsNullOrWhiteSpace(outside)) rest.Append(outside);
            at = match.Index + match.Length;
            var body = (match.Groups[1].Success ? match.Groups[1].Value : match.Groups[2].Value).Trim();
            if (ToolCall(body) is not { } call) return null;
            calls.Add(call);
        }
        var tail = text[at..];
        if (!string.IsNullOrWhiteSpace(tail)) rest.Append(tail);
        return new ParsedToolCalls(rest.ToString(), calls);
    }

    static FunctionCallContent? ToolCall(string json)
    {
        JsonObject? o;
        try
        {
            o = JsonNode.Parse(json) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
        if (o?["name"] is not JsonValue nameValue || !nameValue.TryGetValue<string>(out var name) || name.Length == 0) return null;
        var arguments = o["arguments"];
        if (arguments is JsonValue v && v.TryGetValue<string>(out var argumentText))
        {
            try
            {
                arguments = JsonNode.Parse(argumentText);
            }
            catch (JsonException)
            {
                return null;
            }
        }
        if (arguments is not null and not JsonObject) return null;
        var dictionary = arguments is null
            ? new Dictionary<string, object?>()
            : JsonSerializer.Deserialize<Dictionary<string, object?>>(arguments.ToJsonString(), Json) ?? [];
        return new FunctionCallContent($"call_{Guid.NewGuid():N}"[..29], name, dictionary);
    }
}
