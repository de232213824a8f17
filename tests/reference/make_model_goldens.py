"""Creates tiny random Qwen2 / Qwen3 / Llama checkpoints in Hugging Face layout and golden logits for them.

    /usr/bin/python3 tests/reference/make_model_goldens.py

Output: tests/PostTrain.Tests/Fixtures/models/<case>/{config.json, generation_config.json,
model.safetensors | model-0000i-of-00003.safetensors + model.safetensors.index.json, golden.json}.
Fully deterministic: rerunning rewrites identical files.
"""

import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "tests", "PostTrain.Tests", "Fixtures", "models")
TOL = 1e-5
PAD_ID = 0
V4 = "4.51.3"
V5 = "5.0.0"


def round7(x):
    return float(f"{x:.7g}")


def nested_round(t):
    if isinstance(t, torch.Tensor):
        t = t.tolist()
    if isinstance(t, list):
        return [nested_round(x) for x in t]
    return None if t is None else round7(t)


# ----------------------------------------------------------------------------------------------
# config.json as transformers writes it (to_json_string: sorted keys, indent 2)
# ----------------------------------------------------------------------------------------------


def qwen2_config(vocab, hidden, inter, layers, heads, kv, theta, tie, dtype):
    # Qwen2Config (v4.5x): no head_dim key (derived as hidden_size // num_attention_heads).
    return {
        "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
        "hidden_act": "silu", "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter,
        "max_position_embeddings": 32768, "max_window_layers": layers, "model_type": "qwen2",
        "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": theta, "sliding_window": None,
        "tie_word_embeddings": tie, "torch_dtype": dtype, "transformers_version": V4, "use_cache": True,
        "use_sliding_window": False, "vocab_size": vocab,
    }


def qwen3_config(vocab, hidden, inter, layers, heads, kv, head_dim, theta, tie, bias, dtype, v5_rope=False):
    cfg = {
        "architectures": ["Qwen3ForCausalLM"], "attention_bias": bias, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "head_dim": head_dim, "hidden_act": "silu", "hidden_size": hidden,
        "initializer_range": 0.02, "intermediate_size": inter, "max_position_embeddings": 40960,
        "max_window_layers": layers, "model_type": "qwen3", "num_attention_heads": heads,
        "num_hidden_layers": layers, "num_key_value_heads": kv, "rms_norm_eps": 1e-06,
        "sliding_window": None, "tie_word_embeddings": tie, "use_cache": True, "use_sliding_window": False,
        "vocab_size": vocab,
    }
    if v5_rope:
        # transformers v5: rope_theta / rope_scaling are folded into `rope_parameters`, the dtype key is "dtype",
        # and layer_types + pad_token_id are serialized.
        cfg.update({"rope_parameters": {"rope_theta": theta, "rope_type": "default"}, "dtype": dtype,
                    "layer_types": ["full_attention"] * layers, "pad_token_id": None, "transformers_version": V5})
    else:
        cfg.update({"rope_scaling": None, "rope_theta": theta, "torch_dtype": dtype, "transformers_version": V4})
    return cfg


def llama_config(vocab, hidden, inter, layers, heads, kv, theta, rope_scaling, max_pos, attn_bias, mlp_bias, dtype):
    return {
        "architectures": ["LlamaForCausalLM"], "attention_bias": attn_bias, "attention_dropout": 0.0,
        "bos_token_id": 1, "eos_token_id": 2, "head_dim": hidden // heads, "hidden_act": "silu",
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter,
        "max_position_embeddings": max_pos, "mlp_bias": mlp_bias, "model_type": "llama",
        "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": rope_scaling, "rope_theta": theta,
        "tie_word_embeddings": False, "torch_dtype": dtype, "transformers_version": V4, "use_cache": True,
        "vocab_size": vocab,
    }


LLAMA3_SCALING = {
    # original_max_position_embeddings=256 with head_dim 8 and theta 5e5 puts one frequency in each llama3 regime:
    # wavelengths 6.3 (< 256/4: kept), 167 (between 64 and 256: smoothed), 4440 and 1.2e5 (> 256: divided by 8).
    "factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 256,
    "rope_type": "llama3",
}

CASES = [
    # name, seed, config, dtype on disk, shards
    ("qwen2", 1001, qwen2_config(100, 32, 48, 2, 4, 2, 1000000.0, True, "float32"), "F32", 1),
    ("qwen3", 1002, qwen3_config(104, 32, 48, 2, 4, 2, 16, 1000000.0, False, False, "float32"), "F32", 1),
    ("qwen3-rope-parameters", 1003,
     qwen3_config(104, 32, 48, 2, 4, 2, 16, 1000000.0, True, True, "float32", v5_rope=True), "F32", 1),
    ("llama", 1004, llama_config(108, 32, 48, 2, 4, 1, 500000.0, LLAMA3_SCALING, 2048, False, False, "float32"),
     "F32", 1),
    ("llama-bias", 1005, llama_config(108, 32, 48, 2, 4, 2, 10000.0, None, 2048, True, True, "float32"), "F32", 1),
    ("qwen2-bf16", 1006, qwen2_config(100, 32, 48, 2, 4, 2, 1000000.0, True, "bfloat16"), "BF16", 1),
    ("llama-sharded", 1007,
     llama_config(108, 32, 48, 3, 4, 1, 500000.0, LLAMA3_SCALING, 2048, False, False, "float32"), "F32", 3),
    ("qwen3-f16", 1008, qwen3_config(104, 32, 48, 2, 4, 2, 16, 1000000.0, False, False, "float16"), "F16", 1),
]


def random_weights(spec, gen):
    w = {}
    for name, shape in ref.expected_tensor_shapes(spec):
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif name == "model.embed_tokens.weight":
            t = 0.2 * torch.randn(shape, generator=gen)
        elif name == "lm_head.weight":
            t = 0.15 * torch.randn(shape, generator=gen)
        else:
            t = 0.15 * torch.randn(shape, generator=gen)
        w[name] = t
    return w


def write_model(case_dir, cfg, weights, names_in_order, st_dtype, shards):
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    gen_cfg = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
               "transformers_version": cfg["transformers_version"]}
    with open(os.path.join(case_dir, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    if shards == 1:
        ref.write_safetensors(os.path.join(case_dir, "model.safetensors"), weights, st_dtype)
    else:
        ref.write_sharded_safetensors(case_dir, weights, names_in_order, shards, st_dtype)


def left_pad(rows):
    S = max(len(r) for r in rows)
    ids = [[PAD_ID] * (S - len(r)) + r for r in rows]
    mask = [[0] * (S - len(r)) + [1] * len(r) for r in rows]
    return ids, mask


def right_pad(rows):
    S = max(len(r) for r in rows)
    ids = [r + [PAD_ID] * (S - len(r)) for r in rows]
    mask = [[1] * len(r) + [0] * (S - len(r)) for r in rows]
    return ids, mask


def maxdiff(a, b):
    return float((a - b).abs().max())


def make_case(name, spec, weights, ids, mask, pos, packed=False):
    logits = ref.forward(spec, weights, ids, mask, pos)
    compare = mask if mask is not None else [[1] * len(r) for r in ids]
    lps, nll = ref.score_rows(logits, ids, compare, pos, packed=packed)
    return logits, {
        "name": name, "input_ids": ids, "attention_mask": mask, "position_ids": pos,
        "logits": nested_round(logits), "compare_mask": compare,
        "logprobs": nested_round(lps), "nll": nested_round(nll),
    }


def goldens_for(case, model_dir, vocab):
    config, weights, _ = ref.load_checkpoint(model_dir)  # the weights AS STORED (after bf16/f16 rounding)
    problems, spec = ref.validate(config, weights)
    assert not any(problems[k] for k in ("config_missing", "missing", "unexpected", "shape_mismatch")), problems
    gen = torch.Generator().manual_seed(7)

    def rand_ids(n):
        return torch.randint(3, vocab, (n,), generator=gen).tolist()

    single = rand_ids(8)
    rows = [rand_ids(8), rand_ids(5), rand_ids(3)]
    docs = [rand_ids(4), rand_ids(3), rand_ids(2)]
    alone = [ref.forward(spec, weights, [r]) [0] for r in rows]
    cases, shift_err = [], []

    _, c = make_case("single", spec, weights, [single], None, None)
    cases.append(c)

    ids, mask = left_pad(rows)
    S = len(ids[0])
    lg, c = make_case("left_padded_default_positions", spec, weights, ids, mask, None)
    cases.append(c)
    for b, r in enumerate(rows):
        d = maxdiff(lg[b, S - len(r):], alone[b])
        # HF arange positions shift a left-padded row by its pad count. RoPE scores depend only on position
        # differences and pad keys are masked, so this equals the row alone up to float rounding (not exactly).
        assert d <= 1e-4, (case, "left pad default positions far from alone", b, d)
        shift_err.append(d)

    pos = [[max(0, x) for x in (torch.tensor(m).cumsum(0) - 1).tolist()] for m in mask]
    lg, c = make_case("left_padded_position_ids", spec, weights, ids, mask, pos)
    cases.append(c)
    for b, r in enumerate(rows):
        d = maxdiff(lg[b, S - len(r):], alone[b])
        assert d <= TOL, (case, "left pad + position_ids != alone", b, d)

    ids, mask = right_pad(rows)
    lg, c = make_case("right_padded", spec, weights, ids, mask, None)
    cases.append(c)
    for b, r in enumerate(rows):
        d = maxdiff(lg[b, :len(r)], alone[b])
        assert d <= TOL, (case, "right pad != alone", b, d)

    packed_ids = [sum(docs, [])]
    packed_pos = [sum([list(range(len(d))) for d in docs], [])]
    lg, c = make_case("packed", spec, weights, packed_ids, None, packed_pos, packed=True)
    cases.append(c)
    start = 0
    for d in docs:
        a = ref.forward(spec, weights, [d])[0]
        diff = maxdiff(lg[0, start:start + len(d)], a)
        assert diff <= TOL, (case, "packed document != alone", diff)
        start += len(d)
    # the same packed row WITHOUT block-diagonal masking would differ (sanity: the mask matters)
    plain = ref.forward(spec, weights, packed_ids, [[1] * len(packed_ids[0])], packed_pos)
    assert maxdiff(plain[0, len(docs[0]):], lg[0, len(docs[0]):]) > 1e-4

    if spec.rope["rope_type"] == "llama3":  # sanity: llama3 scaling changes the logits at these short lengths
        saved = spec.rope
        spec.rope = {"rope_type": "default", "rope_theta": saved["rope_theta"]}
        other = ref.forward(spec, weights, [single])
        spec.rope = saved
        assert maxdiff(other, ref.forward(spec, weights, [single])) > 1e-4

    print(f"  {case}: left-pad default-position rows vs alone: max diff {max(shift_err):.2e}")
    return {"model": case, "dtype_on_disk": None, "cases": cases}


def main():
    os.makedirs(OUT, exist_ok=True)
    for case, seed, cfg, st_dtype, shards in CASES:
        spec = ref.Spec(cfg)
        gen = torch.Generator().manual_seed(seed)
        weights = random_weights(spec, gen)
        names = [n for n, _ in ref.expected_tensor_shapes(spec)]
        case_dir = os.path.join(OUT, case)
        write_model(case_dir, cfg, weights, names, st_dtype, shards)
        golden = goldens_for(case, case_dir, cfg["vocab_size"])
        golden["dtype_on_disk"] = st_dtype
        with open(os.path.join(case_dir, "golden.json"), "w") as f:
            json.dump(golden, f, separators=(",", ":"))
            f.write("\n")
        lg = torch.tensor(golden["cases"][0]["logits"])
        print(f"{case}: logits std {lg.std():.3f} max {lg.abs().max():.3f}; nll {golden['cases'][0]['nll']}")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total fixture size {total} bytes")


if __name__ == "__main__":
    main()
