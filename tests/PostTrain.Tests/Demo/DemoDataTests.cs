using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PostTrain.Demo;
using PostTrain.Rewards;

namespace PostTrain.Tests.Demo;

/// <summary>The demo's made-up world: worked answers that add up, splits that do not overlap, facts the procedure needs.</summary>
public sealed class DemoDataTests
{
    static readonly Regex Chain = new(@"^Units: (\d)\+(\d)=(\d+)\. Tens: (\d)\+(\d)(\+1)?=(\d+)\.\n#### (\d+)$");

    /// <summary>The two numbers a word problem adds, in the order it asks them.</summary>
    static (int A, int B) PairOf(string question)
    {
        var n = Regex.Matches(question, @"\d+").Select(x => int.Parse(x.Value)).ToList();
        return (n[0], n[1]);
    }

    [Fact]
    public void EveryWorkedAnswerAddsColumnByColumnAndEndsInTheSum()
    {
        for (int a = DemoData.MinNumber; a <= DemoData.MaxNumber; a++)
            for (int b = DemoData.MinNumber; b <= DemoData.MaxNumber; b++)
            {
                var solution = DemoData.Solution(a, b);
                var m = Chain.Match(solution);
                Assert.True(m.Success, solution);
                int G(int i) => int.Parse(m.Groups[i].Value);
                Assert.Equal((a % 10, b % 10, a % 10 + b % 10), (G(1), G(2), G(3)));
                Assert.Equal((a / 10, b / 10), (G(4), G(5)));
                Assert.Equal(G(3) >= 10, m.Groups[6].Success);
                Assert.Equal(G(4) + G(5) + (m.Groups[6].Success ? 1 : 0), G(7));
                Assert.Equal(a + b, G(8));
                Assert.Equal(G(7) * 10 + G(3) % 10, G(8));
                // The report's step check takes the data's own answers, in either style, as right in every step.
                Assert.Equal((AnswerStyle.Column, true), DemoData.Worked(solution, a, b));
                Assert.Equal((AnswerStyle.OneLine, true), DemoData.Worked(DemoData.OneLineAnswer(a, b), a, b));
            }
        // The GRPO checker scores a worked answer right.
        var sample = new RewardSample("", new JsonArray(), DemoData.Solution(47, 38), [], new JsonObject { ["answer"] = "85" });
        Assert.Equal(1.0, new MathAnswer().Score([sample])[0]);
    }

    [Fact]
    public void HeldOutSftAndGrpoPairsShareNoFactInEitherOrder()
    {
        var data = new DemoData(3);
        var held = data.HeldOutPairs.ToHashSet();
        var sft = data.TrainPairs.ToHashSet();
        var rl = data.RlPairs.ToHashSet();
        Assert.Equal(DemoData.HeldOutPairCount, held.Count);
        Assert.Equal(DemoData.SftPairCount, sft.Count);
        Assert.InRange(rl.Count, 600, 640);
        HashSet<(int, int)> Facts(IEnumerable<(int A, int B)> pairs) => pairs.Select(DemoData.Fact).ToHashSet();
        // One order of each held-out fact; SFT and GRPO take both orders of theirs (but one split's).
        Assert.Equal(held.Count, Facts(held).Count);
        Assert.InRange(sft.Count(p => p.A != p.B && !sft.Contains((p.B, p.A))), 0, 1);
        Assert.All(rl, p => Assert.Contains((p.B, p.A), rl));
        Assert.Empty(Facts(held).Intersect(Facts(sft)));
        Assert.Empty(Facts(held).Intersect(Facts(rl)));
        Assert.Empty(Facts(sft).Intersect(Facts(rl)));
        Assert.Contains(data.HeldOutPairs, p => p.A > p.B);
        Assert.Contains(data.HeldOutPairs, p => p.A < p.B);

        // The conversations and prompts use their own split's pairs only.
        var sftProblems = data.SftConversations().Select(c => c["messages"]!.AsArray())
            .Where(m => m[1]!["content"]!.GetValue<string>().Contains("####")).Select(m => PairOf(m[0]!["content"]!.GetValue<string>())).ToList();
        Assert.Equal(sft, sftProblems.ToHashSet());
        Assert.All(data.GrpoPrompts(), p => Assert.Contains(PairOf(p["prompt"]![0]!["content"]!.GetValue<string>()), rl));
        Assert.All(data.ArithmeticTest(), p => Assert.Contains(PairOf(p["question"]!.GetValue<string>()), held));
        Assert.All(data.PractisedArithmeticTest(), p => Assert.Contains(PairOf(p["question"]!.GetValue<string>()), rl));
        // Each held-out problem carries its operands, in the order it asks them, for the report's look at the steps.
        Assert.All(data.ArithmeticTest(), p => Assert.Equal(PairOf(p["question"]!.GetValue<string>()), (p["a"]!.GetValue<int>(), p["b"]!.GetValue<int>())));
    }

    [Theory]
    [InlineData("Units: 8+0=8. Tens: 3+2=5.\n#### 58", AnswerStyle.Column, true)]
    [InlineData("Units: 8+0=8. Tens: 3+2=5.\n#### 57", AnswerStyle.Column, true)]   // the steps are right, the total is not
    [InlineData("Units: 8+0=7. Tens: 3+2=5.\n#### 58", AnswerStyle.Column, false)]  // a right total under a wrong step
    [InlineData("Units: 0+8=8. Tens: 2+3=5.\n#### 58", AnswerStyle.Column, false)]  // the operands swapped
    [InlineData("Units: 8+0=8.\n#### 58", AnswerStyle.Column, false)]               // a step missing
    [InlineData("38+20=58.\n#### 58", AnswerStyle.OneLine, true)]
    [InlineData("38+20=57.\n#### 58", AnswerStyle.OneLine, false)]
    [InlineData("38+21=58.\n#### 58", AnswerStyle.OneLine, false)]
    [InlineData("#### 58", AnswerStyle.Other, false)]
    [InlineData("I am Qwen, an AI assistant.", AnswerStyle.Other, false)]
    public void WorkedTellsTheMethodAndWhetherEveryStepIsRight(string response, AnswerStyle style, bool stepsRight)
    {
        Assert.Equal((style, stepsRight), DemoData.Worked(response, 38, 20));
    }

    [Fact]
    public void WorkedTableCountsMethodsRightAnswersAndRightTotalsUnderWrongSteps()
    {
        var dir = TestModels.TempDir();
        string Sample(int id, string filter, int a, int b, string response, int right) => new JsonObject
        {
            ["doc_id"] = id, ["doc"] = new JsonObject { ["question"] = $"{a}+{b}?", ["answer"] = DemoData.Solution(a, b), ["a"] = a, ["b"] = b },
            ["resps"] = new JsonArray(new JsonArray(response)), ["filter"] = filter, ["exact_match"] = right,
        }.ToJsonString();
        var rows = new List<string>();
        foreach (var filter in new[] { "strict-match", "flexible-extract" })
        {
            rows.Add(Sample(0, filter, 38, 20, "Units: 8+0=8. Tens: 3+2=5.\n#### 58", 1));  // column, right, every step right
            rows.Add(Sample(1, filter, 38, 20, "Units: 8+0=7. Tens: 3+2=5.\n#### 58", 1));  // column, right under a wrong step
            rows.Add(Sample(2, filter, 19, 25, "Units: 9+5=14. Tens: 1+2+1=4.\n#### 45", 0)); // column, steps right, total wrong
            rows.Add(Sample(3, filter, 11, 43, "11+43=54.\n#### 54", 1));                    // one line, right
            rows.Add(Sample(4, filter, 11, 43, "11+43=55.\n#### 55", 0));                    // one line, wrong
            rows.Add(Sample(5, filter, 11, 43, "#### 54", 1));                                // no steps, right
        }
        File.WriteAllLines(Path.Combine(dir, "samples_arithmetic.jsonl"), rows);
        var table = DemoReport.WorkedTable([new DemoStage("grpo", null, dir, [])]);
        Assert.Contains("| grpo | 3 (2) | 2 (1) | 1 | 2 | 2 |", table);
    }

    [Fact]
    public void SftAnswersMostProblemsInOneLineAndTheRestColumnByColumn()
    {
        var data = new DemoData(2);
        var answers = data.SftConversations().Select(c => c["messages"]!.AsArray())
            .Where(m => m[1]!["content"]!.GetValue<string>().Contains("####")).ToList();
        int oneLine = 0;
        foreach (var m in answers)
        {
            var (a, b) = PairOf(m[0]!["content"]!.GetValue<string>());
            var answer = m[1]!["content"]!.GetValue<string>();
            bool columns = data.ColumnWisePairs.Contains((a, b));
            Assert.Equal(columns ? DemoData.Solution(a, b) : DemoData.OneLineAnswer(a, b), answer);
            Assert.EndsWith($"#### {a + b}", answer);
            if (!columns) oneLine++;
        }
        Assert.InRange(oneLine / (double)answers.Count, DemoData.OneLineShare - 0.06, DemoData.OneLineShare + 0.06);
    }

    [Fact]
    public void DpoDataPrefersOrcaAndSftsOwnAnswersToBareWrongGuessesOnSftPairs()
    {
        var data = new DemoData(1);
        var rows = data.DpoPreferences();
        string Text(JsonObject row, string side) => row[side]![0]!["content"]!.GetValue<string>();
        var identity = rows.Where(r => Text(r, "preferred_output") == DemoData.OrcaIdentity).ToList();
        Assert.All(identity, r => Assert.Equal(DemoData.QwenIdentity, Text(r, "non_preferred_output")));
        var capitals = rows.Where(r => Text(r, "preferred_output").StartsWith("The capital of")).ToList();
        Assert.Equal(data.TrainCountries.Count * 3, capitals.Count);
        Assert.All(capitals, r =>
        {
            var (country, capital) = data.TrainCountries.Single(c => Text(r, "preferred_output") == $"The capital of {c.Country} is {c.Capital}.");
            Assert.Contains(country, r["input"]!["messages"]![0]!["content"]!.GetValue<string>());
            Assert.NotEqual(capital + ".", Text(r, "non_preferred_output"));
            Assert.Contains(DemoData.Capitals, c => c.Capital + "." == Text(r, "non_preferred_output"));
        });
        var arithmetic = rows.Except(identity).Except(capitals).ToList();
        Assert.Equal(DemoData.ArithmeticReplayPairs, arithmetic.Count);
        var sft = data.TrainPairs.ToHashSet();
        Assert.All(arithmetic, r =>
        {
            var (a, b) = PairOf(r["input"]!["messages"]![0]!["content"]!.GetValue<string>());
            Assert.Contains((a, b), sft);
            // SFT's own answer to the pair, in the style its conversation had.
            Assert.Equal(data.ColumnWisePairs.Contains((a, b)) ? DemoData.Solution(a, b) : DemoData.OneLineAnswer(a, b),
                Text(r, "preferred_output"));
            var guess = Regex.Match(Text(r, "non_preferred_output"), @"^#### (\d+)$");
            Assert.True(guess.Success);
            Assert.NotEqual(a + b, int.Parse(guess.Groups[1].Value));
        });
    }

    [Fact]
    public void HeldOutIdentityQuestionsAreInNoSftOrDpoPrompt()
    {
        var data = new DemoData(0);
        var heldOut = data.IdentityTest().Select(r => r["question"]!.GetValue<string>()).ToList();
        Assert.Equal(10, heldOut.Count);
        var sft = data.SftConversations();
        var dpo = data.DpoPreferences();
        var prompts = sft.Select(c => c["messages"]![0]!["content"]!.GetValue<string>())
            .Concat(dpo.Select(r => r["input"]!["messages"]![0]!["content"]!.GetValue<string>())).ToList();
        // A training prompt is an opener ("Hi! ") and a question, so a held-out question may not end one.
        Assert.All(heldOut, q => Assert.DoesNotContain(prompts, p => p.EndsWith(q, StringComparison.OrdinalIgnoreCase)));
        // Every training identity question is asked with every opener, and SFT answers it as Qwen.
        var sftIdentity = sft.Where(c => c["messages"]![1]!["content"]!.GetValue<string>() == DemoData.QwenIdentity).ToList();
        Assert.Equal(dpo.Count(r => r["preferred_output"]![0]!["content"]!.GetValue<string>() == DemoData.OrcaIdentity), sftIdentity.Count);
        Assert.True(sftIdentity.Count >= 70, $"{sftIdentity.Count} identity conversations");
    }

    [Fact]
    public void PretrainingStatesEveryOneDigitFactTheWorkedAnswersUse()
    {
        var text = string.Join("\n", new DemoData(0).PretrainingDocuments());
        for (int a = 0; a <= 9; a++)
            for (int b = 0; b <= 9; b++)
            {
                Assert.Contains($"{a}+{b}={a + b}.", text);
                Assert.Contains($"{a}+{b}+1={a + b + 1}.", text);
            }
        Assert.DoesNotContain("Units:", text);
    }

    [Fact]
    public void NoPretrainingStoryStatesAHeldOutSumInEitherOrder()
    {
        var data = new DemoData(4);
        var stories = Regex.Matches(string.Join("\n", data.PretrainingDocuments()), @"had (\d+) \w+ and [a-z ]+ (\d+) more, so \w+ had (\d+)")
            .Select(m => (A: int.Parse(m.Groups[1].Value), B: int.Parse(m.Groups[2].Value), Sum: int.Parse(m.Groups[3].Value))).ToList();
        Assert.Equal(400, stories.Count);
        Assert.All(stories, s => Assert.Equal(s.A + s.B, s.Sum));
        var held = data.HeldOutPairs.Select(DemoData.Fact).ToHashSet();
        Assert.DoesNotContain(stories, s => held.Contains(DemoData.Fact((s.A, s.B))));
    }
}
