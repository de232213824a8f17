"""PPO goldens: TRL's PPOTrainer arithmetic (trl/experimental/ppo/ppo_trainer.py at f2cd577:
masked_mean, masked_var, masked_whiten, the k1/k3 KL, GAE, the clipped policy and value losses)
re-implemented in torch on fixed tensors, with PostTrain's one stated difference: each sequence's
score is added at its last valid token (TRL: one position later when there is room).

Writes tests/PostTrain.Tests/Fixtures/ppo/golden.json. Deterministic. /usr/bin/python3 (torch 1.13).
"""
import json
import os

import torch

torch.manual_seed(0)
B, T = 3, 6
lengths = torch.tensor([6, 3, 1])
mask = (torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)).double()


def masked_mean(v, m):
    return (v * m).sum() / m.sum()


def masked_var(v, m):
    mean = masked_mean(v, m)
    var = masked_mean((v - mean) ** 2, m)
    n = m.sum()
    return var * n / (n - 1)


def masked_whiten(v, m, shift_mean=True):
    mean, var = masked_mean(v, m), masked_var(v, m)
    w = (v - mean) * torch.rsqrt(var + 1e-8)
    return w if shift_mean else w + mean


def case(name, seed, kl_estimator, kl_coef, gamma, lam, cliprange, cliprange_value):
    g = torch.Generator().manual_seed(seed)
    old_logps = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3
    ref_logps = old_logps + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3
    new_logps = old_logps + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.4
    old_values = torch.randn(B, T, generator=g, dtype=torch.float64)
    new_values = old_values + torch.randn(B, T, generator=g, dtype=torch.float64) * 0.5
    scores = torch.randn(B, generator=g, dtype=torch.float64) * 2

    logr = (ref_logps - old_logps) * mask
    kl = -logr if kl_estimator == "k1" else (logr.exp() - 1) - logr
    non_score = -kl_coef * kl * mask
    rewards = non_score.clone()
    rewards[torch.arange(B), lengths - 1] += scores
    values = old_values * mask

    last = 0
    adv = []
    for t in reversed(range(T)):
        nextv = values[:, t + 1] if t < T - 1 else 0.0
        delta = rewards[:, t] + gamma * nextv - values[:, t]
        last = delta + gamma * lam * last
        adv.append(last)
    advantages = torch.stack(adv[::-1], 1) * mask
    returns = advantages + values
    whitened = masked_whiten(advantages, mask) * mask

    diff = (new_logps - old_logps) * mask
    ratio = diff.exp()
    pg1 = -whitened * ratio
    pg2 = -whitened * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    pg_loss = masked_mean(torch.max(pg1, pg2), mask)
    vclip = torch.clamp(new_values, values - cliprange_value, values + cliprange_value)
    vf1 = (new_values - returns) ** 2
    vf2 = (vclip - returns) ** 2
    vf_loss = 0.5 * masked_mean(torch.max(vf1, vf2), mask)
    L = lambda t: t.tolist()
    return {
        "name": name, "kl_estimator": kl_estimator, "kl_coef": kl_coef, "gamma": gamma, "lam": lam,
        "cliprange": cliprange, "cliprange_value": cliprange_value,
        "mask": L(mask), "old_logps": L(old_logps), "ref_logps": L(ref_logps), "new_logps": L(new_logps),
        "old_values": L(old_values), "new_values": L(new_values), "scores": L(scores),
        "kl": L(kl), "rewards": L(rewards), "non_score": L(non_score), "advantages": L(advantages), "returns": L(returns),
        "whitened": L(whitened), "pg_loss": pg_loss.item(), "pg_clipfrac": masked_mean((pg2 > pg1).double(), mask).item(),
        "approxkl": masked_mean(0.5 * diff ** 2, mask).item(), "ratio_mean": masked_mean(ratio, mask).item(),
        "vf_loss": vf_loss.item(), "vf_clipfrac": masked_mean((vf2 > vf1).double(), mask).item(),
    }


cases = [
    case("k1", 1, "k1", 0.05, 1.0, 0.95, 0.2, 0.2),
    case("k3-discounted", 2, "k3", 0.2, 0.9, 0.8, 0.1, 0.05),
]
out = os.path.join(os.path.dirname(__file__), "..", "PostTrain.Tests", "Fixtures", "ppo", "golden.json")
with open(out, "w") as f:
    json.dump(cases, f)
    f.write("\n")
print("wrote", os.path.normpath(out))
