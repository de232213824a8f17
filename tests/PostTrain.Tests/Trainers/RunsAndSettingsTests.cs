using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Tests.Cli;
using PostTrain.Tests.Tokenization;
using PostTrain.Tokenization;
using PostTrain.Trainers;

namespace PostTrain.Tests.Trainers;

/// <summary>The library's runs (what a .NET program calls), the declared settings, and the prompt and template rules they share.</summary>
public class RunsAndSettingsTests : IClassFixture<TokenizerFixture>
{
    readonly TokenizerFixture tokenizers;

    public RunsAndSettingsTests(TokenizerFixture tokenizers) => this.tokenizers = tokenizers;

    static string Jsonl(string root, string name, IEnumerable<JsonObject> records)
    {
        var path = Path.Combine(root, name);
        File.WriteAllLines(path, records.Select(r => r.ToJsonString()));
        return path;
    }

    [Fact]
    public void AnInterruptWhileLoadingEndsBeforeTheFirstStepWithAMessage()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Jsonl(root, "train.jsonl", Enumerable.Range(0, 8).Select(i => new JsonObject { ["prompt"] = $"Q{i}? ", ["completion"] = $"A{i}." }));
        var output = Path.Combine(root, "run");
        var log = new StringWriter();
        using var stop = new CancellationTokenSource();
        stop.Cancel(); // Ctrl-C while the model and data were loading
        var result = SftRun.Train(new SftOptions { Model = model, Data = data, Output = output, MaxSteps = 3, BatchSize = 4 }, log, stop: stop.Token);
        Assert.True(result.Interrupted);
        Assert.Equal(0, result.Steps);
        Assert.Contains("Interrupted before the first step: nothing was trained", log.ToString());
        Assert.False(File.Exists(Path.Combine(output, "metrics.jsonl")));
        Assert.Empty(Directory.GetDirectories(output, "checkpoint-*"));
        // Started again, the run goes from the beginning.
        Assert.False(SftRun.Train(new SftOptions { Model = model, Data = data, Output = output, MaxSteps = 1, BatchSize = 4 }, new StringWriter()).Interrupted);
    }

    [Fact]
    public void SftRunTrainsFromOptionsInAFewLines()
    {
        var (root, model) = CliRunner.TinyModel();
        var data = Jsonl(root, "train.jsonl", Enumerable.Range(0, 8).Select(i => new JsonObject { ["prompt"] = $"Q{i}? ", ["completion"] = $"A{i}." }));
        var output = Path.Combine(root, "run");
        var log = new StringWriter();
        var result = SftRun.Train(new SftOptions { Model = model, Data = data, Output = output, MaxSteps = 3, BatchSize = 4, LearningRate = 1e-3 }, log);
        Assert.Equal(3, result.Steps);
        Assert.False(result.Interrupted);
        Assert.Contains("Data: 8 records, prompt-completion", log.ToString());
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        // config.yaml is the declared settings; read back through the same table it gives the same options.
        var saved = File.ReadAllText(Path.Combine(output, "config.yaml"));
        var reread = SftOptions.Settings.ReadYaml(new SftOptions(), Path.Combine(output, "config.yaml"));
        Assert.Equal(saved, SftOptions.Settings.ToYaml(reread));
        Assert.Equal(3, reread.MaxSteps);
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void SftDropsSequencesLeftWithNoTrainedTokenAndSaysHowMany()
    {
        var (root, model) = CliRunner.TinyModel();
        var long_ = new string('x', 200);
        var data = Jsonl(root, "train.jsonl", [
            new JsonObject { ["prompt"] = "Q? ", ["completion"] = "A." },
            new JsonObject { ["prompt"] = long_, ["completion"] = "lost" },
            new JsonObject { ["prompt"] = "R? ", ["completion"] = "B." },
        ]);
        var options = new SftOptions { Model = model, Data = data, Output = Path.Combine(root, "run"), MaxLength = 16 };
        var log = new StringWriter();
        var tokenization = new SftTokenization(HfTokenizer.FromDirectory(model), null, allTokens: false);
        var units = SftRun.Prepare(tokenization, SftDataset.Load(data), options, data, log, "train");
        Assert.Equal(2, units.Count);
        Assert.Contains("Dropped 1 of 3 train sequences with no token to train on (after truncation)", log.ToString());
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void PlainPromptsGetTheTokenizersSpecialTokensAndChatPromptsOnlyTheTemplates()
    {
        // As TRL's GRPOTrainer: processing_class(text=prompts) for strings (Llama 3's BOS added);
        // apply_chat_template(tokenize=True) for conversations (BOS written once, by the template).
        var root = TestModels.TempDir();
        var tokenizer = tokenizers.Get("llama3-template");
        var template = ChatTemplate.FromModelDirectory(tokenizers.Dir("llama3-template"));
        var plain = PromptDataset.Load(Jsonl(root, "plain.jsonl", [new JsonObject { ["prompt"] = "What is 2+2?", ["answer"] = "4" }]));
        var chat = PromptDataset.Load(Jsonl(root, "chat.jsonl", [new JsonObject
        {
            ["prompt"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "What is 2+2?" }), ["answer"] = "4",
        }]));
        var prompts = new PromptTokenization(tokenizer, template, null, "prompt", maxPrompt: 1000);
        var plainIds = prompts.Tokenize(plain, TextWriter.Null, "train")[0].Ids;
        Assert.Equal(128000, plainIds[0]);
        Assert.Equal(tokenizer.Encode("What is 2+2?"), plainIds[1..]);
        var chatIds = prompts.Tokenize(chat, TextWriter.Null, "train")[0].Ids;
        Assert.Equal(128000, chatIds[0]);
        Assert.Equal(1, chatIds.Count(id => id == 128000));
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void ChatTemplateKwargsReachTheTemplateInEveryMethod()
    {
        var root = TestModels.TempDir();
        TestTokenizers.WriteTiny(root);
        var tokenizer = HfTokenizer.FromDirectory(root);
        var template = ChatTemplate.Parse(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' and not (enable_thinking is defined and enable_thinking == false) %}<think>\n{% endif %}{{ m.content }}<|im_end|>\n{% endfor %}" +
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and enable_thinking == false %}<think></think>{% endif %}{% endif %}", "test");
        var messages = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" }, new JsonObject { ["role"] = "assistant", ["content"] = "yo" });
        var variables = ChatTemplateKwargs.Parse("enable_thinking=false", "--chat-template-kwargs");
        var example = new ConversationExample("t.jsonl:1", messages, null);
        var with = new SftConversations(tokenizer, template, allTokens: false, variables).Tokenize(example);
        var without = new SftConversations(tokenizer, template, allTokens: false).Tokenize(example);
        Assert.Equal(tokenizer.Encode("<think>\n").Length, without.Length - with.Length);

        var prompt = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        var pair = new ConversationPreferenceExample("t.jsonl:1", prompt, new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = "a" }),
            new JsonArray(new JsonObject { ["role"] = "assistant", ["content"] = "b" }), null);
        var dpo = new DpoTokenization(tokenizer, template, variables).Tokenize(pair);
        Assert.EndsWith("<think></think>", tokenizer.Decode(dpo.PromptIds, skipSpecialTokens: false));
        Directory.Delete(root, recursive: true);
    }

    [Theory]
    [InlineData("{\"enable_thinking\": false, \"n\": 2}")]
    [InlineData("enable_thinking=false,n=2")]
    public void ChatTemplateKwargsReadAsJsonOrKeyValueItems(string text)
    {
        var v = ChatTemplateKwargs.Parse(text, "--chat-template-kwargs");
        Assert.Equal("false", ((JsonNode)v["enable_thinking"]!).ToJsonString());
        Assert.Equal("2", ((JsonNode)v["n"]!).ToJsonString());
        var e = Assert.Throws<InputError>(() => ChatTemplateKwargs.Parse("enable_thinking=False", "--chat-template-kwargs"));
        Assert.StartsWith("--chat-template-kwargs: 'enable_thinking=False': value is not JSON", e.Message);
    }

    [Fact]
    public void EveryVerbTakesAConfigFileAndTheCommandLineOverridesIt()
    {
        var (root, model) = CliRunner.TinyModel();
        var input = Path.Combine(root, "in.jsonl");
        File.WriteAllText(input, "{\"prompt_ids\": [5, 6, 7]}\n");
        var yaml = Path.Combine(root, "generate.yaml");
        File.WriteAllText(yaml, $"model: {model}\ninput: {input}\nmax-new-tokens: 3\ntemperature: 0\ndtype: bf16\n");
        var (code, stdout, stderr) = CliRunner.Run("generate", "--config", yaml, "--max-new-tokens", "2");
        Assert.True(code == 0, stderr);
        Assert.Equal(2, JsonNode.Parse(stdout.Trim())!["completions"]![0]!["token_ids"]!.AsArray().Count);

        File.WriteAllText(yaml, $"model: {model}\ninput: {input}\nmax-new-tokenz: 3\n");
        (code, _, stderr) = CliRunner.Run("generate", "--config", yaml);
        Assert.Equal(2, code);
        Assert.Equal($"error: {yaml}:3: max-new-tokenz: unknown setting of `generate`", stderr.Trim());
        Directory.Delete(root, recursive: true);
    }

    [Fact]
    public void DtypesHaveOneSpellingWithAliases()
    {
        var (root, model) = CliRunner.TinyModel("qwen2", "--dtype", "float16");
        Assert.Contains("\"torch_dtype\": \"float16\"", File.ReadAllText(Path.Combine(model, "config.json")).Replace("\":\"", "\": \""));
        var input = Path.Combine(root, "in.jsonl");
        File.WriteAllText(input, "{\"input_ids\": [5, 6, 7]}\n");
        foreach (var dtype in new[] { "float32", "f32", "bfloat16", "bf16", "float16", "f16" })
        {
            var (code, _, stderr) = CliRunner.Run("logprobs", "--model", model, "--input", input, "--dtype", dtype);
            Assert.True(code == 0, dtype + ": " + stderr);
        }
        Directory.Delete(root, recursive: true);
    }
}
