using System.Text.Json.Nodes;
using PostTrain.Rewards;

namespace PostTrain.Tests.Rewards;

public class MathAnswerTests
{
    static RewardSample Sample(string completion, JsonNode? answer, string field = "answer") =>
        new("Q?", null, completion, [], new JsonObject { ["question"] = "Q?", [field] = answer });

    static double? ScoreOne(string completion, JsonNode? answer) =>
        new MathAnswer().Score([Sample(completion, answer)])[0];

    // completion, reference answer field, expected reward
    public static TheoryData<string, string, double> Cases => new()
    {
        // The three markers.
        { "so 6 * 7 = 42.\n#### 42", "42", 1.0 },
        { "We get \\boxed{42}.", "42", 1.0 },
        { "The answer is 42.", "42", 1.0 },
        { "the answer is: 42", "42", 1.0 },
        { "Final answer: 42", "42", 1.0 },
        { "<think>6*7</think><answer>42</answer>", "42", 1.0 },
        { "The answer is 41.", "42", 0.0 },
        // No final answer stated: zero even if the number appears.
        { "6 * 7 = 42", "42", 0.0 },
        { "", "42", 0.0 },
        // The last marker wins.
        { "First \\boxed{41}, no wait, the answer is 42.", "42", 1.0 },
        { "The answer is 41. Recheck: \\boxed{42}", "42", 1.0 },
        { "#### 41\nHmm. The answer is 42", "42", 1.0 },
        { "\\boxed{42} ... so \\boxed{43}", "42", 0.0 },
        // What models emit around the number.
        { "The answer is **42**.", "42", 1.0 },
        { "The answer is $42$.", "42", 1.0 },
        { "The answer is \\$42.", "42", 1.0 },
        { "The answer is $\\boxed{42}$.", "42", 1.0 },
        { "The answer is 42 dollars.", "42", 1.0 },
        { "The answer is 18 apples. Let me explain why.", "18", 1.0 },
        { "#### $1,234", "1234", 1.0 },
        { "\\boxed{\\text{42 cm}}", "42", 1.0 },
        { "The answer is x = 5.", "5", 1.0 },
        { "\\boxed{x=5}", "5", 1.0 },
        { "#### 42\n\nThat is all.", "42", 1.0 },
        { "####\n42", "42", 1.0 },
        { "**Answer:** 42", "42", 1.0 },
        { "The answer is: **$1,200**.", "1200", 1.0 },
        { "The final answer is $\\boxed{\\dfrac{7}{2}}$", "3.5", 1.0 },
        { "So the answer is 3.14.", "3.14", 1.0 },
        { "The answer is 42!", "42", 1.0 },
        { "The answer is 3 hours.", "3", 1.0 },
        { "The answer is 1 000.", "1000", 1.0 },
        // Commas, signs, decimals.
        { "#### 1,000,000", "1000000", 1.0 },
        { "#### 1000000", "1,000,000", 1.0 },
        { "#### -7", "-7", 1.0 },
        { "#### 7", "-7", 0.0 },
        { "#### −7", "-7", 1.0 },
        { "#### +7", "7", 1.0 },
        { "#### 0.5", ".5", 1.0 },
        { "#### .5", "1/2", 1.0 },
        { "#### 2.50", "2.5", 1.0 },
        { "#### 3.0", "3", 1.0 },
        { "#### 3.01", "3", 0.0 },
        { "#### 1000001", "1000000", 0.0 },
        // Fractions and LaTeX.
        { "\\boxed{\\frac{3}{4}}", "3/4", 1.0 },
        { "\\boxed{\\dfrac{3}{4}}", "0.75", 1.0 },
        { "\\boxed{\\tfrac{1}{2}}", ".5", 1.0 },
        { "\\boxed{\\frac12}", "0.5", 1.0 },
        { "\\boxed{-\\frac{3}{4}}", "-0.75", 1.0 },
        { "\\boxed{\\frac{-3}{4}}", "-3/4", 1.0 },
        { "\\boxed{\\frac{\\frac{1}{2}}{2}}", "1/4", 1.0 },
        { "\\boxed{\\left( \\frac{3}{4} \\right)}", "3/4", 1.0 },
        { "The answer is $\\frac{3}{4}$.", "\\frac{3}{4}", 1.0 },
        { "\\boxed{\\frac{2}{3}}", "0.6667", 0.0 },
        { "\\boxed{\\frac{3}{4}}", "4/3", 0.0 },
        { "\\boxed{6/8}", "3/4", 1.0 },
        // Nested braces in \boxed.
        { "\\boxed{\\frac{1}{\\sqrt{4}}}", "\\frac{1}{\\sqrt{4}}", 1.0 },
        { "\\boxed{{42}}", "42", 1.0 },
        // Percentages.
        { "The answer is 50%.", "50", 1.0 },
        { "\\boxed{50\\%}", "50", 1.0 },
        { "\\boxed{50\\%}", "0.5", 1.0 },
        { "#### 25%", "50%", 0.0 },
        // Units after the reference.
        { "#### 12", "12 dollars", 1.0 },
        { "\\boxed{10^\\circ}", "10", 1.0 },
        // Non-numeric answers compare as text.
        { "The answer is B.", "B", 1.0 },
        { "\\boxed{\\text{(B)}}", "B", 1.0 },
        { "The answer is C.", "B", 0.0 },
        { "\\boxed{Monday}", "monday", 1.0 },
        { "\\boxed{\\sqrt{2}}", "\\sqrt{2}", 1.0 },
        { "\\boxed{\\sqrt{3}}", "\\sqrt{2}", 0.0 },
        // GSM8K solutions as the reference.
        { "#### 72", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72", 1.0 },
        { "The answer is 1,080.", "He earns 1080.\n#### 1,080", 1.0 },
        { "#### 71", "Natalia sold 72 clips.\n#### 72", 0.0 },
        // A MATH-style solution with \boxed as the reference.
        { "The answer is 1/3", "So the probability is $\\boxed{\\frac{1}{3}}$.", 1.0 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Scores_the_final_answer(string completion, string reference, double expected) =>
        Assert.Equal(expected, ScoreOne(completion, reference));

    [Theory]
    [InlineData("#### 42", 42, 1.0)]
    [InlineData("#### 2.5", 2.5, 1.0)]
    [InlineData("#### -3", -3, 1.0)]
    [InlineData("#### 4", 42, 0.0)]
    public void A_numeric_reference_field_is_read_as_a_number(string completion, double reference, double expected) =>
        Assert.Equal(expected, ScoreOne(completion, JsonValue.Create(reference)));

    [Theory]
    [InlineData("The answer is **42**.", "**42**")]
    [InlineData("\\boxed{\\frac{a}{\\sqrt{b}}} and more", "\\frac{a}{\\sqrt{b}}")]
    [InlineData("no marker here", null)]
    [InlineData("#### 7\nthen \\boxed{8}", "8")]
    [InlineData("<answer>\n17\n</answer>", "\n17\n")]
    [InlineData("The answer is $3.5$. Done", "$3.5$")]
    public void Extracts_the_final_answer(string completion, string? expected) =>
        Assert.Equal(expected, MathAnswer.ExtractFinalAnswer(completion));

    [Fact]
    public void Scores_a_batch_in_order()
    {
        var scores = new MathAnswer().Score([Sample("#### 1", "1"), Sample("#### 2", "3"), Sample("nothing", "4")]);
        Assert.Equal([1.0, 0.0, 0.0], scores);
    }

    [Fact]
    public void An_empty_reference_is_not_applicable()
    {
        Assert.Null(ScoreOne("#### 1", ""));
        Assert.Null(ScoreOne("#### 1", "Solution text.\n####   "));
    }

    [Fact]
    public void A_row_without_the_answer_field_is_an_error_naming_it()
    {
        var e = Assert.Throws<InputError>(() => new MathAnswer("solution").Score([Sample("#### 1", "1")]));
        Assert.Contains("'solution'", e.Message);
        Assert.Contains("--answer-field", e.Message);
        var nul = Assert.Throws<InputError>(() => new MathAnswer().Score([Sample("#### 1", null)]));
        Assert.Contains("'answer'", nul.Message);
        var obj = Assert.Throws<InputError>(() => new MathAnswer().Score([Sample("#### 1", new JsonArray(1))]));
        Assert.Contains("'answer'", obj.Message);
    }

    [Fact]
    public void The_answer_field_is_configurable()
    {
        var scores = new MathAnswer("solution").Score([Sample("\\boxed{9}", "9", field: "solution")]);
        Assert.Equal([1.0], scores);
        Assert.Equal("math", new MathAnswer().Name);
    }
}
