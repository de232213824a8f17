"""Golden values for PostTrain's DPO loss and metrics, computed the way TRL's DPOTrainer does.

Written from TRL's trl/trainer/dpo_trainer.py (DataCollatorForPreference, _compute_loss: the losses, and the
metrics it logs, entropy and mean_token_accuracy included) and, for rpo_alpha, the DPOTrainer before TRL's
Feb 2026 refactor (#3906; concatenated_forward). Since that refactor TRL's sigmoid loss ignores label_smoothing
(no conservative DPO): only robust (of the losses PostTrain has) uses it. Independent of the C# code: plain torch (1.13 is enough) and the transformers-math
forward of hf_reference.py.

    /usr/bin/python3 tests/reference/dpo_reference.py   # writes tests/PostTrain.Tests/Fixtures/dpo/golden.json

Two parts:
  fixed: per-pair sequence log-probabilities given as numbers (float64) -> per-pair losses, loss and metrics;
  model: a policy (Fixtures/models/llama) and a *different* reference (Fixtures/models/llama-bias) scoring
         three token-id preference pairs, exactly as TRL's collator and _compute_loss do (float32).
"""
import json
import os

import torch
import torch.nn.functional as F

import hf_reference as ref

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "PostTrain.Tests", "Fixtures")

CONFIGS = [
    {"loss_type": "sigmoid", "beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": None},
    {"loss_type": "robust", "beta": 0.1, "label_smoothing": 0.2, "rpo_alpha": None},
    {"loss_type": "robust", "beta": 0.5, "label_smoothing": 0.0, "rpo_alpha": None},
    {"loss_type": "robust", "beta": 0.3, "label_smoothing": 0.45, "rpo_alpha": None},
    {"loss_type": "ipo", "beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": None},
    {"loss_type": "hinge", "beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": None},
    {"loss_type": "hinge", "beta": 2.0, "label_smoothing": 0.0, "rpo_alpha": None},
    {"loss_type": "sigmoid", "beta": 0.1, "label_smoothing": 0.0, "rpo_alpha": 0.5},
]


def per_pair_loss(cfg, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps, chosen_len, rejected_len):
    beta, eps = cfg["beta"], cfg["label_smoothing"]
    chosen_logratios = chosen_logps - ref_chosen_logps
    rejected_logratios = rejected_logps - ref_rejected_logps
    delta = chosen_logratios - rejected_logratios
    t = cfg["loss_type"]
    if t == "sigmoid":  # label_smoothing is not used (TRL's _compute_loss)
        return -F.logsigmoid(beta * delta)
    if t == "robust":
        clean = -(1 - eps) * F.logsigmoid(beta * delta)
        flipped = -eps * F.logsigmoid(-beta * delta)
        return (clean - flipped) / (1 - 2 * eps)
    if t == "hinge":
        return torch.relu(1 - beta * delta)
    if t == "ipo":  # log-ratios averaged over the completion tokens (completion_mask.sum, not shifted)
        d = chosen_logratios / chosen_len.clamp(min=1.0) - rejected_logratios / rejected_len.clamp(min=1.0)
        return (d - 1 / (2 * beta)) ** 2
    raise ValueError(t)


def metrics(cfg, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps):
    beta = cfg["beta"]
    chosen_rewards = beta * (chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (rejected_logps - ref_rejected_logps)
    return {
        "rewards/chosen": chosen_rewards.mean().item(),
        "rewards/rejected": rejected_rewards.mean().item(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
        "logps/chosen": chosen_logps.mean().item(),
        "logps/rejected": rejected_logps.mean().item(),
    }


def fixed_part():
    d = torch.float64
    inputs = {
        "chosen_logps": [-12.5, -30.25, -7.0, -18.0],
        "rejected_logps": [-15.0, -28.0, -9.5, -18.0],
        "ref_chosen_logps": [-13.0, -29.0, -8.0, -17.5],
        "ref_rejected_logps": [-14.0, -29.5, -9.0, -16.0],
        "chosen_lengths": [5, 12, 3, 7],
        "rejected_lengths": [6, 10, 4, 7],
    }
    t = {k: torch.tensor(v, dtype=d) for k, v in inputs.items()}
    cases = []
    for cfg in CONFIGS:
        if cfg["rpo_alpha"] is not None:
            continue  # rpo needs token log-probs: the model part covers it
        losses = per_pair_loss(cfg, t["chosen_logps"], t["rejected_logps"], t["ref_chosen_logps"], t["ref_rejected_logps"],
                               t["chosen_lengths"], t["rejected_lengths"])
        m = {"loss": losses.mean().item()}
        m.update(metrics(cfg, t["chosen_logps"], t["rejected_logps"], t["ref_chosen_logps"], t["ref_rejected_logps"]))
        cases.append({"config": cfg, "per_pair_loss": losses.tolist(), "metrics": m})
    return {"inputs": inputs, "cases": cases}


def collate(pairs, pad_id=0):
    """TRL's DataCollatorForPreference (no truncation): rows prompt+chosen for every pair, then prompt+rejected."""
    rows = [p["prompt_ids"] + p["chosen_ids"] for p in pairs] + [p["prompt_ids"] + p["rejected_ids"] for p in pairs]
    masks = [[0] * len(p["prompt_ids"]) + [1] * len(p["chosen_ids"]) for p in pairs] + \
            [[0] * len(p["prompt_ids"]) + [1] * len(p["rejected_ids"]) for p in pairs]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    completion_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks])
    return input_ids, attention_mask, completion_mask


def sequence_logps(logits, input_ids, completion_mask):
    shift_logits = logits[..., :-1, :]
    shift_labels = input_ids[..., 1:]
    shift_mask = completion_mask[..., 1:]
    per_token = torch.gather(shift_logits.log_softmax(-1), 2, shift_labels.unsqueeze(-1)).squeeze(-1)
    per_token[shift_mask == 0] = 0.0
    return per_token.sum(dim=1), shift_logits, shift_labels, shift_mask


def model_part():
    policy_dir = os.path.join(FIXTURES, "models", "llama")
    reference_dir = os.path.join(FIXTURES, "models", "llama-bias")
    pairs = [
        {"prompt_ids": [1, 17, 42, 5, 99], "chosen_ids": [23, 61, 7, 2], "rejected_ids": [88, 2]},
        {"prompt_ids": [1, 3, 64], "chosen_ids": [12, 2], "rejected_ids": [45, 46, 47, 48, 2]},
        {"prompt_ids": [1, 70, 71, 72, 73, 74, 75], "chosen_ids": [100, 101, 2], "rejected_ids": [100, 107, 2]},
    ]
    # A fourth pair whose chosen completion is the policy's greedy continuation (then EOS), so that
    # mean_token_accuracy is not trivially 0 on this random model.
    prompt = [1, 9, 33, 50]
    config, weights, _ = ref.load_checkpoint(policy_dir)
    spec = ref.Spec(config)
    greedy = []
    with torch.no_grad():
        for _ in range(3):
            ids = torch.tensor([prompt + greedy])
            greedy.append(int(ref.forward(spec, weights, ids)[0, -1].argmax()))
    pairs.append({"prompt_ids": prompt, "chosen_ids": greedy + [2], "rejected_ids": [88, 2]})
    input_ids, attention_mask, completion_mask = collate(pairs)

    def run(model_dir):
        config, weights, _ = ref.load_checkpoint(model_dir)
        spec = ref.Spec(config)
        with torch.no_grad():
            return ref.forward(spec, weights, input_ids, attention_mask)

    policy_logits, reference_logits = run(policy_dir), run(reference_dir)
    logps, shift_logits, shift_labels, shift_mask = sequence_logps(policy_logits, input_ids, completion_mask)
    ref_logps, _, _, _ = sequence_logps(reference_logits, input_ids, completion_mask)
    chosen_logps, rejected_logps = logps.chunk(2, dim=0)
    ref_chosen_logps, ref_rejected_logps = ref_logps.chunk(2, dim=0)
    chosen_cmask, rejected_cmask = completion_mask.chunk(2, dim=0)

    chosen_logits, rejected_logits = shift_logits.chunk(2, dim=0)
    chosen_smask, rejected_smask = shift_mask.chunk(2, dim=0)
    logits_chosen = (chosen_logits[chosen_smask.bool()].mean(-1).sum() / chosen_smask.sum()).item()
    logits_rejected = (rejected_logits[rejected_smask.bool()].mean(-1).sum() / rejected_smask.sum()).item()
    chosen_labels = shift_labels.chunk(2, dim=0)[0]
    nll = F.cross_entropy(chosen_logits[chosen_smask.bool()], chosen_labels[chosen_smask.bool()]).item()
    # entropy: over every completion token, chosen and rejected (TRL's entropy_from_logits, masked mean)
    logp = shift_logits.log_softmax(-1)
    per_token_entropy = -(logp.exp() * logp).sum(-1)
    entropy = ((per_token_entropy * shift_mask).sum() / shift_mask.sum()).item()
    # mean_token_accuracy: the chosen completions' tokens whose label is the argmax
    correct = (chosen_logits.argmax(dim=-1) == chosen_labels) & chosen_smask.bool()
    accuracy = (correct.sum() / chosen_smask.sum()).item()

    cases = []
    for cfg in CONFIGS:
        losses = per_pair_loss(cfg, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                               chosen_cmask.sum(dim=1).float(), rejected_cmask.sum(dim=1).float())
        loss = losses.mean()
        m = {}
        if cfg["rpo_alpha"] is not None:
            loss = loss + cfg["rpo_alpha"] * nll  # RPO: losses + rpo_alpha * nll_loss (batch token-mean NLL of chosen)
            m["nll_loss"] = nll
        m["loss"] = loss.item()
        m.update(metrics(cfg, chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps))
        m["logits/chosen"] = logits_chosen
        m["logits/rejected"] = logits_rejected
        m["entropy"] = entropy
        m["mean_token_accuracy"] = accuracy
        cases.append({"config": cfg, "metrics": m})
    return {
        "policy": "llama", "reference": "llama-bias", "pairs": pairs,
        "policy_logps": logps.tolist(), "reference_logps": ref_logps.tolist(),
        "cases": cases,
    }


def main():
    out = {"fixed": fixed_part(), "model": model_part()}
    path = os.path.join(FIXTURES, "dpo", "golden.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
