"""Second, deliberately different implementation (numpy float64, explicit per-token/per-head loops, RoPE as complex
rotation of the pairs (i, i + d/2)) used to cross-check hf_reference.forward on every committed golden case.

    /usr/bin/python3 tests/reference/crosscheck_numpy.py

It reads the fixtures from disk and compares against the logits stored in golden.json (compare_mask positions).
"""

import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "PostTrain.Tests", "Fixtures", "models")


def rms(x, w, eps):
    return w * x / math.sqrt(float(np.mean(x * x)) + eps)


def inv_freqs(spec):
    rp, d = spec.rope, spec.head_dim
    out = []
    for i in range(d // 2):
        f = rp["rope_theta"] ** (-(2 * i) / d)
        if rp["rope_type"] == "llama3":
            old = rp["original_max_position_embeddings"]
            wl = 2 * math.pi / f
            if wl > old / rp["low_freq_factor"]:
                f = f / rp["factor"]
            elif wl >= old / rp["high_freq_factor"]:
                s = (old / wl - rp["low_freq_factor"]) / (rp["high_freq_factor"] - rp["low_freq_factor"])
                f = (1 - s) * f / rp["factor"] + s * f
        out.append(f)
    return out


def rotate(vec, pos, freqs):
    d = len(vec)
    z = (vec[: d // 2] + 1j * vec[d // 2:]) * np.exp(1j * pos * np.array(freqs))
    return np.concatenate([z.real, z.imag])


def run_row(spec, W, ids, keep, pos, freqs):
    """keep[q][k]: may query q attend key k. Returns logits [seq, vocab] (float64)."""
    g = lambda n: W[n]  # noqa: E731
    D, nq, nkv = spec.head_dim, spec.num_heads, spec.num_kv_heads
    rep = nq // nkv
    S = len(ids)
    h = [g("model.embed_tokens.weight")[t].copy() for t in ids]

    def lin(x, name, bias):
        y = g(name + ".weight") @ x
        return y + g(name + ".bias") if bias else y

    for L in range(spec.num_layers):
        p = f"model.layers.{L}."
        xs = [rms(x, g(p + "input_layernorm.weight"), spec.rms_norm_eps) for x in h]
        Q, K, Vv = [], [], []
        for t, x in enumerate(xs):
            q = lin(x, p + "self_attn.q_proj", spec.qkv_bias).reshape(nq, D)
            k = lin(x, p + "self_attn.k_proj", spec.qkv_bias).reshape(nkv, D)
            v = lin(x, p + "self_attn.v_proj", spec.qkv_bias).reshape(nkv, D)
            if spec.qk_norm:
                q = np.stack([rms(r, g(p + "self_attn.q_norm.weight"), spec.rms_norm_eps) for r in q])
                k = np.stack([rms(r, g(p + "self_attn.k_norm.weight"), spec.rms_norm_eps) for r in k])
            Q.append(np.stack([rotate(r, pos[t], freqs) for r in q]))
            K.append(np.stack([rotate(r, pos[t], freqs) for r in k]))
            Vv.append(v)
        new_h = []
        for t in range(S):
            heads = []
            for hd in range(nq):
                kvh = hd // rep
                allowed = [j for j in range(S) if keep[t][j]]
                if not allowed:  # fully masked row: HF eager ends up with a uniform softmax over all keys
                    allowed, sc = list(range(S)), np.zeros(S)
                else:
                    sc = np.array([Q[t][hd] @ K[j][kvh] / math.sqrt(D) for j in allowed])
                pr = np.exp(sc - sc.max())
                pr /= pr.sum()
                heads.append(sum(pr[i] * Vv[j][kvh] for i, j in enumerate(allowed)))
            a = lin(np.concatenate(heads), p + "self_attn.o_proj", spec.o_bias)
            x = h[t] + a
            y = rms(x, g(p + "post_attention_layernorm.weight"), spec.rms_norm_eps)
            gate = lin(y, p + "mlp.gate_proj", spec.mlp_bias)
            up = lin(y, p + "mlp.up_proj", spec.mlp_bias)
            m = lin(gate / (1 + np.exp(-gate)) * up, p + "mlp.down_proj", spec.mlp_bias)
            new_h.append(x + m)
        h = new_h
    head = g("model.embed_tokens.weight") if spec.tie_word_embeddings else g("lm_head.weight")
    return np.stack([head @ rms(x, g("model.norm.weight"), spec.rms_norm_eps) for x in h])


def check_classifier(model, spec, W, golden, freqs):
    """score.weight as the head of every position; pooled at the rightmost id != pad_token_id, found by a loop."""
    spec.tie_word_embeddings = False
    W = dict(W, **{"lm_head.weight": W["score.weight"]})
    worst = 0.0
    for b, ids in enumerate(golden["input_ids"]):
        S, mask, pad = len(ids), golden["attention_mask"][b], golden["pad_token_id"]
        keep = [[k <= q and mask[k] == 1 for k in range(S)] for q in range(S)]
        lg = run_row(spec, W, ids, keep, list(range(S)), freqs)
        last = 0
        for t in range(S):
            if ids[t] != pad:
                last = t
        assert last == golden["pooled_positions"][b], (model, b, last)
        diff = float(np.abs(lg[last] - np.array(golden["logits"][b])).max())
        worst = max(worst, diff)
        assert diff < 1e-4, (model, b, diff)
    return worst


def main():
    worst = 0.0
    for model in sorted(os.listdir(FIXTURES)):
        d = os.path.join(FIXTURES, model)
        config, weights, _ = ref.load_checkpoint(d)
        spec = ref.Spec(config)
        W = {k: v.double().numpy() for k, v in weights.items()}
        freqs = inv_freqs(spec)
        golden = json.load(open(os.path.join(d, "golden.json")))
        if "pooled_positions" in golden:  # a sequence-classification (reward model) fixture
            worst = max(worst, check_classifier(model, spec, W, golden, freqs))
            print(f"{model}: ok")
            continue
        for case in golden["cases"]:
            for b, ids in enumerate(case["input_ids"]):
                S = len(ids)
                mask = case["attention_mask"][b] if case["attention_mask"] else [1] * S
                pos = case["position_ids"][b] if case["position_ids"] else list(range(S))
                seg, s = [], 0
                for t in range(S):  # packed segments only without attention_mask
                    if t > 0 and case["attention_mask"] is None and pos[t] != pos[t - 1] + 1:
                        s += 1
                    seg.append(s)
                keep = [[k <= q and mask[k] == 1 and seg[k] == seg[q] for k in range(S)] for q in range(S)]
                lg = run_row(spec, W, ids, keep, pos, freqs)
                gl = np.array(case["logits"][b])
                cm = np.array(case["compare_mask"][b]) == 1
                diff = float(np.abs(lg[cm] - gl[cm]).max())
                worst = max(worst, diff)
                assert diff < 1e-4, (model, case["name"], b, diff)
        print(f"{model}: ok")
    print(f"max |numpy float64 - golden| over compared positions: {worst:.2e}")


if __name__ == "__main__":
    main()
