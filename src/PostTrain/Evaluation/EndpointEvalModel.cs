using System.Text.Json.Nodes;
using PostTrain.Remote;
using PostTrain.Tokenization;

namespace PostTrain.Evaluation;

/// <summary>
/// A model behind an OpenAI-compatible completions endpoint (vLLM, `posttrain serve`) under
/// evaluation, as lm-eval's <c>local-completions</c> model does it. With the model's tokenizer
/// (--model DIR beside --endpoint; lm-eval's tokenized_requests=True, its default) requests are
/// tokenized here exactly as <see cref="LocalEvalModel"/> tokenizes them and sent as token ids:
/// log-likelihood asks for <c>echo: true, max_tokens: 1, logprobs: 1, temperature: 0</c> and sums the
/// continuation's echoed <c>token_logprobs</c> (the last entry, the generated token, is not read), greedy
/// when each of them is the largest of its <c>top_logprobs</c> (lm-eval's parse_logprobs);
/// generate-until sends the task's <c>until</c> as <c>stop</c>, max_gen_toks as <c>max_tokens</c>,
/// temperature 0 unless the task samples (then its temperature, top_p, top_k and n = repeats) and
/// the seed, and cuts each answered <c>text</c> at the first stop string. Without a tokenizer, prompts are
/// sent as text (the server tokenizes them) and a log-likelihood's continuation is found by the
/// echoed tokens' <c>text_offset</c>: the tokens that start within the continuation's characters,
/// counted back from the end of the prompt (a leading BOS's text does not shift it); a token that
/// straddles the boundary counts as the context's.
/// </summary>
public sealed class EndpointEvalModel : IEvalModel
{
    readonly OpenAiClient client;
    readonly string model;
    readonly EvalTokenizer? encoder;
    readonly Func<ChatTemplate>? template;
    readonly IReadOnlyDictionary<string, object?>? templateVariables;
    readonly int batchSize;
    readonly long seed;

    /// <param name="model">The model name requests ask for.</param>
    /// <param name="encoder">The model's tokenizer (requests sent as token ids); null: text prompts.</param>
    /// <param name="template">The chat template for --apply-chat-template (rendered here); null: none.</param>
    /// <param name="batchSize">Prompts per request.</param>
    public EndpointEvalModel(OpenAiClient client, string model, EvalTokenizer? encoder, Func<ChatTemplate>? template,
        IReadOnlyDictionary<string, object?>? templateVariables = null, int batchSize = 16, long seed = 1234)
    {
        if (batchSize <= 0) throw new InputError("--batch-size: must be positive");
        this.client = client;
        this.model = model;
        this.encoder = encoder;
        this.template = template;
        this.templateVariables = templateVariables;
        this.batchSize = batchSize;
        this.seed = seed;
    }

    /// <summary>The server decides what does not fit its context (it answers an error): nothing is cut here.</summary>
    public int Truncated => 0;

    string Url => client.BaseUrl + "/v1/completions";

    public string ApplyChatTemplate(JsonArray messages)
    {
        if (template is null) throw new InputError("--apply-chat-template: with --endpoint, give --model DIR for the chat template (it is rendered here)");
        return LocalEvalModel.RenderChat(template, templateVariables, messages);
    }

    static JsonArray Ids(IEnumerable<int> ids) => new(ids.Select(t => (JsonNode)t).ToArray());

    public LoglikelihoodResult[] Loglikelihood(IReadOnlyList<LoglikelihoodRequest> requests)
    {
        var results = new List<LoglikelihoodResult>(requests.Count);
        foreach (var chunk in requests.Chunk(batchSize))
        {
            JsonArray prompt;
            Func<int, JsonObject, LoglikelihoodResult> parse;
            if (encoder is not null)
            {
                var pairs = chunk.Select(encoder.ScoredPair).ToArray();
                prompt = new JsonArray(pairs.Select(p => (JsonNode)Ids(p.Context.Concat(p.Continuation))).ToArray());
                parse = (i, choice) => ByTokens(choice, i, pairs[i].Context.Length, pairs[i].Continuation.Length);
            }
            else
            {
                var texts = chunk.Select(r => SplitWhitespace(r.Context, r.Continuation)).ToArray();
                prompt = new JsonArray(texts.Select(t => (JsonNode)(t.Context + t.Continuation)).ToArray());
                parse = (i, choice) => ByOffsets(choice, i, texts[i].Continuation);
            }
            var answer = client.Post("/v1/completions", new JsonObject
            {
                ["model"] = model, ["prompt"] = prompt, ["temperature"] = 0, ["max_tokens"] = 1, ["logprobs"] = 1, ["seed"] = seed, ["echo"] = true,
            });
            var choices = Choices(answer, chunk.Length);
            for (int i = 0; i < chunk.Length; i++) results.Add(parse(i, choices[i]));
        }
        return results.ToArray();
    }

    /// <summary>lm-eval's move of the context's trailing whitespace to the continuation.</summary>
    static (string Context, string Continuation) SplitWhitespace(string context, string continuation)
    {
        int trimmed = context.TrimEnd().Length;
        return (context[..trimmed], context[trimmed..] + continuation);
    }

    /// <summary>The answer's choices in index order, one per prompt (n = 1).</summary>
    JsonObject[] Choices(JsonObject answer, int prompts)
    {
        if (answer["choices"] is not JsonArray choices || choices.Count != prompts)
            throw new InputError($"{Url}: expected {prompts} choices, got {(answer["choices"] as JsonArray)?.Count.ToString() ?? "none"}");
        var ordered = new JsonObject[prompts];
        for (int k = 0; k < prompts; k++)
        {
            var choice = choices[k] as JsonObject ?? throw new InputError($"{Url}: choice {k} is not an object");
            int index = choice["index"] is JsonValue v && v.TryGetValue<int>(out var x) ? x : k;
            if (index < 0 || index >= prompts || ordered[index] is not null) throw new InputError($"{Url}: choice {k}: index {index} is out of range or repeated");
            ordered[index] = choice;
        }
        return ordered;
    }

    /// <summary>The echoed logprobs of a choice: token_logprobs, top_logprobs and, when asked, tokens and text_offset.</summary>
    (double?[] Logps, JsonArray Top, JsonArray? Tokens, JsonArray? Offsets) Echoed(JsonObject choice, int index)
    {
        if (choice["logprobs"] is not JsonObject lp || lp["token_logprobs"] is not JsonArray logps || lp["top_logprobs"] is not JsonArray top)
            throw new InputError($"{Url}: choice {index} has no logprobs.token_logprobs and top_logprobs (the request asked for echo and logprobs: 1)");
        var values = logps.Select(v => v is JsonValue j && j.TryGetValue<double>(out var d) ? d : (double?)null).ToArray();
        return (values, top, lp["tokens"] as JsonArray, lp["text_offset"] as JsonArray);
    }

    /// <summary>Sum and greediness of tokens [from, from + count) of the echoed prompt.</summary>
    LoglikelihoodResult Score(double?[] logps, JsonArray top, int from, int count, int index)
    {
        double sum = 0;
        bool greedy = true;
        for (int t = from; t < from + count; t++)
        {
            var lp = logps[t] ?? throw new InputError($"{Url}: choice {index}: echoed token {t} of the continuation has no log-probability");
            sum += lp;
            if (top[t] is not JsonObject alternatives || alternatives.Count == 0)
                throw new InputError($"{Url}: choice {index}: top_logprobs[{t}] is not a {{token: logprob}} object");
            double best = alternatives.Max(a => a.Value is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.NegativeInfinity);
            if (lp != best) greedy = false;
        }
        return new LoglikelihoodResult(sum, greedy);
    }

    LoglikelihoodResult ByTokens(JsonObject choice, int index, int contextLength, int continuationLength)
    {
        var (logps, top, _, _) = Echoed(choice, index);
        int needed = contextLength + continuationLength;
        if (logps.Length < needed || top.Count < needed)
            throw new InputError($"{Url}: choice {index}: {logps.Length} echoed token_logprobs for a prompt of {needed} tokens");
        return Score(logps, top, contextLength, continuationLength, index);
    }

    LoglikelihoodResult ByOffsets(JsonObject choice, int index, string continuation)
    {
        var (logps, top, tokens, offsets) = Echoed(choice, index);
        if (tokens is null || offsets is null || tokens.Count != offsets.Count || logps.Length != tokens.Count || tokens.Count < 2)
            throw new InputError($"{Url}: choice {index}: logprobs.tokens and text_offset are needed to find the continuation without --model");
        int prompt = tokens.Count - 1; // the last is the one generated token
        int Offset(int t) => offsets[t] is JsonValue v && v.TryGetValue<int>(out var o) ? o : throw new InputError($"{Url}: choice {index}: text_offset[{t}] is not an integer");
        string Text(int t) => tokens[t] is JsonValue v && v.TryGetValue<string>(out var s) ? s : "";
        int end = Offset(prompt - 1) + Text(prompt - 1).Length;
        int start = end - continuation.Length;
        int first = Enumerable.Range(0, prompt).FirstOrDefault(t => Offset(t) >= start, prompt);
        if (first == prompt) throw new InputError($"{Url}: choice {index}: no echoed token starts within the continuation {System.Text.Json.JsonSerializer.Serialize(continuation)}");
        return Score(logps, top, first, prompt - first, index);
    }

    public string[][] GenerateUntil(IReadOnlyList<GenerateRequest> requests, int repeats)
    {
        var results = new string[requests.Count][];
        foreach (var group in Enumerable.Range(0, requests.Count).GroupBy(i => requests[i].Kwargs))
        {
            var kwargs = group.Key;
            var until = kwargs.Until.Where(u => u.Length > 0).ToList();
            int n = kwargs.DoSample ? repeats : 1; // greedy repeats are identical: ask once
            foreach (var chunk in group.Chunk(batchSize))
            {
                var prompt = new JsonArray(chunk.Select(i => encoder is null ? (JsonNode)requests[i].Context : Ids(Prompt(requests[i].Context))).ToArray());
                var body = new JsonObject
                {
                    ["model"] = model, ["prompt"] = prompt, ["max_tokens"] = kwargs.MaxGenToks, ["n"] = n, ["seed"] = seed,
                    ["temperature"] = kwargs.DoSample ? kwargs.Temperature : 0,
                };
                if (kwargs.DoSample)
                {
                    body["top_p"] = kwargs.TopP;
                    if (kwargs.TopK > 0) body["top_k"] = kwargs.TopK;
                }
                if (until.Count > 0) body["stop"] = new JsonArray(until.Select(u => (JsonNode)u).ToArray());
                var answer = client.Post("/v1/completions", body);
                var choices = Choices(answer, chunk.Length * n);
                for (int k = 0; k < chunk.Length; k++)
                {
                    var texts = Enumerable.Range(k * n, n).Select(c => choices[c]["text"] is JsonValue v && v.TryGetValue<string>(out var s)
                        ? LocalEvalModel.CutAtStop(s, until) : throw new InputError($"{Url}: choice {c} has no text")).ToArray();
                    results[chunk[k]] = kwargs.DoSample ? texts : Enumerable.Repeat(texts[0], repeats).ToArray();
                }
            }
        }
        return results;
    }

    /// <summary>A generation prompt's ids (an empty one: the prefix token, as the local model).</summary>
    int[] Prompt(string context)
    {
        var ids = encoder!.Encode(context);
        return ids.Length == 0 ? [encoder.PrefixTokenId] : ids;
    }
}
