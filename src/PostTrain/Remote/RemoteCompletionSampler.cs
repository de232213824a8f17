using System.Text.Json.Nodes;
using PostTrain.Checkpoints;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Trainers;

namespace PostTrain.Remote;

/// <summary>
/// Online RL's completions from an OpenAI-compatible server (vLLM, `posttrain serve`):
/// one <c>POST /v1/completions</c> per rollout with the prompts as token ids, <c>n</c> samples each,
/// the rollout's seed and sampling settings, and vLLM's extensions <c>return_token_ids</c> (the
/// sampled ids, which the trainer scores) and <c>stop_token_ids</c> (the end-of-sequence ids);
/// <c>logprobs: 0</c> returns each sampled token's log-probability, which the importance-sampling
/// correction compares with the trainer's. With LoRA the policy reaches the server as an adapter:
/// before the first rollout and after every optimiser step that changed it, the adapter is written to
/// ADAPTERS/step-N in PEFT's layout and loaded with vLLM's <c>POST /v1/load_lora_adapter</c> as
/// NAME-step-N, which the rollout's requests then name as their model; the previous one is
/// unloaded (<c>/v1/unload_lora_adapter</c>) and its directory deleted.
/// </summary>
public sealed class RemoteCompletionSampler : ICompletionSampler, IDisposable
{
    readonly OpenAiClient client;
    readonly string? adapterDir;
    readonly string adapterPrefix;
    string? baseModel;
    bool checkedModel;
    (int Step, string Name, string Dir)? published;

    /// <param name="client">The server.</param>
    /// <param name="model">The server's base model, checked against GET /v1/models before the first rollout and asked for when no adapter is published (null: the first listed).</param>
    /// <param name="adapterDir">Where adapters are written for the server to load (null: the policy is not published; the server's model is used as it is).</param>
    /// <param name="adapterPrefix">NAME in the adapters' names NAME-step-N.</param>
    public RemoteCompletionSampler(OpenAiClient client, string? model, string? adapterDir, string adapterPrefix)
    {
        this.client = client;
        baseModel = model;
        this.adapterDir = adapterDir is null ? null : Path.GetFullPath(adapterDir);
        this.adapterPrefix = adapterPrefix;
    }

    /// <summary>
    /// The sampler --rollout-server asks for, or null without one. Full fine-tuning is refused by
    /// <see cref="OnlineOptions.Validate"/>: only adapters can be published to the server.
    /// </summary>
    public static RemoteCompletionSampler? For(OnlineOptions options)
    {
        if (options.RolloutServer is null) return null;
        var client = new OpenAiClient(OpenAiClient.Normalize(options.RolloutServer, "--rollout-server"), options.RolloutApiKey, options.RolloutTimeout,
            timeoutOption: "rollout-timeout");
        var output = Path.GetFullPath(options.Output!);
        return new RemoteCompletionSampler(client, options.RolloutModel, options.RolloutAdapterDir ?? Path.Combine(output, "rollout_adapters"),
            Path.GetFileName(output.TrimEnd(Path.DirectorySeparatorChar)));
    }

    public bool Remote => true;

    /// <summary>The server's URL.</summary>
    public string Url => client.BaseUrl;

    /// <summary>The adapter the server now samples with (name and directory), or null before the first rollout or without adapters.</summary>
    public (string Name, string Dir)? Published => published is { } p ? (p.Name, p.Dir) : null;

    public Completion[][] Generate(CausalLM model, IReadOnlyList<int[]> prompts, SamplingOptions sampling, int policyStep)
    {
        if (!checkedModel)
        {
            // The base the adapters are made for must be there (a server started with another model, or none yet, fails here, before any adapter).
            var served = client.Models();
            if (baseModel is not null && !served.Contains(baseModel))
                throw new InputError($"--rollout-model: '{baseModel}' is not served by {client.BaseUrl} (GET /v1/models lists {string.Join(", ", served)})");
            baseModel ??= served[0];
            checkedModel = true;
        }
        var name = Publish(model, policyStep) ?? baseModel;
        var body = new JsonObject
        {
            ["model"] = name,
            ["prompt"] = new JsonArray(prompts.Select(p => (JsonNode)new JsonArray(p.Select(t => (JsonNode)t).ToArray())).ToArray()),
            ["n"] = sampling.N,
            ["max_tokens"] = sampling.MaxNewTokens,
            ["temperature"] = sampling.Temperature,
            ["top_p"] = sampling.TopP,
            ["seed"] = sampling.Seed,
            ["logprobs"] = 0,
            ["return_token_ids"] = true,
        };
        if (sampling.TopK > 0) body["top_k"] = sampling.TopK;
        if (sampling.EosTokenIds is { Count: > 0 } eos) body["stop_token_ids"] = new JsonArray(eos.Select(t => (JsonNode)t).ToArray());
        return Parse(client.Post("/v1/completions", body), prompts.Count, sampling.N, client.BaseUrl + "/v1/completions");
    }

    /// <summary>
    /// An OpenAI completions answer as <paramref name="prompts"/> x <paramref name="n"/> completions
    /// (choice index = prompt × n + sample), checked: every choice present once, vLLM's token_ids,
    /// one log-probability per token, finish_reason stop or length. Texts are left null: the rewards
    /// read the tokenizer's decoding of the ids, as they do for local rollouts.
    /// </summary>
    public static Completion[][] Parse(JsonObject answer, int prompts, int n, string url)
    {
        InputError Bad(string what) => new($"{url}: {what}");
        if (answer["choices"] is not JsonArray choices) throw Bad("the answer has no choices");
        if (choices.Count != prompts * n) throw Bad($"{choices.Count} choices for {prompts} prompts x n={n}");
        var result = new Completion[prompts * n];
        for (int k = 0; k < choices.Count; k++)
        {
            var choice = choices[k] as JsonObject ?? throw Bad($"choice {k} is not an object");
            int index = choice["index"] is JsonValue iv && iv.TryGetValue<int>(out var i) ? i : k;
            if (index < 0 || index >= result.Length || result[index] is not null) throw Bad($"choice {k}: index {index} is out of range or repeated");
            if (choice["token_ids"] is not JsonArray ids)
                throw Bad($"choice {index} has no token_ids: the server must return the sampled token ids (vLLM 0.10.2 or later answers return_token_ids)");
            var tokens = ids.Select(t => t is JsonValue v && v.TryGetValue<int>(out var id) ? id : throw Bad($"choice {index}: token_ids holds a non-integer")).ToArray();
            if (choice["logprobs"]?["token_logprobs"] is not JsonArray lps)
                throw Bad($"choice {index} has no logprobs.token_logprobs (the request asked for logprobs: 0)");
            if (lps.Count != tokens.Length) throw Bad($"choice {index}: {lps.Count} token_logprobs for {tokens.Length} token_ids");
            var logprobs = lps.Select(t => t is JsonValue v && v.TryGetValue<double>(out var lp) ? (float)lp : throw Bad($"choice {index}: token_logprobs holds a non-number")).ToArray();
            var finish = choice["finish_reason"] is JsonValue f && f.TryGetValue<string>(out var reason) ? reason : null;
            if (finish is not ("stop" or "length")) throw Bad($"choice {index}: finish_reason '{finish ?? "null"}' (expected stop or length)");
            result[index] = new Completion(tokens, logprobs, finish, null);
        }
        return Enumerable.Range(0, prompts).Select(p => result.AsSpan(p * n, n).ToArray()).ToArray();
    }

    /// <summary>
    /// With adapters, makes sure the server samples with the policy after <paramref name="step"/>
    /// optimiser steps (writing and loading it when the step changed) and returns its name; null without adapters.
    /// </summary>
    string? Publish(CausalLM model, int step)
    {
        if (adapterDir is null) return null;
        if (model.Lora is null) throw new InputError("--rollout-server: the policy has no LoRA adapter to publish to the server (use --lora)");
        if (published is { } current && current.Step == step) return current.Name;
        var name = $"{adapterPrefix}-step-{step}";
        var dir = Path.Combine(adapterDir, $"step-{step}");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        var temp = dir + ".tmp";
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        Directory.CreateDirectory(temp);
        PeftAdapter.WriteInto(model, temp);
        Directory.Move(temp, dir);
        var load = new JsonObject { ["lora_name"] = name, ["lora_path"] = dir };
        try
        {
            client.PostForText("/v1/load_lora_adapter", load);
        }
        catch (InputError e) when (published is null && e.Message.Contains("already", StringComparison.OrdinalIgnoreCase))
        {
            // A run resumed after a crash: the server still holds the adapter it last loaded under this name (vLLM: "has already been loaded").
            client.PostForText("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = name });
            client.PostForText("/v1/load_lora_adapter", load);
        }
        var previous = published;
        published = (step, name, dir);
        if (previous is { } old) Retire(old.Name, old.Dir);
        return name;
    }

    void Retire(string name, string dir)
    {
        client.PostForText("/v1/unload_lora_adapter", new JsonObject { ["lora_name"] = name });
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    /// <summary>Unloads the last adapter from the server and deletes its directory (best effort: the run's result does not depend on it).</summary>
    public void Dispose()
    {
        try
        {
            if (published is { } last) Retire(last.Name, last.Dir);
            if (adapterDir is not null && Directory.Exists(adapterDir) && !Directory.EnumerateFileSystemEntries(adapterDir).Any()) Directory.Delete(adapterDir);
        }
        catch (Exception e) when (e is InputError or IOException) { }
        published = null;
        client.Dispose();
    }
}
