using PostTrain.Training;

namespace PostTrain.Trainers;

/// <summary>
/// PPO's options beyond the online ones, named and defaulted as TRL's PPOConfig
/// (trl/experimental/ppo/ppo_config.py): learning rate 3e-6, 4 PPO epochs over 1 mini-batch,
/// kl_coef 0.05 with the k1 estimator, cliprange 0.2, cliprange_value 0.2, vf_coef 0.1, gamma 1,
/// lam 0.95, temperature 0.7. One completion per prompt; --batch-size counts prompts per
/// micro-batch, and a rollout is the step's micro-batches (--gradient-accumulation-steps of them).
/// </summary>
public sealed record PpoOptions : OnlineOptions
{
    public PpoOptions()
    {
        LearningRate = 3e-6;
        Temperature = 0.7;
        SaveSteps = 100;
    }

    /// <summary>The value model: a sequence-classification checkpoint; null: the reward model when --reward-model is given, else the policy with a fresh value head.</summary>
    public string? ValueModel { get; init; }
    /// <summary>Passes over each rollout.</summary>
    public int NumPpoEpochs { get; init; } = 4;
    /// <summary>Mini-batches per pass, one optimiser step each.</summary>
    public int NumMiniBatches { get; init; } = 1;
    /// <summary>The per-token KL penalty's coefficient.</summary>
    public double KlCoef { get; init; } = 0.05;
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K1;
    public double Cliprange { get; init; } = 0.2;
    public double CliprangeValue { get; init; } = 0.2;
    public double VfCoef { get; init; } = 0.1;
    public double Gamma { get; init; } = 1.0;
    public double Lam { get; init; } = 0.95;
    /// <summary>Whiten the per-token rewards (mean kept) before GAE.</summary>
    public bool WhitenRewards { get; init; }
    /// <summary>Subtracted from the score of a completion without an end-of-sequence token; null: none.</summary>
    public double? MissingEosPenalty { get; init; }

    /// <summary>Optimiser steps per rollout.</summary>
    public int StepsPerRollout => NumPpoEpochs * NumMiniBatches;

    public override void Validate()
    {
        base.Validate();
        static void Require(bool ok, string option, string message)
        {
            if (!ok) throw new InputError($"--{option}: {message}");
        }
        Require(NumPpoEpochs >= 1, "num-ppo-epochs", "must be at least 1");
        Require(NumMiniBatches >= 1, "num-mini-batches", "must be at least 1");
        Require(NumMiniBatches <= BatchSize * GradientAccumulationSteps, "num-mini-batches",
            $"must not exceed the completions of a rollout (--batch-size x --gradient-accumulation-steps = {BatchSize * GradientAccumulationSteps})");
        Require(KlCoef >= 0 && double.IsFinite(KlCoef), "kl-coef", "must not be negative");
        Require(Cliprange is > 0 and < 1, "cliprange", "must be in (0, 1)");
        Require(CliprangeValue > 0 && double.IsFinite(CliprangeValue), "cliprange-value", "must be positive");
        Require(VfCoef >= 0 && double.IsFinite(VfCoef), "vf-coef", "must not be negative");
        Require(Gamma is >= 0 and <= 1, "gamma", "must be in [0, 1]");
        Require(Lam is >= 0 and <= 1, "lam", "must be in [0, 1]");
        Require(MissingEosPenalty is null || (MissingEosPenalty >= 0 && double.IsFinite(MissingEosPenalty.Value)), "missing-eos-penalty", "must not be negative");
        Require(SaveSteps % StepsPerRollout == 0, "save-steps",
            $"must be a multiple of --num-ppo-epochs x --num-mini-batches ({StepsPerRollout}): a checkpoint inside a rollout's updates could not resume it exactly");
    }

    /// <summary>Every setting of `ppo`: the loop's, the online ones and PPO's, declared once.</summary>
    public static readonly SettingTable<PpoOptions> Settings = new(
    [
        .. SettingsFor<PpoOptions>(),
        S("value-model", "Value model: a sequence-classification checkpoint (default: --reward-model when given, else --model with a fresh value head)", typeof(string), o => o.ValueModel, (o, v) => o with { ValueModel = (string?)v }),
        S("num-ppo-epochs", "Passes over each rollout", typeof(int), o => o.NumPpoEpochs, (o, v) => o with { NumPpoEpochs = (int)v! }),
        S("num-mini-batches", "Mini-batches per pass, one optimiser step each", typeof(int), o => o.NumMiniBatches, (o, v) => o with { NumMiniBatches = (int)v! }),
        S("kl-coef", "Per-token KL penalty to the reference in the reward", typeof(double), o => o.KlCoef, (o, v) => o with { KlCoef = (double)v! }),
        S("kl-estimator", "KL estimator: k1 (logp - ref) or k3 (lower variance)", typeof(KlEstimator), o => o.KlEstimator, (o, v) => o with { KlEstimator = (KlEstimator)v! }, ["k1", "k3"]),
        S("cliprange", "Policy ratio clip range", typeof(double), o => o.Cliprange, (o, v) => o with { Cliprange = (double)v! }),
        S("cliprange-value", "Value clip range around the rollout's values", typeof(double), o => o.CliprangeValue, (o, v) => o with { CliprangeValue = (double)v! }),
        S("vf-coef", "Weight of the value loss", typeof(double), o => o.VfCoef, (o, v) => o with { VfCoef = (double)v! }),
        S("gamma", "Discount factor", typeof(double), o => o.Gamma, (o, v) => o with { Gamma = (double)v! }),
        S("lam", "GAE lambda", typeof(double), o => o.Lam, (o, v) => o with { Lam = (double)v! }),
        S("whiten-rewards", "Whiten the per-token rewards before GAE", typeof(bool), o => o.WhitenRewards, (o, v) => o with { WhitenRewards = (bool)v! }),
        S("missing-eos-penalty", "Subtract this from the score of a completion that did not end with an end-of-sequence token", typeof(double?), o => o.MissingEosPenalty, (o, v) => o with { MissingEosPenalty = (double?)v }),
    ]);

    static Setting<PpoOptions> S(string name, string description, Type type, Func<PpoOptions, object?> get, Func<PpoOptions, object?, PpoOptions> set, string[]? choices = null) =>
        LoopSettings.S(name, description, type, get, set, choices);
}
