using System.Text.Json.Nodes;
using PostTrain.Rewards;

namespace PostTrain.Tests.Rewards;

public class BuiltInRewardsTests
{
    [Fact]
    public void Creates_each_built_in_by_name()
    {
        var settings = new RewardSettings { AnswerField = "solution", FormatPattern = "x+" };
        var math = BuiltInRewards.Create("math", settings);
        Assert.Equal("math", math.Name);
        var row = new JsonObject { ["solution"] = "#### 3" };
        Assert.Equal([1.0], math.Score([new RewardSample("p", null, "\\boxed{3}", [], row)]));

        var format = BuiltInRewards.Create("format", settings);
        Assert.Equal("format", format.Name);
        Assert.Equal([1.0, 0.0], format.Score([new RewardSample("p", null, "xxx", [], row), new RewardSample("p", null, "xy", [], row)]));
        Assert.Equal(FormatReward.DefaultPattern, ((FormatReward)BuiltInRewards.Create("format", new RewardSettings())).Pattern);
    }

    [Fact]
    public void An_unknown_name_is_an_error_listing_the_known_names()
    {
        var e = Assert.Throws<InputError>(() => BuiltInRewards.Create("accuracy", new RewardSettings()));
        Assert.Contains("'accuracy'", e.Message);
        foreach (var name in BuiltInRewards.Names) Assert.Contains(name, e.Message);
    }
}
