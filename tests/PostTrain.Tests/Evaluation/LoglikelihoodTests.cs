using PostTrain.Evaluation;
using PostTrain.Models;
using PostTrain.Tokenization;
using Xunit;
using static TorchSharp.torch;

namespace PostTrain.Tests.Evaluation;

public class LoglikelihoodTests
{
    static (CausalLM Model, HfTokenizer Tokenizer) TinyModel(int maxPositions = 256)
    {
        var dir = TestModels.TempDir();
        int vocab = TestTokenizers.WriteTiny(dir);
        var config = ModelConfig.Create(Architecture.Qwen3, vocabSize: vocab, hiddenSize: 32, intermediateSize: 48, layers: 2, heads: 4,
            kvHeads: 2, headDim: 16, maxPositions: maxPositions, eosTokenIds: [vocab - 1]);
        var model = TestModels.Random(config, seed: 3, std: 0.3);
        model.eval();
        return (model, HfTokenizer.FromDirectory(dir));
    }

    /// <summary>
    /// An independent computation: the whole sequence scored in one plain forward (no cache, no
    /// shared prefill, no batching), the continuation's log-probabilities summed in double, and
    /// greedy decided from the full logits.
    /// </summary>
    static (double, bool) Direct(CausalLM model, int[] ctx, int[] cont)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int[] all = [.. ctx, .. cont];
        var logits = model.Forward(TestModels.Ids(all)).squeeze(0).to(ScalarType.Float64);
        var logProbs = logits.log_softmax(1);
        double sum = 0;
        bool greedy = true;
        for (int j = 0; j < cont.Length; j++)
        {
            int pos = ctx.Length + j - 1;
            sum += logProbs[pos, cont[j]].item<double>();
            greedy &= logits[pos].argmax().item<long>() == cont[j];
        }
        return (sum, greedy);
    }

    [Fact]
    public void SharedPrefillEqualsIndependentScoring()
    {
        var (model, tokenizer) = TinyModel();
        var lm = new LocalEvalModel(model, tokenizer, null, batchSize: 3);
        var requests = new List<LoglikelihoodRequest>();
        string[] contexts = ["Question: the sun is a star?\nAnswer:", "a", "There is the answer in the text. ", "Short", "Question: what is the name?\nAnswer:"];
        foreach (var c in contexts)
            foreach (var choice in new[] { " yes", " no", " the answer is in there", " s" })
                requests.Add(new LoglikelihoodRequest(c, choice));
        requests.Add(new LoglikelihoodRequest("", "the sea"));
        var results = lm.Loglikelihood(requests);
        Assert.Equal(0, lm.Truncated);
        for (int i = 0; i < requests.Count; i++)
        {
            var (ctx, cont) = lm.EncodePair(requests[i].Context, requests[i].Continuation);
            var (ll, greedy) = Direct(model, ctx, cont);
            Assert.True(Math.Abs(ll - results[i].LogLikelihood) < 1e-4, $"request {i}: {results[i].LogLikelihood} vs {ll}");
            Assert.Equal(greedy, results[i].IsGreedy);
        }
    }

    [Fact]
    public void GreedyContinuationIsRecognised()
    {
        var (model, tokenizer) = TinyModel();
        var lm = new LocalEvalModel(model, tokenizer, null);
        var ctx = tokenizer.Encode("the answer is");
        // Build the greedy continuation token by token with plain forwards.
        var seq = ctx.ToList();
        using (no_grad())
            for (int k = 0; k < 3; k++)
                seq.Add((int)model.Forward(TestModels.Ids(seq.ToArray()))[0, -1].argmax().item<long>());
        var greedyText = tokenizer.Decode(seq.Skip(ctx.Length).ToList());
        var pairs = LoglikelihoodScorer.Score(model, [(ctx, seq.Skip(ctx.Length).ToArray()), (ctx, [seq[^1], seq[^2], seq[^3]])], 4, out _);
        Assert.True(pairs[0].IsGreedy, greedyText);
        Assert.True(pairs[0].LogLikelihood > pairs[1].LogLikelihood || !pairs[1].IsGreedy);
    }

    [Fact]
    public void LongPairsAreCutFromTheLeftAsLmEvalDoes()
    {
        var (model, tokenizer) = TinyModel(maxPositions: 16);
        var ctx = Enumerable.Range(0, 30).Select(i => 3 + i % 50).ToArray();
        int[] cont = [7, 8, 9];
        var results = LoglikelihoodScorer.Score(model, [(ctx, cont), (ctx[..5], cont)], 8, out int truncated);
        Assert.Equal(1, truncated);
        // lm-eval: (context + continuation)[-(max_length + 1):][:-1] is the input.
        var kept = ctx[^(16 + 1 - cont.Length)..];
        var (ll, _) = Direct(model, kept, cont);
        Assert.True(Math.Abs(ll - results[0].LogLikelihood) < 1e-4);
        var (shortLl, _) = Direct(model, ctx[..5], cont);
        Assert.True(Math.Abs(shortLl - results[1].LogLikelihood) < 1e-4);
    }

    [Fact]
    public void PairsAreEncodedAsLmEvalEncodesThem()
    {
        var (model, tokenizer) = TinyModel();
        var lm = new LocalEvalModel(model, tokenizer, null);
        // The context's trailing whitespace moves to the continuation.
        var (ctx, cont) = lm.EncodePair("Answer: ", "the sea");
        Assert.Equal(tokenizer.Encode("Answer:"), ctx);
        Assert.Equal(tokenizer.Encode("Answer: the sea")[ctx.Length..], cont);
        Assert.Equal(tokenizer.Encode(" the sea"), cont);
        // An empty context is the prefix token (BOS, else EOS: this tokenizer has no BOS).
        var (ectx, econt) = lm.EncodePair("", "the sea");
        Assert.Equal([tokenizer.EosTokenId!.Value], ectx);
        Assert.Equal(tokenizer.Encode("the sea"), econt);
    }

    [Fact]
    public void StopStringsCutTheTextAtTheirFirstOccurrence()
    {
        Assert.Equal("42 apples", LocalEvalModel.CutAtStop("42 apples\n\nQuestion: next", ["Question:", "\n\n"]));
        Assert.Equal("abc", LocalEvalModel.CutAtStop("abc", ["", "zz"]));
    }
}
