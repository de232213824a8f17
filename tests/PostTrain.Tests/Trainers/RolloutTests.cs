using System.Text.Json.Nodes;
using PostTrain.Data;
using PostTrain.Models;
using PostTrain.Rewards;
using PostTrain.Trainers;
using PostTrain.Training;
using static TorchSharp.torch;

namespace PostTrain.Tests.Trainers;

/// <summary>The rollout component every online method samples through (<see cref="Rollouts"/>, <see cref="Rollout"/>).</summary>
public class RolloutTests
{
    sealed class Fixed(string name, Func<RewardSample, double?> f) : IRewardFunction
    {
        public string Name => name;
        public double?[] Score(IReadOnlyList<RewardSample> samples) => samples.Select(f).ToArray();
    }

    static List<PromptUnit> Units(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(i => new PromptUnit(i, Enumerable.Range(0, 3 + i % 2).Select(_ => random.Next(3, 96)).ToArray(), $"p{i}",
            new PromptExample($"x:{i}", $"p{i}", null, null, new JsonObject { ["scored"] = i != 1 }))).ToList();
    }

    // Ids below 30 end a completion: short completions ending in EOS and some cut at the limit.
    static readonly int[] Eos = Enumerable.Range(0, 30).ToArray();

    [Fact]
    public void ARolloutHoldsWhatEveryMethodNeedsScoredAsTheLossScoresIt()
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 4, std: 0.1);
        using var reference = new ReferenceModel(TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 5, std: 0.1));
        var units = Units(4, 1);
        // Prompt 1's row has no reference: its completions are unscorable (NaN).
        var reward = new Fixed("len", s => s.Row["scored"]!.GetValue<bool>() ? s.CompletionIds.Length : null);
        var sampler = new Rollouts(new RewardSet([reward]), ids => string.Join(" ", ids), Eos, reference);
        var settings = new RolloutSettings
        {
            Generations = 3, MaxCompletionLength = 3, Temperature = 0.7, Seed = 11, BatchSize = 12, MaskTruncated = true,
            SamplingLogProbs = true, ReferenceLogProbs = true,
        };
        IReadOnlyList<IReadOnlyList<PromptUnit>> parts = [units.Take(2).ToArray(), units.Skip(2).ToArray()];
        var log = new StringWriter();
        model.train();
        var r = sampler.Sample(model, parts, settings, log, "step 1");
        Assert.True(model.training); // restored after sampling in evaluation mode

        Assert.Equal(12, r.Count);
        Assert.Equal(3, r.Generations);
        Assert.Equal([(0, 6), (6, 6)], r.Parts.Select(p => (p.FirstCompletion, p.Completions)));
        Assert.Same(r.Parts[1], r.PartOf(units.Skip(2).ToArray()));
        Assert.Null(r.PartOf(units.Take(3).ToArray()));
        Assert.Null(r.PartOf([units[1], units[0]]));
        for (int i = 0; i < r.Count; i++)
        {
            Assert.Equal(units[i / 3].Ids, r.PromptIds[i].ToArray());
            bool endsInEos = Eos.Contains(r.CompletionIds[i][^1]);
            Assert.Equal(string.Join(" ", r.CompletionIds[i].SkipLast(endsInEos ? 1 : 0)), r.CompletionTexts[i]); // the engine's text: no EOS
            Assert.Equal(!endsInEos, r.Truncated[i]);
            if (r.Truncated[i]) Assert.Equal(3, r.CompletionIds[i].Count);
            Assert.Equal(!r.Truncated[i], r.InLoss[i]); // --mask-truncated-completions
            if (r.InLoss[i])
            {
                Assert.Equal(r.CompletionIds[i].Count, r.SamplingLogps![i]!.Count);
                Assert.Equal(r.CompletionIds[i].Count, r.ReferenceLogps![i]!.Count);
            }
            else Assert.True(r.SamplingLogps![i] is null && r.ReferenceLogps![i] is null);
            if (i / 3 == 1) Assert.True(double.IsNaN(r.Rewards.Total[i]));
            else Assert.Equal(r.CompletionIds[i].Count, r.Rewards.Total[i]);
        }
        Assert.Contains(r.Truncated, t => t);
        Assert.Contains(r.Truncated, t => !t);
        Assert.Contains("Warning: step 1: every reward function returned null for 3 of 12 completions", log.ToString());

        // The sampling-time log-probabilities are the policy's on the part's rows, temperature-scaled, bit for bit.
        model.eval();
        foreach (var part in r.Parts)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var rows = r.Rows(part);
            Assert.Equal(r.LossTokens(part), rows.Tokens);
            var expected = TokenLogProbs.Score(model, rows, new TokenScoring { Temperature = 0.7 }).Logps.data<float>().ToArray();
            Assert.Equal(expected, r.TokenValues(r.SamplingLogps!, part));
            Assert.NotEqual(expected, r.TokenValues(r.ReferenceLogps!, part)); // another model
        }
        // The same seed samples the same rollout.
        var again = sampler.Sample(model, parts, settings);
        Assert.Equal(r.CompletionIds.SelectMany(c => c), again.CompletionIds.SelectMany(c => c));
        Assert.Equal(r.TokenValues(r.SamplingLogps!, r.Parts[0]), again.TokenValues(again.SamplingLogps!, again.Parts[0]));
        // Only what is asked for is computed.
        var plain = sampler.Sample(model, parts, settings with { SamplingLogProbs = false, ReferenceLogProbs = false, MaskTruncated = false });
        Assert.Null(plain.SamplingLogps);
        Assert.Null(plain.ReferenceLogps);
        // The scoring timings (for the benchmarks): each part measured when done, zero when not.
        Assert.True(r.ScoringSeconds is { Rewards: >= 0, PolicyLogProbs: > 0, ReferenceLogProbs: > 0 });
        Assert.True(plain.ScoringSeconds is { PolicyLogProbs: 0, ReferenceLogProbs: 0 });
        Assert.All(plain.InLoss, Assert.True);
        Assert.Throws<InvalidOperationException>(() => new Rollouts(new RewardSet([reward]), null, Eos).Sample(model, parts, settings));
    }

    [Fact]
    public void ARolloutIsAValueItsInputsCannotChange()
    {
        var units = Units(2, 2);
        int[][] completions = [[5, 6], [7], [8, 9], [10]];
        var total = new double[] { 1, 2, 3, 4 };
        var logps = new float[]?[] { [-1f, -2f], [-3f], [-4f, -5f], [-6f] };
        var r = new Rollout(units, 2, null, completions, [false, true, false, false], null, ["a", "b", "c", "d"],
            new RewardScores(total, [[1, 2, 3, 4]]), logps);
        completions[0][0] = 99;
        total[0] = 99;
        logps[0]![0] = 99;
        Assert.Equal(new[] { 5, 6 }, r.CompletionIds[0].ToArray());
        Assert.Equal(1, r.Rewards.Total[0]);
        Assert.Equal(-1f, r.SamplingLogps![0]![0]);
        Assert.Single(r.Parts);
        Assert.Equal([-1f, -2f, -3f, -4f, -5f, -6f], r.TokenValues(r.SamplingLogps!, r.Parts[0]));
        // Shapes that do not fit are refused.
        Assert.Throws<ArgumentException>(() => new Rollout(units, 2, null, completions.Take(3).ToList(), [false, false, false], null, ["a", "b", "c"],
            new RewardScores([1, 2, 3], [[1, 2, 3]])));
        Assert.Throws<ArgumentException>(() => new Rollout(units, 2, null, completions, [false, false, false, false], null, ["a", "b", "c", "d"],
            new RewardScores(total, [[1, 2, 3, 4]]), [[-1f], [-3f], [-4f, -5f], [-6f]]));
        Assert.Throws<ArgumentException>(() => new Rollout(units, 2, [1, 2], completions, [false, false, false, false], null, ["a", "b", "c", "d"],
            new RewardScores(total, [[1, 2, 3, 4]])));
    }

    [Fact]
    public void TheLossOfPromptsThatWereNotPreparedIsAnError()
    {
        using var model = TestModels.Random(TestModels.Config(Architecture.Qwen2, tied: true), seed: 1, std: 0.1);
        var units = Units(4, 3);
        var options = new GrpoOptions { NumGenerations = 2, BatchSize = 4, MaxCompletionLength = 3, LogCompletionsSteps = 0 };
        var method = new GrpoMethod(options, new RewardSet([new Fixed("one", _ => 1)]), null, null, [2], null);
        var first = units.Take(2).ToArray();
        var e = Assert.Throws<InvalidOperationException>(() => method.Loss(model, first));
        Assert.Contains("PrepareStep must run", e.Message);
        method.PrepareStep(model, 0, [first]);
        Assert.Equal(4, method.StepRollout!.Count);
        using (NewDisposeScope()) method.Loss(model, first);
        e = Assert.Throws<InvalidOperationException>(() => method.CountItems(units.Skip(2).ToArray()));
        Assert.Contains("prompts [2,3] are not a micro-batch that PrepareStep sampled", e.Message);
    }
}
