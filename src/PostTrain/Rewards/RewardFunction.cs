using System.Text.Json.Nodes;

namespace PostTrain.Rewards;

/// <summary>
/// One sampled completion as a reward function sees it (TRL passes the same: prompts,
/// completions, completion_ids and the dataset row's other columns).
/// </summary>
/// <param name="Prompt">The prompt as the model saw it: raw text, or the rendered chat template.</param>
/// <param name="PromptMessages">The prompt's messages when the dataset is conversational, else null.</param>
/// <param name="Completion">The completion's decoded text (special tokens skipped).</param>
/// <param name="CompletionIds">The completion's token ids.</param>
/// <param name="Row">The dataset row: every field, including those other than the prompt (e.g. "answer").</param>
public sealed record RewardSample(string Prompt, JsonArray? PromptMessages, string Completion, int[] CompletionIds, JsonObject Row);

/// <summary>
/// A reward: one score per sample, or null where the function does not apply to a sample (as
/// TRL's None; such scores are left out of the means, and a sample that every function leaves
/// null is unscorable: NaN reward, advantage 0). Implementations score a whole batch at
/// once so a reward model can batch its forward. A function that cannot score a sample throws;
/// the trainer reports it with the prompt and never scores it zero.
/// </summary>
public interface IRewardFunction
{
    /// <summary>The name metrics use: rewards/NAME/mean.</summary>
    string Name { get; }

    double?[] Score(IReadOnlyList<RewardSample> samples);
}
