using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Remote;
using PostTrain.Tests.Cli;
using PostTrain.Trainers;

namespace PostTrain.Tests.Remote;

public class RemoteRolloutTests
{
    static string Prompts(string root)
    {
        var path = Path.Combine(root, "gsm8k.jsonl");
        File.WriteAllLines(path, Enumerable.Range(1, 8).Select(i => new JsonObject
        {
            ["question"] = $"What is {i} plus {i}?",
            ["answer"] = $"#### {2 * i}",
        }.ToJsonString()));
        return path;
    }

    static List<JsonObject> Metrics(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).Where(m => m.ContainsKey("reward")).ToList();

    static string[] Grpo(string model, string data, string output, int steps = 3) =>
    [
        "grpo", "--model", model, "--data", data, "--output", output, "--prompt-field", "question", "--reward", "format", "--format-pattern", "(?s).*[aeiou].*",
        "--num-generations", "4", "--batch-size", "8", "--max-completion-length", "8", "--max-steps", $"{steps}", "--logging-steps", "1", "--learning-rate", "0.05",
        "--log-completions-steps", "1",
        "--lora", "--lora-r", "4", "--lora-dropout", "0", "--seed", "3",
    ];

    [Fact]
    public void GrpoWithLoraOnARolloutServerPublishesTheAdapterEveryStepAndSamplesAsALocalRun()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Prompts(root);
        var local = Path.Combine(root, "local");
        var (code, stdout, stderr) = CliRunner.Run(Grpo(model, data, local));
        Assert.True(code == 0, stderr + stdout);

        using var server = new FakeOpenAiServer(model, apiKey: "secret");
        var remote = Path.Combine(root, "remote");
        (code, stdout, stderr) = CliRunner.Run([.. Grpo(model, data, remote), "--rollout-server", server.Url + "/v1", "--rollout-api-key", "secret"]);
        Assert.True(code == 0, stderr + stdout);

        // One adapter per rollout, written before it was loaded, each unloaded and deleted after the next (the last at the end).
        Assert.Equal(["remote-step-0", "remote-step-1", "remote-step-2"], server.Loaded.Select(l => l.Name));
        Assert.All(server.Loaded, l => Assert.True(l.HadWeights, l.Path));
        Assert.Equal(Path.Combine(remote, "rollout_adapters", "step-1"), server.Loaded[1].Path);
        Assert.Equal(["remote-step-0", "remote-step-1", "remote-step-2"], server.Unloaded);
        Assert.False(Directory.Exists(Path.Combine(remote, "rollout_adapters")));
        var completions = server.Requests.Where(r => r.Path == "/v1/completions").Select(r => r.Body!).ToList();
        Assert.Equal(3, completions.Count);
        Assert.Equal("remote-step-2", completions[2]["model"]!.GetValue<string>());
        Assert.Equal(4, completions[0]["n"]!.GetValue<int>());
        Assert.True(completions[0]["return_token_ids"]!.GetValue<bool>());
        Assert.Equal(2, completions[0]["prompt"]!.AsArray().Count);

        // The server's engine, seed and adapter are the trainer's: the same completions, so the same rewards and lengths.
        var a = Metrics(local);
        var b = Metrics(remote);
        Assert.Equal(3, b.Count);
        for (int s = 0; s < 3; s++)
            foreach (var key in new[] { "reward", "reward_std", "completions/mean_length", "completions/max_length", "completions/clipped_ratio" })
                Assert.True(a[s][key]!.GetValue<double>() == b[s][key]!.GetValue<double>(), $"step {s + 1} {key}: {a[s][key]} local, {b[s][key]} remote");
        // The policy learnt (rewards differ within groups), so the later rollouts test the published adapters; each sampled the same texts.
        Assert.Contains(a, m => m["reward_std"]!.GetValue<double>() > 0);
        Assert.Contains(a, m => m["grad_norm"]!.GetValue<double>() > 0);
        var localTexts = File.ReadAllLines(Path.Combine(local, "completions.jsonl"));
        Assert.Equal(24, localTexts.Length);
        Assert.Equal(localTexts, File.ReadAllLines(Path.Combine(remote, "completions.jsonl")));
        // TRL's sampling statistics: the server's log-probabilities are the trainer's up to batching, so the ratios are 1.
        foreach (var m in b)
        {
            Assert.True(m["sampling/sampling_logp_difference/max"]!.GetValue<double>() < 1e-4, m.ToJsonString());
            Assert.Equal(1.0, m["sampling/importance_sampling_ratio/mean"]!.GetValue<double>(), 3);
        }
        Assert.DoesNotContain(a, m => m.ContainsKey("sampling/importance_sampling_ratio/mean"));
        Assert.Contains("rollout-server: \"" + server.Url + "/v1\"", File.ReadAllText(Path.Combine(remote, "config.yaml")));
        Assert.True(File.Exists(Path.Combine(remote, PeftAdapter.WeightsFile)));
    }

    [Fact]
    public async Task GrpoWithLoraOnPosttrainServeSamplesAsALocalRun()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Prompts(root);
        var local = Path.Combine(root, "local");
        var (code, stdout, stderr) = CliRunner.Run(Grpo(model, data, local));
        Assert.True(code == 0, stderr + stdout);

        // The real server, started as `posttrain serve` starts it (in process, any free port).
        using var served = PostTrain.Serving.ServedModel.Load(model, options: new PostTrain.Serving.ServingEngineOptions { MaxBatch = 8, MaxModelLength = 128 });
        await using var server = await PostTrain.Cli.Serving.OpenAiServer.StartAsync(served, new PostTrain.Cli.Serving.ServerOptions { Port = 0, ApiKey = "secret", HandleSignals = false });
        var remote = Path.Combine(root, "remote");
        (code, stdout, stderr) = await Task.Run(() => CliRunner.Run([.. Grpo(model, data, remote), "--rollout-server", server.Address.ToString(), "--rollout-api-key", "secret"]));
        Assert.True(code == 0, stderr + stdout);

        // Every step's adapter was published and, at the end, unloaded again.
        Assert.Empty(served.Engine.Adapters);
        Assert.Equal(3, served.Engine.Stats.Requests / 2); // 2 prompts per rollout, 3 rollouts
        Assert.False(Directory.Exists(Path.Combine(remote, "rollout_adapters")));
        // Seeded sampling on the server is the trainer's own: the same completions, rewards and lengths.
        Assert.Equal(File.ReadAllLines(Path.Combine(local, "completions.jsonl")), File.ReadAllLines(Path.Combine(remote, "completions.jsonl")));
        var a = Metrics(local);
        var b = Metrics(remote);
        for (int s = 0; s < 3; s++)
            foreach (var key in new[] { "reward", "reward_std", "completions/mean_length", "completions/clipped_ratio" })
                Assert.True(a[s][key]!.GetValue<double>() == b[s][key]!.GetValue<double>(), $"step {s + 1} {key}: {a[s][key]} local, {b[s][key]} remote");
        Assert.Contains(a, m => m["reward_std"]!.GetValue<double>() > 0);
        foreach (var m in b)
            Assert.True(m["sampling/sampling_logp_difference/max"]!.GetValue<double>() < 1e-3, m.ToJsonString());
    }

    [Fact]
    public void TheCorrectionWeightsTheLossOfGrpoRlooAndPpo()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Prompts(root);
        using var server = new FakeOpenAiServer(model) { LogprobShift = -0.5 }; // each token's ratio exp(0.5)
        string[] Run(string name, params string[] more)
        {
            var output = Path.Combine(root, name);
            var (code, stdout, stderr) = CliRunner.Run([.. Grpo(model, data, output, steps: 1), "--rollout-server", server.Url, .. more]);
            Assert.True(code == 0, stderr + stdout);
            return [.. Metrics(output).Select(m => m.ToJsonString())];
        }
        JsonObject First(string[] metrics) => JsonNode.Parse(metrics[0])!.AsObject();
        double Get(JsonObject m, string key) => m[key]!.GetValue<double>();
        var off = First(Run("off", "--vllm-importance-sampling-correction", "false"));
        Assert.False(off.ContainsKey("sampling/importance_sampling_ratio/mean"));
        Assert.NotEqual(0, Get(off, "loss"));
        Assert.True(Get(off, "grad_norm") > 0);
        // token_truncate: every token's loss times exp(0.5) (under clip-max 3), the same completions.
        var token = First(Run("token", "--vllm-importance-sampling-mode", "token_truncate"));
        Assert.Equal(Math.Exp(0.5), Get(token, "sampling/importance_sampling_ratio/mean"), 3);
        Assert.Equal(0.5, Get(token, "sampling/sampling_logp_difference/mean"), 3);
        Assert.Equal(Math.Exp(0.5) * Get(off, "loss"), Get(token, "loss"), 4);
        // sequence_mask: a completion of 3 tokens or more has ratio exp(1.5) or more, over clip-max 3: masked, no loss, no gradient.
        var sequence = First(Run("sequence", "--vllm-importance-sampling-mode", "sequence_mask"));
        Assert.True(Get(sequence, "completions/min_length") >= 3);
        Assert.Equal(0, Get(sequence, "sampling/importance_sampling_ratio/max"));
        Assert.Equal(0, Get(sequence, "grad_norm"));

        // RLOO and PPO sample remotely too, with the correction logged.
        foreach (var verb in new[] { "rloo", "ppo" })
        {
            var output = Path.Combine(root, verb);
            var (code, stdout, stderr) = CliRunner.Run(verb, "--model", model, "--data", data, "--output", output, "--prompt-field", "question",
                "--reward", "format", "--format-pattern", "(?s).*[aeiou].*", "--batch-size", "4", "--max-completion-length", "6", "--max-steps", "2",
                "--logging-steps", "1", "--lora", "--lora-r", "4", "--rollout-server", server.Url, "--vllm-importance-sampling-clip-max", "100");
            Assert.True(code == 0, stderr + stdout);
            var metrics = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
            Assert.All(metrics, m => Assert.True(m["sampling/importance_sampling_ratio/max"]!.GetValue<double>() > 1.6, verb));
        }
        Assert.Contains(server.Loaded, l => l.Name == "ppo-step-0"); // one rollout for --num-ppo-epochs (4) steps
    }

    [Fact]
    public void AnAdapterLeftOnTheServerByACrashedRunIsReplaced()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Prompts(root);
        using var server = new FakeOpenAiServer(model);
        var output = Path.Combine(root, "first", "again");
        var (code, stdout, stderr) = CliRunner.Run([.. Grpo(model, data, output, steps: 1), "--rollout-server", server.Url]);
        Assert.True(code == 0, stderr + stdout);
        // The server keeps "again-step-0" (here the first run's final adapter) as a killed run would have left it.
        using (var client = new OpenAiClient(server.Url, null, 30))
            client.PostForText("/v1/load_lora_adapter", new JsonObject { ["lora_name"] = "again-step-0", ["lora_path"] = output });
        (code, stdout, stderr) = CliRunner.Run([.. Grpo(model, data, Path.Combine(root, "second", "again"), steps: 1), "--rollout-server", server.Url]);
        Assert.True(code == 0, stderr + stdout);
        Assert.Equal(["again-step-0", "again-step-0", "again-step-0", "again-step-0"], server.Loaded.Select(l => l.Name)); // run, crash, refused, reloaded
        Assert.Equal(["again-step-0", "again-step-0", "again-step-0"], server.Unloaded);
    }

    [Fact]
    public void RolloutServerErrorsAreOneLineNamingTheUrl()
    {
        var (root, model) = CliRunner.TinyModel("qwen2");
        var data = Prompts(root);
        // Nothing listens: connection refused after the retries, exit 2.
        var down = $"http://127.0.0.1:{FakeOpenAiServer.FreePort()}";
        var (code, stdout, stderr) = CliRunner.Run([.. Grpo(model, data, Path.Combine(root, "down")), "--rollout-server", down]);
        Assert.True(code == 2, stderr + stdout);
        Assert.Equal($"error: {down}/v1/models: connection refused (is the server running?) (4 tries)", stderr.Trim());

        // A server that serves another base model.
        using (var server = new FakeOpenAiServer(model))
        {
            (code, _, stderr) = CliRunner.Run([.. Grpo(model, data, Path.Combine(root, "other")), "--rollout-server", server.Url, "--rollout-model", "Qwen/Qwen3-8B"]);
            Assert.Equal(2, code);
            Assert.Equal($"error: --rollout-model: 'Qwen/Qwen3-8B' is not served by {server.Url} (GET /v1/models lists tiny)", stderr.Trim());
            Assert.Empty(server.Loaded);
        }

        // Full fine-tuning has no way to send the weights to the server.
        (code, _, stderr) = CliRunner.Run("grpo", "--model", model, "--data", data, "--output", Path.Combine(root, "full"), "--prompt-field", "question",
            "--rollout-server", down);
        Assert.Equal(2, code);
        Assert.Contains("--rollout-server: full fine-tuning needs a weight-sync channel to the server", stderr);
        Assert.Single(stderr.Trim().Split('\n'));

        // RLOO's loss has one ratio per completion: a token mode is refused.
        (code, _, stderr) = CliRunner.Run("rloo", "--model", model, "--data", data, "--output", Path.Combine(root, "rloo"), "--prompt-field", "question",
            "--lora", "--rollout-server", down, "--vllm-importance-sampling-mode", "token_mask");
        Assert.Equal(2, code);
        Assert.Contains("--vllm-importance-sampling-mode: rloo's loss has one importance ratio per completion", stderr);
    }

    [Fact]
    public void TheClientRetriesServerErrorsButNotBadRequests()
    {
        var (_, model) = CliRunner.TinyModel("qwen2");
        using var server = new FakeOpenAiServer(model);
        TimeSpan[] quick = [TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(20), TimeSpan.FromMilliseconds(40)];
        using var client = new OpenAiClient(server.Url, null, 30, quick);

        server.FailNext(new FakeOpenAiServer.Status(500, "engine overloaded"), new FakeOpenAiServer.Status(429, "slow down"), new FakeOpenAiServer.Status(502, "bad gateway"));
        Assert.Equal("tiny", client.FirstModel());
        Assert.Equal(4, server.Requests.Count);

        server.FailNext(new FakeOpenAiServer.Status(400, "max_tokens must be at least 1"));
        var e = Assert.Throws<InputError>(() => client.Post("/v1/completions", new JsonObject { ["model"] = "tiny", ["prompt"] = "x" }));
        Assert.Equal($"{server.Url}/v1/completions: HTTP 400 Bad Request: max_tokens must be at least 1", e.Message);
        Assert.Equal(5, server.Requests.Count);

        server.FailNext(Enumerable.Repeat<FakeOpenAiServer.Fault>(new FakeOpenAiServer.Status(503, "starting"), 4).ToArray());
        e = Assert.Throws<InputError>(() => client.Get("/v1/models"));
        Assert.Equal($"{server.Url}/v1/models: HTTP 503 Service Unavailable: starting (4 tries)", e.Message);

        server.FailNext(new FakeOpenAiServer.Garbage("<html>gateway</html>"));
        e = Assert.Throws<InputError>(() => client.Get("/v1/models"));
        Assert.Equal($"{server.Url}/v1/models: the answer is not a JSON object: <html>gateway</html>", e.Message);

        server.FailNext(new FakeOpenAiServer.Slow(1500));
        using (var impatient = new OpenAiClient(server.Url, null, 0.3, quick, "rollout-timeout"))
        {
            e = Assert.Throws<InputError>(() => impatient.Get("/v1/models"));
            Assert.Equal($"{server.Url}/v1/models: no answer within 0.3 s (--rollout-timeout)", e.Message);
        }

        using var unauthorised = new FakeOpenAiServer(model, apiKey: "k");
        using var keyless = new OpenAiClient(unauthorised.Url, null, 30, quick);
        e = Assert.Throws<InputError>(() => keyless.FirstModel());
        Assert.Contains("HTTP 401 Unauthorized: Unauthorized", e.Message);
        using var keyed = new OpenAiClient(unauthorised.Url + "/", "k", 30, quick);
        Assert.Equal("tiny", keyed.FirstModel());

        Assert.Throws<InputError>(() => OpenAiClient.Normalize("localhost:8000", "--rollout-server"));
    }

    static JsonObject Choice(int index, int[] ids, double[] logps, string finish = "stop") => new()
    {
        ["index"] = index, ["text"] = "", ["finish_reason"] = finish,
        ["token_ids"] = new JsonArray(ids.Select(t => (JsonNode)t).ToArray()),
        ["logprobs"] = new JsonObject { ["token_logprobs"] = new JsonArray(logps.Select(t => (JsonNode)t).ToArray()) },
    };

    [Fact]
    public void CompletionAnswersAreCheckedAndOrderedByIndex()
    {
        const string url = "http://h/v1/completions";
        var answer = new JsonObject { ["choices"] = new JsonArray(Choice(1, [5, 2], [-0.5, -0.25], "length"), Choice(0, [7], [-1])) };
        var parsed = RemoteCompletionSampler.Parse(answer, prompts: 1, n: 2, url);
        Assert.Equal([7], parsed[0][0].TokenIds);
        Assert.Equal([5, 2], parsed[0][1].TokenIds);
        Assert.Equal([-0.5f, -0.25f], parsed[0][1].LogProbs);
        Assert.Equal("length", parsed[0][1].FinishReason);

        string Error(JsonObject a, int prompts = 1, int n = 2) => Assert.Throws<InputError>(() => RemoteCompletionSampler.Parse(a, prompts, n, url)).Message;
        Assert.Equal($"{url}: 2 choices for 2 prompts x n=2", Error(answer, prompts: 2));
        var noIds = new JsonObject { ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["text"] = "hi", ["finish_reason"] = "stop" }) };
        Assert.StartsWith($"{url}: choice 0 has no token_ids: the server must return the sampled token ids", Error(noIds, n: 1));
        Assert.Equal($"{url}: choice 0: 1 token_logprobs for 2 token_ids", Error(new JsonObject { ["choices"] = new JsonArray(Choice(0, [1, 2], [-1])) }, n: 1));
        Assert.Equal($"{url}: choice 0: finish_reason 'abort' (expected stop or length)", Error(new JsonObject { ["choices"] = new JsonArray(Choice(0, [1], [-1], "abort")) }, n: 1));
        Assert.Equal($"{url}: choice 1: index 0 is out of range or repeated", Error(new JsonObject { ["choices"] = new JsonArray(Choice(0, [1], [-1]), Choice(0, [1], [-1])) }));
    }

    [Fact]
    public void TheCapIsTrlsOldNameOfClipMaxAndTheSettingsReadBack()
    {
        var table = GrpoOptions.Settings;
        var options = table.Apply(new GrpoOptions(), table.Find("vllm-importance-sampling-cap")!, "2.5", "--vllm-importance-sampling-cap");
        Assert.Equal(2.5, options.VllmImportanceSamplingClipMax);
        Assert.Null(options.ImportanceSampling); // local rollouts: no correction
        options = table.Apply(options, table.Find("vllm-importance-sampling-mode")!, "token_mask", "--vllm-importance-sampling-mode") with { RolloutServer = "http://h:1" };
        Assert.Equal(new ImportanceSampling(ImportanceSamplingMode.TokenMask, null, 2.5), options.ImportanceSampling);
        var path = Path.Combine(TestModels.TempDir(), "config.yaml");
        File.WriteAllText(path, table.ToYaml(options));
        Assert.Contains("vllm-importance-sampling-mode: token_mask", File.ReadAllText(path));
        var back = table.ReadYaml(new GrpoOptions(), path);
        Assert.Equal(options.ImportanceSampling, back.ImportanceSampling);
        Assert.Equal("http://h:1", back.RolloutServer);
    }

    [Fact]
    public void ImportanceSamplingModesMatchHandComputedValues()
    {
        // Trainer (old) and server (sampling) log-probabilities of a 3-token completion: differences ln 2, ln 3, ln 0.5.
        float[] sampling = [-1f, -2f, -0.5f];
        float[] old = [-1f + MathF.Log(2), -2f + MathF.Log(3), -0.5f + MathF.Log(0.5f)];
        float[] Weights(ImportanceSamplingMode mode, double? min, double? max) => new ImportanceSampling(mode, min, max).Weights(old, sampling);
        void Near(float[] expected, float[] actual)
        {
            Assert.Equal(expected.Length, actual.Length);
            for (int t = 0; t < expected.Length; t++) Assert.Equal(expected[t], actual[t], 4);
        }
        // Token ratios 2, 3, 0.5; the sequence ratio 2 x 3 x 0.5 = 3.
        Near([2f, 2.5f, 0.5f], Weights(ImportanceSamplingMode.TokenTruncate, null, 2.5));
        Near([2f, 2.5f, 0.8f], Weights(ImportanceSamplingMode.TokenTruncate, 0.8, 2.5));
        Near([2f, 0f, 0.5f], Weights(ImportanceSamplingMode.TokenMask, null, 2.5));
        Near([2f, 0f, 0f], Weights(ImportanceSamplingMode.TokenMask, 0.8, 2.5));
        Near([2.5f, 2.5f, 2.5f], Weights(ImportanceSamplingMode.SequenceTruncate, null, 2.5));
        Near([3f, 3f, 3f], Weights(ImportanceSamplingMode.SequenceTruncate, null, 3.5));
        Near([0f, 0f, 0f], Weights(ImportanceSamplingMode.SequenceMask, null, 2.5));
        Near([3f, 3f, 3f], Weights(ImportanceSamplingMode.SequenceMask, 0.5, 3.5));

        // TRL's statistics: |old - sampling| over tokens in the loss; ratios per token, or per completion (one not in the loss: exp(0) = 1).
        var token = new ImportanceSampling(ImportanceSamplingMode.TokenTruncate, null, 2.5);
        var m = token.Metrics([old, null], [sampling, [-1f]], [token.Weights(old, sampling), null]);
        Assert.Equal((Math.Log(2) + Math.Log(3) + Math.Log(2)) / 3, m["sampling/sampling_logp_difference/mean"], 5);
        Assert.Equal(Math.Log(3), m["sampling/sampling_logp_difference/max"], 5);
        Assert.Equal(0.5, m["sampling/importance_sampling_ratio/min"], 5);
        Assert.Equal(5.0 / 3, m["sampling/importance_sampling_ratio/mean"], 5);
        Assert.Equal(2.5, m["sampling/importance_sampling_ratio/max"], 5);
        var sequence = new ImportanceSampling(ImportanceSamplingMode.SequenceMask, null, 3.5);
        m = sequence.Metrics([old, null], [sampling, [-1f]], [sequence.Weights(old, sampling), null]);
        Assert.Equal(1, m["sampling/importance_sampling_ratio/min"], 5);
        Assert.Equal(2, m["sampling/importance_sampling_ratio/mean"], 5);
        Assert.Equal(3, m["sampling/importance_sampling_ratio/max"], 5);
    }
}
