using System.Text.RegularExpressions;

namespace PostTrain.Rewards;

/// <summary>
/// Format ("format"): 1.0 when the whole completion matches a regular expression ('.' matches
/// newlines too), else 0.0. The default is TRL's think_format_reward pattern: the completion
/// opens with a &lt;think&gt; block, has no second &lt;think&gt;, closes it, and anything may follow.
/// </summary>
public sealed class FormatReward : IRewardFunction
{
    /// <summary>TRL's think_format_reward: "^&lt;think&gt;(?!.*&lt;think&gt;)(.*?)&lt;/think&gt;.*$" with DOTALL.</summary>
    public const string DefaultPattern = @"<think>(?!.*<think>).*?</think>.*";

    readonly Regex regex;

    public FormatReward(string? pattern = null)
    {
        Pattern = pattern ?? DefaultPattern;
        try
        {
            _ = new Regex(Pattern, RegexOptions.Singleline | RegexOptions.CultureInvariant);
            // Anchored at both ends of the text, so the pattern must cover the whole completion.
            regex = new Regex($@"\A(?:{Pattern})\z", RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(5));
        }
        catch (ArgumentException e)
        {
            throw new InputError($"--format-pattern: invalid regular expression '{Pattern}': {e.Message}");
        }
    }

    public string Pattern { get; }

    public string Name => "format";

    public double?[] Score(IReadOnlyList<RewardSample> samples)
    {
        var scores = new double?[samples.Count];
        for (int i = 0; i < samples.Count; i++)
            scores[i] = regex.IsMatch(samples[i].Completion) ? 1.0 : 0.0;
        return scores;
    }
}
