using System.Text.Json.Nodes;
using PostTrain.Generation;
using PostTrain.Models;
using PostTrain.Tokenization;

namespace PostTrain.Evaluation;

/// <summary>A log-likelihood request: score the continuation given the context.</summary>
public sealed record LoglikelihoodRequest(string Context, string Continuation);

/// <summary>A generate-until request: continue the context under the task's generation arguments.</summary>
public sealed record GenerateRequest(string Context, GenerationKwargs Kwargs);

/// <summary>What evaluation asks of a model (lm-eval's LM interface).</summary>
public interface IEvalModel
{
    /// <summary>The prompt text of a conversation, with the generation prompt (apply_chat_template).</summary>
    string ApplyChatTemplate(JsonArray messages);

    LoglikelihoodResult[] Loglikelihood(IReadOnlyList<LoglikelihoodRequest> requests);

    /// <summary><paramref name="repeats"/> responses for each request, cut at the first stop string.</summary>
    string[][] GenerateUntil(IReadOnlyList<GenerateRequest> requests, int repeats);

    /// <summary>Requests that did not fit the model's context and were cut from the left, since the model was made.</summary>
    int Truncated { get; }
}

/// <summary>
/// A PostTrain model (adapters included) under evaluation, tokenizing as lm-eval's HF model
/// does: the tokenizer's special tokens are added (Llama 3's BOS) unless the text already
/// starts with the BOS token (a chat-rendered prompt); a pair is encoded whole and split at the
/// context's length, with the context's trailing whitespace moved to the continuation; an empty
/// context is the BOS token (else EOS). Generation is greedy unless the task samples, stops at
/// the task's `until` strings and the EOS token, and the decoded text (special tokens skipped)
/// is cut at the first stop string.
/// </summary>
public sealed class LocalEvalModel : IEvalModel
{
    readonly CausalLM model;
    readonly HfTokenizer tokenizer;
    readonly Func<ChatTemplate>? template;
    readonly int batchSize;
    readonly long seed;
    readonly EvalTokenizer encoder;

    readonly IReadOnlyDictionary<string, object?>? templateVariables;

    /// <param name="templateVariables">Extra chat-template variables (lm-eval's chat_template_args), e.g. enable_thinking.</param>
    public LocalEvalModel(CausalLM model, HfTokenizer tokenizer, Func<ChatTemplate>? template, int batchSize = 16, long seed = 1234,
        IReadOnlyDictionary<string, object?>? templateVariables = null)
    {
        this.templateVariables = templateVariables;
        if (batchSize <= 0) throw new InputError("--batch-size: must be positive");
        this.model = model;
        this.tokenizer = tokenizer;
        this.template = template;
        this.batchSize = batchSize;
        this.seed = seed;
        encoder = new EvalTokenizer(tokenizer, model.Config.EosTokenIds.FirstOrDefault());
    }

    public int Truncated { get; private set; }

    public string ApplyChatTemplate(JsonArray messages) => RenderChat(template, templateVariables, messages);

    /// <summary>A conversation as a prompt with the model's chat template and its generation prompt (lm-eval's apply_chat_template).</summary>
    public static string RenderChat(Func<ChatTemplate>? template, IReadOnlyDictionary<string, object?>? variables, JsonArray messages)
    {
        if (template is null) throw new InputError("--apply-chat-template: the model has no chat template");
        return ChatPrompt.Render(template(), messages, null, variables, addGenerationPrompt: true, "--apply-chat-template");
    }

    /// <inheritdoc cref="EvalTokenizer.EncodePair"/>
    public (int[] Context, int[] Continuation) EncodePair(string context, string continuation) => encoder.EncodePair(context, continuation);

    public LoglikelihoodResult[] Loglikelihood(IReadOnlyList<LoglikelihoodRequest> requests)
    {
        var results = LoglikelihoodScorer.Score(model, requests.Select(r => encoder.ScoredPair(r)).ToList(), batchSize, out int truncated);
        Truncated += truncated;
        return results;
    }

    public string[][] GenerateUntil(IReadOnlyList<GenerateRequest> requests, int repeats)
    {
        var results = new string[requests.Count][];
        var engine = new GenerationEngine(model, ids => tokenizer.Decode(ids, skipSpecialTokens: true));
        var eosText = tokenizer.EosTokenId is { } eosId ? tokenizer.Decode([eosId], skipSpecialTokens: false) : null;
        int maxLength = model.Config.MaxPositionEmbeddings;
        // Requests with the same arguments run together.
        foreach (var group in Enumerable.Range(0, requests.Count).GroupBy(i => requests[i].Kwargs))
        {
            var kwargs = group.Key;
            int maxCtx = maxLength - kwargs.MaxGenToks;
            if (maxCtx <= 0)
                throw new InputError($"max_gen_toks {kwargs.MaxGenToks} leaves no room for a prompt in the model's context of {maxLength} tokens");
            var until = kwargs.Until.ToList();
            if (eosText is not null && !until.Contains(eosText)) until.Add(eosText);
            var indices = group.ToList();
            var prompts = new List<int[]>();
            foreach (var i in indices)
            {
                var ids = encoder.Encode(requests[i].Context);
                if (ids.Length > maxCtx)
                {
                    ids = ids[^maxCtx..];
                    Truncated++;
                }
                if (ids.Length == 0) ids = [encoder.PrefixTokenId];
                prompts.Add(ids);
            }
            var options = new SamplingOptions
            {
                MaxNewTokens = kwargs.MaxGenToks,
                Temperature = kwargs.DoSample ? kwargs.Temperature : 0,
                TopP = kwargs.DoSample ? kwargs.TopP : 1.0,
                TopK = kwargs.DoSample ? kwargs.TopK : 0,
                N = kwargs.DoSample ? repeats : 1, // greedy repeats are identical: decode once
                Seed = seed,
                Stop = until.Where(u => u.Length > 0).ToList(),
                BatchSize = Math.Max(batchSize, repeats),
            };
            var completions = engine.Generate(prompts, options);
            for (int k = 0; k < indices.Count; k++)
            {
                var texts = completions[k].Select(c => CutAtStop(tokenizer.Decode(c.TokenIds, skipSpecialTokens: true), until)).ToArray();
                results[indices[k]] = kwargs.DoSample ? texts : Enumerable.Repeat(texts[0], repeats).ToArray();
            }
        }
        return results;
    }

    /// <summary>lm-eval's postprocessing: the text before the first occurrence of each stop string in turn.</summary>
    public static string CutAtStop(string text, IEnumerable<string> until)
    {
        foreach (var term in until)
        {
            if (term.Length == 0) continue;
            int at = text.IndexOf(term, StringComparison.Ordinal);
            if (at >= 0) text = text[..at];
        }
        return text;
    }
}
