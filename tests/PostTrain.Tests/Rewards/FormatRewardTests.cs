using System.Text.Json.Nodes;
using PostTrain.Rewards;

namespace PostTrain.Tests.Rewards;

public class FormatRewardTests
{
    static double? ScoreOne(FormatReward reward, string completion) =>
        reward.Score([new RewardSample("p", null, completion, [], new JsonObject())])[0];

    [Theory]
    [InlineData("<think>\nThis is my reasoning.\n</think>\nThis is my answer.", 1.0)]
    [InlineData("<think>reasoning</think>answer", 1.0)]
    [InlineData("<think></think>", 1.0)]
    [InlineData("<think>\nThis is my reasoning.\nThis is my answer.", 0.0)]
    [InlineData("This is my answer.", 0.0)]
    [InlineData(" <think>r</think>a", 0.0)]
    [InlineData("<think>a<think>b</think>c", 0.0)]
    [InlineData("<think>a</think>b<think>c</think>", 0.0)]
    [InlineData("", 0.0)]
    public void Default_pattern_is_a_think_block_then_anything(string completion, double expected) =>
        Assert.Equal(expected, ScoreOne(new FormatReward(), completion));

    [Theory]
    [InlineData("<answer>42</answer>", 1.0)]
    [InlineData("<answer>\n42\n</answer>", 1.0)]
    [InlineData("<answer>42</answer> extra", 0.0)]
    [InlineData("prefix <answer>42</answer>", 0.0)]
    public void A_user_pattern_must_match_the_whole_completion(string completion, double expected) =>
        Assert.Equal(expected, ScoreOne(new FormatReward("<answer>.*?</answer>"), completion));

    [Fact]
    public void Alternation_in_a_user_pattern_is_still_anchored_at_both_ends()
    {
        var reward = new FormatReward("a|b");
        Assert.Equal(1.0, ScoreOne(reward, "a"));
        Assert.Equal(0.0, ScoreOne(reward, "ab"));
        Assert.Equal(0.0, ScoreOne(reward, "xb"));
    }

    [Theory]
    [InlineData("(unclosed")]
    [InlineData("a)(b")]
    [InlineData("[z-a]")]
    public void An_invalid_pattern_is_an_error_naming_the_option(string pattern)
    {
        var e = Assert.Throws<InputError>(() => new FormatReward(pattern));
        Assert.Contains("--format-pattern", e.Message);
        Assert.Contains(pattern, e.Message);
    }
}
