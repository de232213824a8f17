using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Serving;

namespace PostTrain.Tests.Serving;

public class PostTrainChatClientTests
{
    // ChatML with the tools listed in a system turn first (as Qwen's templates do), so tests see them.
    const string ToolsTemplate =
        "{% if tools %}{{ '<|im_start|>system\\nTools:' }}{% for t in tools %}{{ ' ' + t['function']['name'] + '=' + t['function']['description'] + ' ' + (t['function']['parameters'] | tojson) }}{% endfor %}{{ '<|im_end|>\\n' }}{% endif %}" +
        TestTokenizers.ChatMlTemplate;

    /// <summary>A tiny Qwen3 model directory with the test tokenizer (ChatML, &lt;|im_end|&gt; the end of sequence), served.</summary>
    static ServedModel Served(string template = TestTokenizers.ChatMlTemplate, long seed = 3)
    {
        var dir = Path.Combine(TestModels.TempDir(), "tiny-chat");
        var probe = TestModels.TempDir();
        int vocab = TestTokenizers.WriteTiny(probe);
        var config = ModelConfig.Create(Architecture.Qwen3, vocabSize: vocab, hiddenSize: 32, intermediateSize: 48, layers: 2, heads: 4,
            kvHeads: 2, headDim: 16, maxPositions: 256, eosTokenIds: [vocab - 1]);
        using (var model = TestModels.Random(config, seed: seed, std: 0.3))
            HfCheckpoint.Save(model, dir);
        TestTokenizers.WriteTiny(dir, template);
        return ServedModel.Load(dir, options: new ServingEngineOptions { MaxBatch = 4 });
    }

    static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "You are terse."),
        new(ChatRole.User, "Hello there, the answer?"),
    ];

    const string ConversationText =
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHello there, the answer?<|im_end|>\n<|im_start|>assistant\n";

    [Fact]
    public async Task GreedyResponseIsTheGenerationEnginesOnTheRenderedPrompt()
    {
        using var served = Served();
        using var client = new PostTrainChatClient(served);
        var response = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 24 });

        var prompt = served.Tokenizer.Encode(ConversationText);
        var local = new GenerationEngine(served.Model, served.Decode)
            .Generate([prompt], served.DefaultSampling() with { Temperature = 0, MaxNewTokens = 24 })[0][0];
        var message = Assert.Single(response.Messages);
        Assert.Equal(ChatRole.Assistant, message.Role);
        Assert.Equal(local.Text, response.Text);
        Assert.Equal(local.FinishReason == "length" ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(prompt.Length, response.Usage!.InputTokenCount);
        Assert.Equal(local.TokenIds.Length, response.Usage.OutputTokenCount);
        Assert.Equal(prompt.Length + local.TokenIds.Length, response.Usage.TotalTokenCount);
        Assert.Equal(served.Name, response.ModelId);
        Assert.StartsWith("chatcmpl-", response.ResponseId);
        Assert.NotNull(response.CreatedAt);
        Assert.Equal(prompt, client.Request(Conversation).Prompt);
    }

    [Fact]
    public async Task StreamedUpdatesAddUpToTheResponseAndEndWithUsageAndFinishReason()
    {
        using var served = Served();
        using var client = new PostTrainChatClient(served);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 30, StopSequences = ["zq"] };
        var whole = await client.GetResponseAsync(Conversation, options);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in client.GetStreamingResponseAsync(Conversation, options)) updates.Add(u);

        Assert.True(updates.Count >= 2, "text came in pieces");
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        Assert.All(updates[..^1], u => Assert.Null(u.FinishReason));
        var last = updates[^1];
        Assert.Equal(whole.FinishReason, last.FinishReason);
        var usage = Assert.Single(last.Contents.OfType<UsageContent>()).Details;
        Assert.Equal(whole.Usage!.InputTokenCount, usage.InputTokenCount);
        Assert.Equal(whole.Usage.OutputTokenCount, usage.OutputTokenCount);
        Assert.Single(updates.Select(u => u.ResponseId).Distinct());

        var joined = updates.ToChatResponse();
        Assert.Equal(whole.Text, joined.Text);
        Assert.Equal(whole.Usage.TotalTokenCount, joined.Usage!.TotalTokenCount);

        // With tools (their text held back while it may start a call), the same.
        options.Tools = [AIFunctionFactory.CreateDeclaration("f", "A function", JsonDocument.Parse("{\"type\":\"object\"}").RootElement)];
        var withTools = await client.GetResponseAsync(Conversation, options);
        var streamed = await client.GetStreamingResponseAsync(Conversation, options).ToChatResponseAsync();
        Assert.Equal(withTools.Text, streamed.Text);
        Assert.Equal(withTools.FinishReason, streamed.FinishReason);
    }

    [Fact]
    public async Task ASeedReproducesASampledResponseAsTheGenerationEngineSamplesIt()
    {
        using var served = Served();
        using var client = new PostTrainChatClient(served);
        ChatOptions Options(long seed) => new() { Temperature = 0.9f, TopP = 0.95f, TopK = 50, Seed = seed, MaxOutputTokens = 20 };
        var a = await client.GetResponseAsync(Conversation, Options(7));
        var b = await client.GetResponseAsync(Conversation, Options(7));
        var c = await client.GetResponseAsync(Conversation, Options(8));
        Assert.Equal(a.Text, b.Text);
        Assert.NotEqual(a.Text, c.Text);

        var local = new GenerationEngine(served.Model, served.Decode).Generate([served.Tokenizer.Encode(ConversationText)],
            served.DefaultSampling() with { Temperature = 0.9, TopP = 0.95, TopK = 50, Seed = 7, MaxNewTokens = 20 })[0][0];
        Assert.Equal(local.Text, a.Text);
    }

    [Fact]
    public void HermesToolCallsParseIntoFunctionCalls()
    {
        var parsed = PostTrainChatClient.ParseToolCalls(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>\n" +
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": \"{\\\"zone\\\": \\\"CET\\\"}\"}\n</tool_call>");
        Assert.NotNull(parsed);
        Assert.Equal("Let me check.\n", parsed!.Text);
        Assert.Equal(2, parsed.Calls.Count);
        var weather = parsed.Calls[0];
        Assert.Equal("get_weather", weather.Name);
        Assert.Equal("Paris", ((JsonElement)weather.Arguments!["city"]!).GetString());
        Assert.Equal(2, ((JsonElement)weather.Arguments["days"]!).GetInt32());
        Assert.Equal("CET", ((JsonElement)parsed.Calls[1].Arguments!["zone"]!).GetString());
        Assert.StartsWith("call_", weather.CallId);
        Assert.NotEqual(weather.CallId, parsed.Calls[1].CallId);

        // An unclosed last block (the response ran out of tokens) still counts, as in vLLM.
        Assert.Equal("f", Assert.Single(PostTrainChatClient.ParseToolCalls("<tool_call>{\"name\": \"f\", \"arguments\": {}}")!.Calls).Name);
        Assert.Null(PostTrainChatClient.ParseToolCalls("no calls here"));
        Assert.Null(PostTrainChatClient.ParseToolCalls("<tool_call>{\"name\": \"f\", \"arguments\": {</tool_call>"));
        Assert.Null(PostTrainChatClient.ParseToolCalls("<tool_call>{\"arguments\": {}}</tool_call>"));
    }

    [Theory]
    [InlineData("Let me check.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>\n<tool_call>{\"name\": \"g\"}</tool_call>", "Let me check.\n", 2)]
    [InlineData("\n\n<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", "", 1)]
    [InlineData("a <tool_ b <tool_call>{broken</tool_call>", "a <tool_ b <tool_call>{broken</tool_call>", 0)]
    [InlineData("plain text, trailing space ", "plain text, trailing space ", 0)]
    public void StreamedToolCallTextAddsUpToTheParse(string output, string text, int calls)
    {
        foreach (int chunk in new[] { 1, 3, 7, output.Length })
        {
            var streamed = new PostTrainChatClient.StreamedText(tools: true);
            var sent = string.Concat(output.Chunk(chunk).Select(c => streamed.Add(new string(c))));
            Assert.DoesNotContain("<tool_call>", calls > 0 ? sent : "");
            var (contents, toolCalls) = streamed.End();
            Assert.Equal(text, sent + string.Concat(contents.OfType<TextContent>().Select(c => c.Text)));
            Assert.Equal(calls, contents.OfType<FunctionCallContent>().Count());
            Assert.Equal(calls > 0, toolCalls);
        }
    }

    [Fact]
    public void ToolsReachTheTemplateAndCallsAndResultsTakeOpenAisShapes()
    {
        using var served = Served(ToolsTemplate);
        using var client = new PostTrainChatClient(served);
        var schema = JsonDocument.Parse("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}").RootElement;
        var tool = AIFunctionFactory.CreateDeclaration("get_weather", "Weather by city", schema);
        var request = client.Request(Conversation, new ChatOptions { Tools = [tool], Temperature = 0 });
        var text = served.Tokenizer.Decode(request.Prompt);
        Assert.StartsWith("<|im_start|>system\nTools: get_weather=Weather by city {", text);
        Assert.Contains("\"city\"", text);
        Assert.EndsWith(ConversationText, text);
        // ToolMode None leaves the tools out.
        var none = client.Request(Conversation, new ChatOptions { Tools = [tool], ToolMode = ChatToolMode.None });
        Assert.Equal(ConversationText, served.Tokenizer.Decode(none.Prompt));

        var messages = PostTrainChatClient.Messages(
        [
            new(ChatRole.User, "Weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", new { temperature = 21 })]),
        ], instructions: "Be brief.");
        var expected = JsonNode.Parse("""
            [
              {"role": "system", "content": "Be brief."},
              {"role": "user", "content": "Weather in Paris?"},
              {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
              {"role": "tool", "content": "{\"temperature\":21}", "tool_call_id": "call_1"}
            ]
            """);
        Assert.True(JsonNode.DeepEquals(expected, messages), messages.ToJsonString());
        var tools = PostTrainChatClient.Tools([tool])!;
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(
            "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather by city\",\"parameters\":" + schema.GetRawText() + "}}]"), tools));
    }

    [Fact]
    public async Task CancellingAStreamFreesTheEngineForTheNextRequest()
    {
        using var served = Served();
        using var client = new PostTrainChatClient(served);
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 200 };
        using var cancel = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in client.GetStreamingResponseAsync(Conversation, options, cancel.Token))
            {
                seen++;
                cancel.Cancel();
            }
        });
        Assert.Equal(1, seen);
        var next = await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 5 });
        Assert.Equal(5, next.Usage!.OutputTokenCount);
        Assert.Equal(1, served.Engine.Stats.Cancelled);

        // Leaving the enumeration early cancels too.
        await foreach (var u in client.GetStreamingResponseAsync(Conversation, options)) break;
        await client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 5 });
        Assert.Equal(2, served.Engine.Stats.Cancelled);
    }

    [Fact]
    public async Task ModelIdsErrorsAndServices()
    {
        using var served = Served();
        using var client = new PostTrainChatClient(served);
        var error = await Assert.ThrowsAsync<InputError>(() => client.GetResponseAsync(Conversation, new ChatOptions { ModelId = "nope" }));
        Assert.Contains("'nope'", error.Message);
        var named = await client.GetResponseAsync(Conversation, new ChatOptions { ModelId = served.Name, Temperature = 0, MaxOutputTokens = 3 });
        Assert.Equal(served.Name, named.ModelId);

        var tooLong = await Assert.ThrowsAsync<InputError>(() => client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 250 }));
        Assert.Contains("maximum context length is 256", tooLong.Message);
        var penalty = await Assert.ThrowsAsync<NotSupportedException>(() => client.GetResponseAsync(Conversation, new ChatOptions { FrequencyPenalty = 0.5f }));
        Assert.Contains("FrequencyPenalty", penalty.Message);
        await client.GetResponseAsync(Conversation, new ChatOptions { PresencePenalty = 0, MaxOutputTokens = 2 });

        var metadata = client.GetService<ChatClientMetadata>()!;
        Assert.Equal("posttrain", metadata.ProviderName);
        Assert.Null(metadata.ProviderUri);
        Assert.Equal(served.Name, metadata.DefaultModelId);
        Assert.Same(client, client.GetService<IChatClient>());
        Assert.Same(client, client.GetService<PostTrainChatClient>());
        Assert.Null(client.GetService<IChatClient>("key"));
        Assert.Null(client.GetService<string>());
    }

    [Fact]
    public void ChatTemplateKwargsBecomeTemplateVariables()
    {
        using var served = Served("{% if greeting %}{{ greeting }}{% endif %}" + TestTokenizers.ChatMlTemplate);
        using var client = new PostTrainChatClient(served, ownsModel: false);
        var options = new ChatOptions
        {
            AdditionalProperties = new AdditionalPropertiesDictionary { ["chat_template_kwargs"] = new Dictionary<string, object?> { ["greeting"] = "Hi! " } },
        };
        Assert.Equal("Hi! " + ConversationText, served.Tokenizer.Decode(client.Request(Conversation, options).Prompt));
        Assert.Equal(ConversationText, served.Tokenizer.Decode(client.Request(Conversation).Prompt));
    }
}
