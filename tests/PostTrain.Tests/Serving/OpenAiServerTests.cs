using System.ClientModel;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;
using PostTrain.Checkpoints;
using PostTrain.Cli.Serving;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Serving;
using PostTrain.Tests.Cli;
using static TorchSharp.torch;

namespace PostTrain.Tests.Serving;

/// <summary>`posttrain serve` over real HTTP on loopback, with the official OpenAI .NET client where it reaches.</summary>
public class OpenAiServerTests
{
    static async Task<(OpenAiServer Server, ServedModel Served, string Model)> Start(string? apiKey = null, int maxBatch = 8, int maxModelLength = 128,
        IEnumerable<(string, string)>? adapters = null, string? model = null)
    {
        model ??= CliRunner.TinyModel("qwen3").Model;
        var served = ServedModel.Load(model, options: new ServingEngineOptions { MaxBatch = maxBatch, MaxModelLength = maxModelLength }, name: "tiny");
        var server = await OpenAiServer.StartAsync(served, new ServerOptions { Port = 0, ApiKey = apiKey, HandleSignals = false }, adapters);
        return (server, served, model);
    }

    static OpenAIClient Client(OpenAiServer server, string key = "none") =>
        new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(server.Address, "v1") });

    static async Task<(HttpStatusCode Status, JsonNode? Body)> Post(OpenAiServer server, string path, string json, string? key = null)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Address, path)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.ExpectContinue = json.Length > 1 << 20; // a huge body waits for the server's answer (413) before it is sent
        if (key is not null) request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        JsonNode? body = null;
        try { body = JsonNode.Parse(text); } catch (System.Text.Json.JsonException) { }
        return (response.StatusCode, body);
    }

    // What the local engine generates for these prompt ids (the reference for the server).
    static Completion[][] Local(ServedModel served, IReadOnlyList<int[]> prompts, SamplingOptions options) =>
        new GenerationEngine(served.Model, served.Decode).Generate(prompts, options);

    [Fact]
    public async Task TheOpenAiClientListsModelsChatsAndStreams()
    {
        var (server, served, _) = await Start();
        await using var _ = server;
        using var __ = served;
        var client = Client(server);
        var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value;
        Assert.Equal("tiny", Assert.Single(models).Id);

        var chat = client.GetChatClient("tiny");
        var messages = new List<ChatMessage> { new SystemChatMessage("Be brief."), new UserChatMessage("What is 2+2?") };
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 };
        ChatCompletion completion = (await chat.CompleteChatAsync(messages, options)).Value;
        var prompt = served.EncodeChat(JsonNode.Parse("""[{"role":"system","content":"Be brief."},{"role":"user","content":"What is 2+2?"}]""")!.AsArray(), null, null, true);
        var expected = Local(served, [prompt], served.DefaultSampling() with { Temperature = 0, MaxNewTokens = 12 })[0][0];
        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(prompt.Length, completion.Usage.InputTokenCount);
        Assert.Equal(expected.TokenIds.Length, completion.Usage.OutputTokenCount);
        Assert.Equal(expected.FinishReason == "stop" ? ChatFinishReason.Stop : ChatFinishReason.Length, completion.FinishReason);

        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        int? usage = null;
        await foreach (var update in chat.CompleteChatStreamingAsync(messages, new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 }))
        {
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
            finish ??= update.FinishReason;
            if (update.Usage is not null) usage = update.Usage.OutputTokenCount;
        }
        Assert.Equal(expected.Text, streamed.ToString());
        Assert.Equal(completion.FinishReason, finish);

        // Sampled with a seed: the same completion twice, and the one local sampling gives.
        var seeded = new ChatCompletionOptions { Temperature = 0.9f, MaxOutputTokenCount = 10 };
#pragma warning disable OPENAI001
        seeded.Seed = 42;
#pragma warning restore OPENAI001
        var a = (await chat.CompleteChatAsync(messages, seeded)).Value.Content[0].Text;
        var b = (await chat.CompleteChatAsync(messages, seeded)).Value.Content[0].Text;
        Assert.Equal(a, b);
        Assert.Equal(Local(served, [prompt], served.DefaultSampling() with { Temperature = 0.9, MaxNewTokens = 10, Seed = 42 })[0][0].Text, a);
    }

    [Fact]
    public async Task CompletionsWithTokenIdsSeedsAndLogprobsEqualLocalSampling()
    {
        var (server, served, _) = await Start();
        await using var _ = server;
        using var __ = served;
        int[][] prompts = [[5, 17, 33, 2, 40], [11, 3], [44, 45, 46, 47, 12, 13, 9]];
        var body = new JsonObject
        {
            ["model"] = "tiny", ["prompt"] = new JsonArray(prompts.Select(p => (JsonNode)new JsonArray(p.Select(t => (JsonNode)t).ToArray())).ToArray()),
            ["n"] = 3, ["max_tokens"] = 9, ["temperature"] = 0.8, ["top_p"] = 0.95, ["seed"] = 7, ["logprobs"] = 0, ["return_token_ids"] = true,
        };
        var (status, json) = await Post(server, "v1/completions", body.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, status);
        var expected = Local(served, prompts, served.DefaultSampling() with { N = 3, MaxNewTokens = 9, Temperature = 0.8, TopP = 0.95, Seed = 7 });
        var choices = json!["choices"]!.AsArray();
        Assert.Equal(9, choices.Count);
        for (int k = 0; k < 9; k++)
        {
            var c = choices[k]!;
            var want = expected[k / 3][k % 3];
            Assert.Equal(k, c["index"]!.GetValue<int>());
            Assert.Equal(prompts[k / 3], c["prompt_token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
            Assert.Equal(want.TokenIds, c["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
            Assert.Equal(want.Text, c["text"]!.GetValue<string>());
            Assert.Equal(want.FinishReason, c["finish_reason"]!.GetValue<string>());
            var logps = c["logprobs"]!["token_logprobs"]!.AsArray().Select(t => t!.GetValue<float>()).ToArray();
            for (int t = 0; t < logps.Length; t++) Assert.Equal(want.LogProbs[t], logps[t], 1e-4f);
        }
        Assert.Equal(prompts.Sum(p => p.Length), json["usage"]!["prompt_tokens"]!.GetValue<int>());
        Assert.Equal(expected.Sum(p => p.Sum(c => c.TokenIds.Length)), json["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task EchoWithLogprobsScoresThePromptAsLmEvalAsksIt()
    {
        var (server, served, _) = await Start();
        await using var _ = server;
        using var __ = served;
        int[] prompt = [5, 17, 33, 2, 40, 8];
        // lm-eval's local-completions log-likelihood request: echo, logprobs 1, max_tokens 1, greedy.
        var (status, json) = await Post(server, "v1/completions", $$"""{"prompt":[{{string.Join(",", prompt)}}],"echo":true,"logprobs":1,"max_tokens":1,"temperature":0}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var lp = json!["choices"]![0]!["logprobs"]!;
        var values = lp["token_logprobs"]!.AsArray();
        Assert.Equal(prompt.Length + 1, values.Count);
        Assert.Null(values[0]);
        Assert.Null(lp["top_logprobs"]![0]);
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var logps = served.Model.Forward(TestModels.Ids(prompt))[0].log_softmax(-1);
        for (int t = 1; t < prompt.Length; t++)
        {
            Assert.Equal(logps[t - 1, prompt[t]].item<float>(), values[t]!.GetValue<float>(), 1e-4f);
            var top = lp["top_logprobs"]![t]!.AsObject();
            Assert.Equal(logps[t - 1].max().item<float>(), top.Max(kv => kv.Value!.GetValue<float>()), 1e-4f);
        }
        Assert.StartsWith(served.Decode(prompt), json["choices"]![0]!["text"]!.GetValue<string>());
        // max_tokens 0 with echo only scores.
        var (_, scored) = await Post(server, "v1/completions", $$"""{"prompt":[{{string.Join(",", prompt)}}],"echo":true,"logprobs":0,"max_tokens":0}""");
        Assert.Equal(prompt.Length, scored!["choices"]![0]!["logprobs"]!["token_logprobs"]!.AsArray().Count);
        Assert.Equal(0, scored["usage"]!["completion_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task BadRequestsGetOpenAiErrorsAndTheServerKeepsServing()
    {
        var (server, served, _) = await Start(apiKey: "sekrit", maxBatch: 2, maxModelLength: 64);
        await using var _ = server;
        using var __ = served;
        async Task Expect(HttpStatusCode code, string json, string contains, string? param = null, string? key = "sekrit")
        {
            var (status, body) = await Post(server, "v1/completions", json, key);
            Assert.Equal(code, status);
            var error = body!["error"]!;
            Assert.Contains(contains, error["message"]!.GetValue<string>());
            Assert.NotNull(error["type"]);
            if (param is not null) Assert.Equal(param, error["param"]!.GetValue<string>());
        }
        await Expect(HttpStatusCode.Unauthorized, """{"prompt":"x"}""", "API key", key: null);
        await Expect(HttpStatusCode.Unauthorized, """{"prompt":"x"}""", "API key", key: "wrong");
        await Expect(HttpStatusCode.BadRequest, "{not json", "not valid JSON");
        await Expect(HttpStatusCode.BadRequest, "[1,2]", "JSON object");
        await Expect(HttpStatusCode.BadRequest, """{"max_tokens":3}""", "required", "prompt");
        await Expect(HttpStatusCode.NotFound, """{"model":"gpt-4","prompt":"x"}""", "does not exist", "model");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","temperature":-1}""", "temperature", "temperature");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","top_p":0}""", "top_p", "top_p");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","n":3,"temperature":1}""", "--max-batch");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","max_tokens":"many"}""", "integer", "max_tokens");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":[1,99999]}""", "outside the vocabulary");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","max_tokens":100}""", "maximum context length is 64");
        await Expect(HttpStatusCode.BadRequest, """{"prompt":"x","presence_penalty":0.5}""", "not supported", "presence_penalty");
        var huge = $$"""{"prompt":"{{new string('a', 17 << 20)}}"}""";
        await Expect(HttpStatusCode.RequestEntityTooLarge, huge, "too large");
        var (chatStatus, chatBody) = await Post(server, "v1/chat/completions", """{"messages":[]}""", "sekrit");
        Assert.Equal(HttpStatusCode.BadRequest, chatStatus);
        Assert.Equal("messages", chatBody!["error"]!["param"]!.GetValue<string>());
        // Still serving, and /health needs no key.
        var (ok, body) = await Post(server, "v1/completions", """{"prompt":"x","max_tokens":2,"temperature":0}""", "sekrit");
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal(2, body!["usage"]!["completion_tokens"]!.GetValue<int>());
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(server.Address, "health"))).StatusCode);
    }

    [Fact]
    public async Task StreamingClientsShareDecodeStepsAndADisconnectFreesItsSlot()
    {
        // A model slow enough (a few ms a step) that the abandoned request is far from done when its client goes.
        var (root, _) = CliRunner.TinyModel("qwen3");
        var slow = Path.Combine(root, "slow");
        var (code, _, stderr) = CliRunner.Run("init", "--arch", "qwen3", "--output", slow, "--tokenizer", Path.Combine(root, "tokenizer"),
            "--hidden-size", "256", "--heads", "4", "--kv-heads", "2", "--intermediate-size", "512", "--layers", "4");
        Assert.True(code == 0, stderr);
        var (server, served, _) = await Start(maxBatch: 2, maxModelLength: 2048, model: slow);
        await using var _ = server;
        using var __ = served;
        using var http = new HttpClient();
        // A long stream that the client abandons after its first event.
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server.Address, "v1/completions"))
        {
            Content = new StringContent("""{"prompt":"a","max_tokens":2000,"temperature":1,"seed":1,"ignore_eos":true,"stream":true,"n":2}"""),
        };
        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: {", await reader.ReadLineAsync());
        response.Dispose();
        // The batch holds two sequences: these run only once the abandoned request's are freed.
        var client = Client(server).GetChatClient("tiny");
        var runs = Enumerable.Range(0, 2).Select(async i =>
        {
            var text = new StringBuilder();
            int chunks = 0;
            await foreach (var u in client.CompleteChatStreamingAsync([new UserChatMessage($"hi {i}")], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 20 }))
            {
                chunks++;
                foreach (var p in u.ContentUpdate) text.Append(p.Text);
            }
            return (text.ToString(), chunks);
        }).ToArray();
        var results = await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(results, r => Assert.True(r.chunks > 1));
        var stats = served.Engine.Stats;
        Assert.True(stats.Cancelled == 1, $"cancelled {stats.Cancelled}, generated {stats.GeneratedTokens}, steps {stats.DecodeSteps}");
        Assert.True(served.Engine.Stats.DecodeRowTokens > served.Engine.Stats.DecodeSteps, "the two chats shared decode steps");
    }

    [Fact]
    public async Task AdaptersLoadAndUnloadAtRuntimeAndServeByName()
    {
        var (server, served, model) = await Start();
        await using var _ = server;
        using var __ = served;
        var dir = TestModels.TempDir();
        using (var trained = HfCheckpoint.Load(model))
        {
            LoraAdapters.Attach(trained, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, 3);
            using (no_grad())
                foreach (var (_, layer) in trained.Projections())
                    if (layer.Adapter is { } ab) ab.B.normal_(0, 0.3);
            PeftAdapter.WriteInto(trained, dir);
        }
        var (status, _) = await Post(server, "v1/load_lora_adapter", new JsonObject { ["lora_name"] = "step-1", ["lora_path"] = dir }.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, status);
        var ids = (await Client(server).GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id).ToList();
        Assert.Equal(["tiny", "step-1"], ids);
        var (again, error) = await Post(server, "v1/load_lora_adapter", new JsonObject { ["lora_name"] = "step-1", ["lora_path"] = dir }.ToJsonString());
        Assert.Equal(HttpStatusCode.BadRequest, again);
        Assert.Contains("already loaded", error!["error"]!["message"]!.GetValue<string>());

        int[] prompt = [5, 17, 33, 2];
        var (_, json) = await Post(server, "v1/completions", $$"""{"model":"step-1","prompt":[5,17,33,2],"max_tokens":8,"temperature":0,"return_token_ids":true}""");
        Completion expected;
        using (var withAdapter = HfCheckpoint.Load(model))
        {
            PeftAdapter.Load(withAdapter, dir);
            withAdapter.eval();
            expected = new GenerationEngine(withAdapter, served.Decode).Generate([prompt], served.DefaultSampling() with { Temperature = 0, MaxNewTokens = 8 })[0][0];
        }
        Assert.Equal(expected.TokenIds, json!["choices"]![0]!["token_ids"]!.AsArray().Select(t => t!.GetValue<int>()));
        Assert.Equal("step-1", json["model"]!.GetValue<string>());

        Assert.Equal(HttpStatusCode.OK, (await Post(server, "v1/unload_lora_adapter", """{"lora_name":"step-1"}""")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Post(server, "v1/completions", """{"model":"step-1","prompt":"x"}""")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Post(server, "v1/unload_lora_adapter", """{"lora_name":"step-1"}""")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Post(server, "v1/load_lora_adapter", $$"""{"lora_name":"x","lora_path":"{{dir}}/missing"}""")).Status);
    }

    [Fact]
    public async Task TheHermesToolCallParserGivesOpenAisToolCallsAndLeavesPlainAnswersAlone()
    {
        // The shape of the calls: OpenAI's, arguments as JSON text, an index when streamed.
        var parsed = PostTrainChatClient.ParseToolCalls("""<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>""")!;
        var calls = OpenAiServer.ToolCalls(parsed.Calls, withIndex: true);
        var call = Assert.Single(calls)!;
        Assert.Equal("function", call["type"]!.GetValue<string>());
        Assert.Equal("get_weather", call["function"]!["name"]!.GetValue<string>());
        Assert.Equal("""{"city":"Paris"}""", call["function"]!["arguments"]!.GetValue<string>());
        Assert.StartsWith("call_", call["id"]!.GetValue<string>());
        Assert.Equal(0, call["index"]!.GetValue<int>());

        // A random model does not call tools: with the parser on, its answer is the text it gives without.
        var (_, model) = CliRunner.TinyModel("qwen3");
        using var served = ServedModel.Load(model, options: new ServingEngineOptions { MaxBatch = 4, MaxModelLength = 256 }, name: "tiny");
        await using var plain = await OpenAiServer.StartAsync(served, new ServerOptions { Port = 0, HandleSignals = false });
        const string body = """{"messages":[{"role":"user","content":"weather?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],"max_tokens":12,"temperature":0}""";
        var (_, expected) = await Post(plain, "v1/chat/completions", body);
        await plain.StopAsync();
        using var served2 = ServedModel.Load(model, options: new ServingEngineOptions { MaxBatch = 4, MaxModelLength = 256 }, name: "tiny");
        await using var parsing = await OpenAiServer.StartAsync(served2, new ServerOptions { Port = 0, HandleSignals = false, ToolCallParser = "hermes" });
        var (status, json) = await Post(parsing, "v1/chat/completions", body);
        Assert.Equal(HttpStatusCode.OK, status);
        var message = json!["choices"]![0]!["message"]!;
        Assert.Equal(expected!["choices"]![0]!["message"]!["content"]!.GetValue<string>(), message["content"]!.GetValue<string>());
        Assert.Empty(message["tool_calls"]!.AsArray());
        Assert.NotEqual("tool_calls", json["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var unknown = await Assert.ThrowsAsync<InputError>(() => OpenAiServer.StartAsync(served2, new ServerOptions { Port = 0, HandleSignals = false, ToolCallParser = "mistral" }));
        Assert.Contains("--tool-call-parser", unknown.Message);
    }

    [Fact]
    [Trait("Category", "Slow")]
    public async Task SigtermFinishesRequestsInFlightAndExitsZero()
    {
        var (_, model) = CliRunner.TinyModel("qwen2");
        int port = FreePort();
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } p ? p : "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "PostTrain.Cli.dll"));
        foreach (var arg in new[] { "serve", "--model", model, "--port", port.ToString(), "--max-model-len", "256" }) start.ArgumentList.Add(arg);
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList()) start.Environment.Remove(name);
        using var process = Process.Start(start)!;
        var stdout = new StringBuilder();
        var ready = new TaskCompletionSource();
        process.OutputDataReceived += (_, e) =>
        {
            lock (stdout) stdout.AppendLine(e.Data);
            if (e.Data?.StartsWith("Serving") == true) ready.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { lock (stdout) stdout.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(120) };
            var inFlight = http.PostAsync($"http://127.0.0.1:{port}/v1/completions",
                new StringContent("""{"prompt":"a","max_tokens":200,"temperature":1,"seed":2,"ignore_eos":true}"""));
            await Task.Delay(300);
            Process.Start("kill", ["-TERM", process.Id.ToString()])!.WaitForExit();
            using var response = await inFlight;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal(200, body["usage"]!["completion_tokens"]!.GetValue<int>());
            Assert.True(process.WaitForExit(60_000));
            process.WaitForExit(); // the output read to its end
            Assert.True(process.ExitCode == 0, stdout.ToString());
            Assert.Contains("Stopped after", stdout.ToString());
        }
        finally
        {
            if (!process.HasExited) process.Kill();
        }
    }

    static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
