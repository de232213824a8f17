"""Golden values for PostTrain's RLOO loss, advantages and KL penalty, computed the way TRL's RLOOTrainer does.

Written from TRL's trl/trainer/rloo_trainer.py (main at f2cd57710ae345ea6428ae95363267fcf38a3dc8):
  _generate_and_score_completions: per_token_kl = old_per_token_logps - ref_per_token_logps (first order),
      kl = (per_token_kl * completion_mask).sum(-1), rewards = rewards - beta * kl; the leave-one-out baseline
      (nansum of the others over the scorable count - 1); normalize_advantages: (a - nanmean) / (nanstd + 1e-4)
      over the generation batch; nan_to_num; std_rewards = nanstd of each group (frac_reward_zero_std); the logged
      kl = sum(per_token_kl * mask) / mask.sum().clamp(min=1).
  _compute_loss: logps = (per_token_logps * completion_mask).sum(1), log_ratio = logps - old_logps,
      coef_1 = exp(log_ratio), coef_2 = clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high),
      per_sequence_loss = -min(coef_1 * A, coef_2 * A), loss = per_sequence_loss.mean(); clip_ratio/low_mean,
      low_min, high_mean, high_max, region_mean over the sequences' 0/1 flags.
and TRL's nanstd (trl/trainer/utils.py). Independent of the C# code: plain torch (1.13 is enough), float64,
padded [sequences, tokens] tensors with a completion mask as TRL holds them.

    /usr/bin/python3 tests/reference/rloo_reference.py   # writes tests/PostTrain.Tests/Fixtures/rloo/golden.json
"""
import json
import math
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "PostTrain.Tests", "Fixtures", "rloo", "golden.json")
D = torch.float64


def nanstd(t):
    """TRL's nanstd over a 1-D tensor: the unbiased std of the values that are not NaN (NaN below two)."""
    mean = torch.nanmean(t)
    variance = torch.nanmean((t - mean) ** 2)
    count = torch.sum(~torch.isnan(t)).to(D)  # float64 here: an int64 count would make the correction float32
    correction = count / (count - 1) if count > 1 else torch.tensor(float("nan"), dtype=D)
    return torch.sqrt(variance * correction)


def nanstd_rows(t):
    return torch.stack([nanstd(row) for row in t])


def pad(rows, value=0.0):
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=D)


def mask_of(lengths, in_loss):
    width = max(lengths)
    return torch.tensor([[1.0 if (t < n and keep) else 0.0 for t in range(width)] for n, keep in zip(lengths, in_loss)], dtype=D)


def nullable(values):
    return [None if math.isnan(v) else v for v in values]


def token_values(generator, lengths, low, high):
    return [[low + (high - low) * torch.rand(1, generator=generator, dtype=D).item() for _ in range(n)] for n in lengths]


def loss_part():
    g = torch.Generator().manual_seed(17)
    lengths = [3, 5, 2, 4, 1, 4, 3]
    in_loss = [True, True, True, True, True, False, True]  # completion 5: truncated, masked (mask_truncated_completions)
    old = token_values(g, lengths, -3.0, -0.05)
    # Sequence log-ratios chosen to land inside, above and below the trust region, spread over the tokens.
    log_ratio = [0.5, -0.4, 0.1, -0.5, 0.3, 0.7, -0.15]
    logps = []
    for o, r in zip(old, log_ratio):
        w = torch.rand(len(o), generator=g, dtype=D)
        w = w / w.sum()
        logps.append([x + r * wi.item() for x, wi in zip(o, w)])
    advantages = [1.5, -0.7, 0.3, 0.8, -1.2, 0.9, -0.4]
    mask = mask_of(lengths, in_loss)
    cases = []
    for eps_low, eps_high in [(0.2, 0.2), (0.2, 0.28), (0.1, 0.7)]:
        per_token_logps = pad(logps).requires_grad_(True)
        old_logps = (pad(old) * mask).sum(1)
        seq_logps = (per_token_logps * mask).sum(1)
        a = torch.tensor(advantages, dtype=D)
        coef_1 = torch.exp(seq_logps - old_logps)
        coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
        per_sequence_loss = -torch.min(coef_1 * a, coef_2 * a)
        loss = per_sequence_loss.mean()
        loss.backward()
        grad = per_token_logps.grad
        low = ((coef_1 < 1 - eps_low) & (a < 0)).to(D)
        high = ((coef_1 > 1 + eps_high) & (a > 0)).to(D)
        region = (low.bool() | high.bool()).to(D)
        cases.append({
            "epsilon": eps_low,
            "epsilon_high": eps_high,
            "per_sequence_loss": per_sequence_loss.tolist(),
            "loss": loss.item(),
            # d loss / d per-token log-probability, per completion (0 for a masked completion's tokens)
            "grad": [grad[i, :n].tolist() for i, n in enumerate(lengths)],
            "metrics": {
                "clip_ratio/low_mean": low.mean().item(),
                "clip_ratio/low_min": low.min().item(),
                "clip_ratio/high_mean": high.mean().item(),
                "clip_ratio/high_max": high.max().item(),
                "clip_ratio/region_mean": region.mean().item(),
            },
        })
    return {
        "inputs": {"lengths": lengths, "in_loss": in_loss, "logps": logps, "old_logps": old, "advantages": advantages},
        "cases": cases,
    }


def advantage_part():
    g = torch.Generator().manual_seed(5)
    nan = float("nan")
    num_generations = 4
    # Groups: partly unscorable; equal rewards; a lone scorable completion; fully scored.
    rewards = [1.0, nan, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 2.0, nan, nan, nan, 0.0, 1.0, 3.0, 0.25]
    lengths = [3, 2, 4, 1, 2, 2, 3, 5, 1, 2, 2, 2, 4, 3, 2, 1]
    in_loss = [True] * 16
    in_loss[6] = False  # a truncated completion under mask_truncated_completions: no KL
    old = token_values(g, lengths, -2.5, -0.1)
    ref = [[x + 0.3 * (torch.rand(1, generator=g, dtype=D).item() - 0.4) for x in o] for o in old]
    mask = mask_of(lengths, in_loss)
    per_token_kl = pad(old) - pad(ref)
    kl = (per_token_kl * mask).sum(-1)
    logged_kl = ((per_token_kl * mask).sum() / mask.sum().clamp(min=1.0)).item()
    cases = []
    for beta in [0.0, 0.05]:
        r = torch.tensor(rewards, dtype=D)
        if beta != 0.0:
            r = r - beta * kl
        grouped = r.view(-1, num_generations)
        std_rewards = nanstd_rows(grouped)
        scorable = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
        grouped_sum = torch.nansum(grouped, dim=1, keepdim=True)
        baselines = ((grouped_sum - grouped) / (scorable - 1)).view(-1)
        raw = r - baselines
        for normalize in [False, True]:
            a = raw.clone()
            if normalize:
                a = (a - torch.nanmean(a)) / (nanstd(a) + 1e-4)
            a = torch.nan_to_num(a, nan=0.0)
            cases.append({
                "beta": beta,
                "normalize_advantages": normalize,
                "shaped_rewards": nullable(r.tolist()),
                "advantages": a.tolist(),
                "std_rewards": nullable(std_rewards.tolist()),
            })
    return {
        "inputs": {"num_generations": num_generations, "rewards": nullable(rewards), "lengths": lengths, "in_loss": in_loss,
                   "old_logps": old, "ref_logps": ref},
        "sequence_kl": kl.tolist(),
        "kl": logged_kl,
        "cases": cases,
    }


def main():
    golden = {"loss": loss_part(), "advantages": advantage_part()}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(OUT))
    for c in golden["loss"]["cases"]:
        print(f"eps {c['epsilon']}/{c['epsilon_high']}: loss {c['loss']:.6f} metrics {c['metrics']}")


if __name__ == "__main__":
    main()
