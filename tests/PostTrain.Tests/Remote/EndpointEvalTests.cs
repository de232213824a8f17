using System.Text.Json.Nodes;
using PostTrain.Tests.Cli;

namespace PostTrain.Tests.Remote;

public class EndpointEvalTests
{
    static string Write(string path, IEnumerable<JsonObject> lines)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllLines(path, lines.Select(l => l.ToJsonString()));
        return path;
    }

    static List<JsonObject> Samples(string dir, string task) =>
        File.ReadAllLines(Path.Combine(dir, $"samples_{task}.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    /// <summary>Every (log-likelihood, greedy) answer of a multiple-choice samples file, in order.</summary>
    static List<(double, bool)> Loglikelihoods(string dir, string task) =>
        Samples(dir, task).SelectMany(s => s["filtered_resps"]!.AsArray().Select(r => (Number(r![0]!), Number(r[1]!) != 0))).ToList();

    /// <summary>lm-eval writes a response's numbers and booleans as strings ("-3.5", "True").</summary>
    static double Number(JsonNode n) => n.GetValueKind() switch
    {
        System.Text.Json.JsonValueKind.String => n.GetValue<string>() switch
        {
            "True" => 1, "False" => 0, var x => double.Parse(x, System.Globalization.CultureInfo.InvariantCulture),
        },
        System.Text.Json.JsonValueKind.True => 1,
        System.Text.Json.JsonValueKind.False => 0,
        _ => n.GetValue<double>(),
    };

    [Fact]
    public void EndpointEvaluationEqualsTheLocalModel()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var arc = Path.Combine(root, "arc");
        Write(Path.Combine(arc, "test.jsonl"), EvalCommandTests.ArcRows(5));
        Write(Path.Combine(arc, "train.jsonl"), EvalCommandTests.ArcRows(2));
        var gsm = Path.Combine(root, "gsm");
        foreach (var split in new[] { "test", "train" })
            Write(Path.Combine(gsm, split + ".jsonl"), Enumerable.Range(1, 3).Select(i => new JsonObject
            {
                ["question"] = $"What is {i} plus {i}?",
                ["answer"] = $"{i} plus {i} is {2 * i}.\n#### {2 * i}",
            }));
        string[] Args(string output, params string[] more) =>
            ["eval", "--tasks", "arc_easy,gsm8k", "--data", $"arc_easy={arc}", "--data", $"gsm8k={gsm}", "--num-fewshot", "1", "--output", output, "--batch-size", "2", .. more];

        var local = Path.Combine(root, "local");
        var (code, stdout, stderr) = CliRunner.Run(Args(local, "--model", model));
        Assert.True(code == 0, stderr + stdout);

        using var server = new FakeOpenAiServer(model, servedName: "served-tiny");
        // With the tokenizer (--model): requests tokenized here, as lm-eval's local-completions with tokenized_requests.
        var tokenized = Path.Combine(root, "tokenized");
        (code, stdout, stderr) = CliRunner.Run(Args(tokenized, "--endpoint", server.Url, "--model", model));
        Assert.True(code == 0, stderr + stdout);
        var expected = Loglikelihoods(local, "arc_easy");
        Assert.Equal(15, expected.Count);
        var actual = Loglikelihoods(tokenized, "arc_easy");
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Item1, actual[i].Item1, 4);
            Assert.Equal(expected[i].Item2, actual[i].Item2);
        }
        string Responses(string dir) => string.Join("\n", Samples(dir, "gsm8k").Select(s => s["resps"]!.ToJsonString()));
        Assert.Contains(Samples(local, "gsm8k"), s => s["resps"]![0]![0]!.GetValue<string>().Length > 0);
        Assert.Equal(Responses(local), Responses(tokenized));
        var echo = server.Requests.First(r => r.Body?["echo"] is not null).Body!;
        Assert.Equal("served-tiny", echo["model"]!.GetValue<string>());
        Assert.Equal(1, echo["max_tokens"]!.GetValue<int>());
        var generate = server.Requests.Last(r => r.Path == "/v1/completions").Body!;
        Assert.Equal(["Question:", "</s>", "<|im_end|>"], generate["stop"]!.AsArray().Select(s => s!.GetValue<string>()));
        Assert.Equal(0, generate["temperature"]!.GetValue<double>());
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(tokenized, "results.json")))!["config"]!;
        Assert.Equal(server.Url, config["endpoint"]!.GetValue<string>());

        // Without it: text prompts, the continuation found by text_offset; the same tokens here, so the same numbers.
        var text = Path.Combine(root, "text");
        (code, stdout, stderr) = CliRunner.Run(Args(text, "--endpoint", server.Url + "/v1/", "--endpoint-model", "served-tiny"));
        Assert.True(code == 0, stderr + stdout);
        actual = Loglikelihoods(text, "arc_easy");
        for (int i = 0; i < expected.Count; i++) Assert.Equal(expected[i].Item1, actual[i].Item1, 4);
        Assert.Equal(Responses(local), Responses(text));

        // A chat template is rendered here: without --model there is none.
        (code, _, stderr) = CliRunner.Run(Args(Path.Combine(root, "chat"), "--endpoint", server.Url, "--apply-chat-template"));
        Assert.Equal(2, code);
        Assert.Contains("--apply-chat-template: with --endpoint, give --model DIR for the chat template", stderr);
        (code, _, stderr) = CliRunner.Run(Args(Path.Combine(root, "unknown"), "--endpoint", server.Url, "--endpoint-model", "nope"));
        Assert.Equal(2, code);
        Assert.Equal($"error: {server.Url}/v1/completions: HTTP 404 Not Found: The model `nope` does not exist.", stderr.Trim());
    }

    [Fact]
    public async Task EvaluationThroughPosttrainServeEqualsTheLocalModel()
    {
        var (root, model) = CliRunner.TinyModel("qwen3");
        var arc = Path.Combine(root, "arc");
        Write(Path.Combine(arc, "test.jsonl"), EvalCommandTests.ArcRows(4));
        Write(Path.Combine(arc, "train.jsonl"), EvalCommandTests.ArcRows(2));
        string[] Args(string output, params string[] more) =>
            ["eval", "--tasks", "arc_easy", "--data", $"arc_easy={arc}", "--num-fewshot", "1", "--output", output, "--batch-size", "2", .. more];
        var local = Path.Combine(root, "local");
        var (code, stdout, stderr) = CliRunner.Run(Args(local, "--model", model));
        Assert.True(code == 0, stderr + stdout);
        var expected = Loglikelihoods(local, "arc_easy");

        using var served = PostTrain.Serving.ServedModel.Load(model, options: new PostTrain.Serving.ServingEngineOptions { MaxBatch = 4, MaxModelLength = 512 });
        await using var server = await PostTrain.Cli.Serving.OpenAiServer.StartAsync(served, new PostTrain.Cli.Serving.ServerOptions { Port = 0, HandleSignals = false });
        foreach (var (name, more) in new[] { ("tokenized", new[] { "--model", model }), ("text", Array.Empty<string>()) })
        {
            var output = Path.Combine(root, name);
            (code, stdout, stderr) = await Task.Run(() => CliRunner.Run(Args(output, [.. more, "--endpoint", server.Address.ToString()])));
            Assert.True(code == 0, stderr + stdout);
            var actual = Loglikelihoods(output, "arc_easy");
            Assert.Equal(expected.Count, actual.Count);
            for (int i = 0; i < expected.Count; i++)
            {
                Assert.Equal(expected[i].Item1, actual[i].Item1, 4);
                Assert.Equal(expected[i].Item2, actual[i].Item2);
            }
        }
    }
}
