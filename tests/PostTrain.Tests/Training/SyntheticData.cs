using PostTrain.Trainers;

namespace PostTrain.Tests.Training;

/// <summary>Token-level prompt/answer pairs for loop tests (no tokenizer needed).</summary>
public static class SyntheticData
{
    /// <summary><paramref name="count"/> prompts of 3-6 ids, each followed by a fixed 2-4 id answer and an end id 2.</summary>
    public static List<TokenizedSequence> PromptAnswers(int count, int seed = 0, int vocab = 96)
    {
        var random = new Random(seed);
        var result = new List<TokenizedSequence>();
        for (int i = 0; i < count; i++)
        {
            var prompt = Enumerable.Range(0, random.Next(3, 7)).Select(_ => random.Next(3, vocab)).ToArray();
            var answer = Enumerable.Range(0, random.Next(2, 5)).Select(_ => random.Next(3, vocab)).Append(2).ToArray();
            var ids = new[] { 1 }.Concat(prompt).Concat(answer).ToArray();
            var trained = ids.Select((_, t) => t > prompt.Length).ToArray();
            result.Add(new TokenizedSequence(ids, trained));
        }
        return result;
    }
}
