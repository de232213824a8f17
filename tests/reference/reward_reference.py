"""Golden values for PostTrain's reward-model loss and metrics, computed the way TRL's RewardTrainer does.

Written from TRL's trl/trainer/reward_trainer.py (DataCollatorForPreference: chosen rows then rejected rows,
right-padded with the pad id; compute_loss: -logsigmoid(r_chosen - r_rejected [- margin]).mean(), plus
center_rewards_coefficient * mean((r_chosen + r_rejected) ** 2); the metrics accuracy, margin, min_reward,
mean_reward, max_reward) and transformers' GenericForSequenceClassification (score over the last hidden states,
pooled at the rightmost token that is not pad_token_id). Independent of the C# code: plain torch (1.13 is enough)
and the transformers-math forward of hf_reference.py.

    /usr/bin/python3 tests/reference/reward_reference.py   # writes tests/PostTrain.Tests/Fixtures/reward/golden.json

Two parts:
  fixed: rewards given as numbers (float64) -> per-pair losses, loss and metrics, with and without margins and
         the centring term (a tie included: accuracy counts r_chosen > r_rejected strictly);
  model: the qwen2-reward fixture (Qwen2ForSequenceClassification, num_labels 1, pad_token_id 266) scoring four
         token-id pairs (one row ends with real tokens equal to the pad id, so it is pooled before them), in float32,
         with the loss's gradient with respect to score.weight.
"""
import json
import os

import torch
import torch.nn.functional as F

import hf_reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PostTrain.Tests", "Fixtures")

CONFIGS = [
    {"margins": False, "center_rewards_coefficient": None},
    {"margins": True, "center_rewards_coefficient": None},
    {"margins": False, "center_rewards_coefficient": 0.01},
    {"margins": True, "center_rewards_coefficient": 0.5},
]


def compute_loss(cfg, rewards_chosen, rewards_rejected, margin):
    """TRL's RewardTrainer.compute_loss on already pooled rewards."""
    if cfg["margins"]:
        per_pair = -F.logsigmoid(rewards_chosen - rewards_rejected - margin)
    else:
        per_pair = -F.logsigmoid(rewards_chosen - rewards_rejected)
    loss = per_pair.mean()
    if cfg["center_rewards_coefficient"] is not None:
        centre = (rewards_chosen + rewards_rejected) ** 2
        loss = loss + cfg["center_rewards_coefficient"] * torch.mean(centre)
        per_pair = per_pair + cfg["center_rewards_coefficient"] * centre
    return loss, per_pair


def metrics(rewards_chosen, rewards_rejected):
    all_rewards = torch.cat([rewards_chosen, rewards_rejected])
    return {
        "min_reward": all_rewards.min().item(),
        "mean_reward": all_rewards.mean().item(),
        "max_reward": all_rewards.max().item(),
        "accuracy": (rewards_chosen > rewards_rejected).float().mean().item(),
        "margin": (rewards_chosen - rewards_rejected).mean().item(),
    }


def fixed_part():
    d = torch.float64
    inputs = {
        "rewards_chosen": [1.5, -0.25, 0.75, 2.0, -1.0],
        "rewards_rejected": [0.5, 0.5, 0.75, -3.0, -1.5],
        "margins": [0.0, 1.0, 0.5, 2.5, 0.25],
    }
    t = {k: torch.tensor(v, dtype=d) for k, v in inputs.items()}
    cases = []
    for cfg in CONFIGS:
        loss, per_pair = compute_loss(cfg, t["rewards_chosen"], t["rewards_rejected"], t["margins"])
        m = {"loss": loss.item()}
        m.update(metrics(t["rewards_chosen"], t["rewards_rejected"]))
        cases.append({"config": cfg, "per_pair_loss": per_pair.tolist(), "metrics": m})
    return {"inputs": inputs, "cases": cases}


def model_part():
    model_dir = os.path.join(FIXTURES, "models", "qwen2-reward")
    config, weights, _ = ref.load_checkpoint(model_dir)
    spec = ref.Spec(config)
    spec.tie_word_embeddings = True  # a classifier: no lm_head
    pad = config["pad_token_id"]
    assert pad == 266
    pairs = [
        {"chosen_ids": [5, 17, 42, 9, 99, 2], "rejected_ids": [5, 17, 42, 88, 2], "margin": 0.5},
        {"chosen_ids": [3, 64, 12], "rejected_ids": [3, 64, 45, 46, 47, 48, 49], "margin": 0.0},
        # ends with two real tokens equal to the pad id (as when pad == eos): pooled at the 100 before them
        {"chosen_ids": [70, 71, 72, 100, pad, pad], "rejected_ids": [70, 71, 72, 101], "margin": 1.25},
        {"chosen_ids": [7], "rejected_ids": [8, 9], "margin": -0.75},
    ]
    # DataCollatorForPreference: input_ids = chosen rows then rejected rows, right-padded with the pad id.
    rows = [p["chosen_ids"] for p in pairs] + [p["rejected_ids"] for p in pairs]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        hidden = ref.forward_hidden(spec, weights, input_ids, attention_mask)
    non_pad = (input_ids != pad).to(torch.int32)
    last = (torch.arange(width, dtype=torch.int32) * non_pad).argmax(-1)
    margin = torch.tensor([p["margin"] for p in pairs], dtype=torch.float)

    cases = []
    for cfg in CONFIGS:
        score = weights["score.weight"].clone().requires_grad_(True)
        logits = hidden @ score.t()                                   # [2B, S, 1], as score over every position
        pooled = logits[torch.arange(len(rows)), last]                # [2B, 1]
        rewards_chosen, rewards_rejected = torch.chunk(pooled.squeeze(-1), chunks=2)
        loss, _ = compute_loss(cfg, rewards_chosen, rewards_rejected, margin)
        loss.backward()
        m = {"loss": loss.item()}
        m.update(metrics(rewards_chosen.detach(), rewards_rejected.detach()))
        cases.append({"config": cfg, "metrics": m, "score_grad": score.grad[0].tolist()})
    return {
        "model": "qwen2-reward", "pad_token_id": pad, "pairs": pairs,
        "pooled_positions": last.tolist(),
        "rewards": pooled.detach().squeeze(-1).tolist(),
        "cases": cases,
    }


def main():
    out = {"fixed": fixed_part(), "model": model_part()}
    path = os.path.join(FIXTURES, "reward", "golden.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")
    print("rewards", out["model"]["rewards"], "pooled at", out["model"]["pooled_positions"])


if __name__ == "__main__":
    main()
