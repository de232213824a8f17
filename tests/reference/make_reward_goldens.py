"""Creates tiny random sequence-classification (reward model) checkpoints in Hugging Face layout and golden
pooled logits for a right-padded batch.

    /usr/bin/python3 tests/reference/make_reward_goldens.py

Output: tests/PostTrain.Tests/Fixtures/models/<case>/{config.json, model.safetensors, golden.json}.
The layout is transformers' Qwen2ForSequenceClassification / LlamaForSequenceClassification: the decoder's
model.* tensors, score.weight [num_labels, hidden] (no bias), no lm_head. Fully deterministic.
"""

import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402
import make_model_goldens as mg  # noqa: E402

TOL = 1e-5


def classifier_config(cfg, arch, num_labels, pad_token_id):
    cfg = dict(cfg)
    cfg["architectures"] = [arch]
    # PretrainedConfig writes id2label/label2id (num_labels itself is not serialized: it is len(id2label)).
    cfg["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
    cfg["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    cfg["pad_token_id"] = pad_token_id
    return cfg


# name, seed, config, num_labels
CASES = [
    ("qwen2-reward", 2001,
     classifier_config(mg.qwen2_config(272, 32, 48, 2, 4, 2, 1000000.0, False, "float32"),
                       "Qwen2ForSequenceClassification", 1, 266), 1),
    ("llama-reward", 2002,
     classifier_config(mg.llama_config(108, 32, 48, 2, 4, 2, 500000.0, None, 2048, False, False, "float32"),
                       "LlamaForSequenceClassification", 2, 0), 2),
]


def classifier_shapes(spec, num_labels):
    shapes = [(n, s) for n, s in ref.expected_tensor_shapes(spec) if n != "lm_head.weight"]
    return shapes + [("score.weight", [num_labels, spec.hidden_size])]


def main():
    for case, seed, cfg, num_labels in CASES:
        spec = ref.Spec(cfg)
        spec.tie_word_embeddings = True  # no lm_head in expected_tensor_shapes: the classifier has none
        gen = torch.Generator().manual_seed(seed)
        weights = {}
        for name, shape in classifier_shapes(spec, num_labels):
            if name.endswith("norm.weight"):
                weights[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
            elif name.endswith(".bias"):
                weights[name] = 0.1 * torch.randn(shape, generator=gen)
            else:
                weights[name] = (0.2 if name == "model.embed_tokens.weight" else 0.15) * torch.randn(shape, generator=gen)
        case_dir = os.path.join(mg.OUT, case)
        if os.path.isdir(case_dir):
            shutil.rmtree(case_dir)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        ref.write_safetensors(os.path.join(case_dir, "model.safetensors"), weights, "F32")

        config, stored, _ = ref.load_checkpoint(case_dir)
        pad = config["pad_token_id"]
        vocab = config["vocab_size"]
        g = torch.Generator().manual_seed(11)

        def rand_ids(n):
            ids = torch.randint(3, vocab, (n,), generator=g).tolist()
            return [x if x != pad else 3 for x in ids]

        # The last row ends with two real tokens equal to pad_token_id (as when pad == eos): transformers pools
        # at the rightmost token that is not the pad id, whatever the attention mask says.
        rows = [rand_ids(7), rand_ids(4), rand_ids(2), rand_ids(3) + [pad, pad]]
        S = max(len(r) for r in rows)
        ids = [r + [pad] * (S - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (S - len(r)) for r in rows]
        pooled, last = ref.sequence_classification(spec, stored, ids, mask, pad)
        assert last.tolist() == [6, 3, 1, 2], last.tolist()
        for b, r in enumerate(rows):
            alone, _ = ref.sequence_classification(spec, stored, [r], None, pad)
            d = float((alone[0] - pooled[b]).abs().max())
            assert d <= TOL, (case, "row alone != row in the right-padded batch", b, d)
        golden = {
            "model": case, "num_labels": num_labels, "pad_token_id": pad,
            "input_ids": ids, "attention_mask": mask,
            "pooled_positions": last.tolist(),
            "logits": mg.nested_round(pooled),
        }
        with open(os.path.join(case_dir, "golden.json"), "w") as f:
            json.dump(golden, f, separators=(",", ":"))
            f.write("\n")
        print(f"{case}: pooled logits {golden['logits']}")


if __name__ == "__main__":
    main()
