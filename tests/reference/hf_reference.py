"""Independent reference implementation of the Hugging Face transformers forward pass
for Qwen2 / Qwen3 / Llama causal LMs, plus a plain-Python safetensors reader/writer.

Dev-time only (used to produce the golden fixtures the C# tests compare against).
Runs on torch 1.13 CPU + numpy; transformers is NOT required.

The math follows (re-implemented, not copied):
  - transformers/models/{qwen2,qwen3,llama}/modeling_*.py  (RMSNorm, rotary, attention, MLP, decoder layer)
  - transformers/modeling_rope_utils.py                     (default RoPE, llama3 RoPE, rope_parameters)
  - transformers/masking_utils.py                           (causal + padding mask, packed-sequence detection,
                                                              eager additive mask with finfo.min)
Everything is computed in float32 ("eager" attention, softmax in float32).
"""

import json
import math
import os
import struct

import numpy as np
import torch

# ----------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------

_ST_DTYPES = {
    # name: (bytes per element, numpy dtype used to read the raw bytes)
    "F32": (4, np.float32),
    "F16": (2, np.float16),
    "BF16": (2, np.int16),  # raw bits; reinterpreted as torch.bfloat16
    "F64": (8, np.float64),
    "I64": (8, np.int64),
    "I32": (4, np.int32),
    "I16": (2, np.int16),
    "I8": (1, np.int8),
    "U8": (1, np.uint8),
    "BOOL": (1, np.bool_),
}


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def read_safetensors(path):
    """Returns (dict name -> torch tensor in its stored dtype, metadata dict or None, dtypes dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n :]
    meta = header.pop("__metadata__", None)
    tensors, dtypes = {}, {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        size, npdt = _ST_DTYPES[dt]
        b, e = info["data_offsets"]
        shape = list(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if e - b != count * size:
            raise ValueError(f"{path}: tensor {name}: data_offsets span {e - b} bytes, expected {count * size}")
        arr = np.frombuffer(data[b:e], dtype=npdt).copy().reshape(shape)
        t = torch.from_numpy(arr)
        if dt == "BF16":
            t = t.view(torch.bfloat16)
        tensors[name] = t
        dtypes[name] = dt
    return tensors, meta, dtypes


def _tensor_bytes(t, dtype):
    t = t.detach().contiguous().cpu()
    if dtype == "F32":
        return t.to(torch.float32).numpy().astype("<f4").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    """Writes tensors (dict name -> tensor) with every tensor stored as `dtype`.
    Layout: u64 LE header length, JSON header (space-padded to a multiple of 8), raw data in sorted-name order."""
    if metadata is None:
        metadata = {"format": "pt"}
    header = {"__metadata__": metadata}
    chunks, offset = [], 0
    for name in sorted(tensors):
        raw = _tensor_bytes(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for c in chunks:
            f.write(c)
    return offset


def write_sharded_safetensors(model_dir, tensors, ordered_names, n_shards, dtype="F32"):
    """Splits `ordered_names` (module order, as HF's state_dict) into n_shards contiguous groups of about
    equal byte size, writes model-0000i-of-0000n.safetensors and model.safetensors.index.json."""
    sizes = [len(_tensor_bytes(tensors[n], dtype)) for n in ordered_names]
    total = sum(sizes)
    groups, cur, acc = [], [], 0
    for name, sz in zip(ordered_names, sizes):
        cur.append(name)
        acc += sz
        if len(groups) < n_shards - 1 and acc >= total * (len(groups) + 1) / n_shards:
            groups.append(cur)
            cur = []
    groups.append(cur)
    assert len(groups) == n_shards and all(groups), [len(g) for g in groups]
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        write_safetensors(os.path.join(model_dir, fname), {n: tensors[n] for n in g}, dtype)
        for n in g:
            weight_map[n] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(model_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def load_checkpoint(model_dir):
    """Loads config.json and all weights of an HF model directory (single file or sharded index).
    Returns (config dict, dict name -> float32 tensor, dict name -> stored dtype string)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    single_path = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        files = sorted(set(index["weight_map"].values()))
    elif os.path.exists(single_path):
        index, files = None, ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
    weights, dtypes = {}, {}
    for fn in files:
        t, _, d = read_safetensors(os.path.join(model_dir, fn))
        for name in t:
            if name in weights:
                raise ValueError(f"tensor {name} present in more than one shard")
            if index is not None and index["weight_map"].get(name) != fn:
                raise ValueError(f"tensor {name} found in {fn} but the index maps it to {index['weight_map'].get(name)}")
        weights.update({k: v.to(torch.float32) for k, v in t.items()})
        dtypes.update(d)
    if index is not None:
        missing = set(index["weight_map"]) - set(weights)
        if missing:
            raise ValueError(f"index lists tensors absent from the shards: {sorted(missing)}")
    return config, weights, dtypes


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------

ARCH_FOR_MODEL_TYPE = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}

# Keys without which transformers cannot build the module tree with the intended sizes (the config classes
# have defaults for them, but those defaults are the 7B/8B sizes, so a missing key is an error for us).
REQUIRED_CONFIG_KEYS = ["model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "rms_norm_eps"]
RECOMMENDED_CONFIG_KEYS = ["architectures", "num_key_value_heads", "max_position_embeddings", "tie_word_embeddings",
                           "hidden_act", "bos_token_id", "eos_token_id"]


class Spec:
    """Normalized view of a config.json, with the defaults of the transformers config classes."""

    def __init__(self, cfg):
        mt = cfg.get("model_type")
        if mt not in ARCH_FOR_MODEL_TYPE:
            raise ValueError(f"unsupported model_type {mt!r}")
        self.model_type = mt
        self.vocab_size = cfg["vocab_size"]
        self.hidden_size = cfg["hidden_size"]
        self.intermediate_size = cfg["intermediate_size"]
        self.num_layers = cfg["num_hidden_layers"]
        self.num_heads = cfg["num_attention_heads"]
        kv = cfg.get("num_key_value_heads")
        self.num_kv_heads = self.num_heads if kv is None else kv
        # Qwen3 attention: getattr(config, "head_dim", hidden // heads) where head_dim defaults to 128 in the class;
        # Qwen2/Llama: head_dim (if present and not None) else hidden // heads.
        hd = cfg.get("head_dim")
        if hd is None and mt == "qwen3":
            hd = 128
        self.head_dim = hd if hd else self.hidden_size // self.num_heads
        self.rms_norm_eps = cfg.get("rms_norm_eps", 1e-5 if mt == "llama" else 1e-6)
        self.tie_word_embeddings = bool(cfg.get("tie_word_embeddings", False))
        act = cfg.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"hidden_act {act!r} not supported (only silu)")
        if mt == "qwen2":
            self.qkv_bias, self.o_bias, self.mlp_bias, self.qk_norm = True, False, False, False
        elif mt == "qwen3":
            ab = bool(cfg.get("attention_bias", False))
            self.qkv_bias, self.o_bias, self.mlp_bias, self.qk_norm = ab, ab, False, True
        else:
            ab = bool(cfg.get("attention_bias", False))
            self.qkv_bias, self.o_bias, self.mlp_bias, self.qk_norm = ab, ab, bool(cfg.get("mlp_bias", False)), False
        self.max_position_embeddings = cfg.get("max_position_embeddings", 2048)
        self.rope = normalize_rope(cfg)
        if cfg.get("use_sliding_window"):
            raise ValueError("use_sliding_window=true is not supported by this reference")


def normalize_rope(cfg):
    """Mirrors RotaryEmbeddingConfigMixin.convert_rope_params_to_dict + standardize_rope_params:
    rope_scaling (v4 name) wins over rope_parameters (v5 name) if both present; rope_theta is taken from the
    dict if there, else from the flat key, else 10000.0; rope_type defaults to the legacy "type" key, then
    "default"; llama3/yarn/longrope get original_max_position_embeddings = max_position_embeddings if absent."""
    rp = dict(cfg.get("rope_scaling") or cfg.get("rope_parameters") or {})
    rp.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    rp.setdefault("rope_type", rp.get("type", "default"))
    if rp["rope_type"] in ("llama3", "yarn", "longrope"):
        rp.setdefault("original_max_position_embeddings", cfg.get("max_position_embeddings", 2048))
    if rp["rope_type"] not in ("default", "llama3"):
        raise ValueError(f"rope_type {rp['rope_type']!r} not supported by this reference")
    return rp


def expected_tensor_shapes(spec):
    """Exact tensor names/shapes of HF's {Qwen2,Qwen3,Llama}ForCausalLM state dict, in module order."""
    H, I, V, D = spec.hidden_size, spec.intermediate_size, spec.vocab_size, spec.head_dim
    nq, nkv = spec.num_heads, spec.num_kv_heads
    out = [("model.embed_tokens.weight", [V, H])]
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        out.append((p + "self_attn.q_proj.weight", [nq * D, H]))
        if spec.qkv_bias:
            out.append((p + "self_attn.q_proj.bias", [nq * D]))
        out.append((p + "self_attn.k_proj.weight", [nkv * D, H]))
        if spec.qkv_bias:
            out.append((p + "self_attn.k_proj.bias", [nkv * D]))
        out.append((p + "self_attn.v_proj.weight", [nkv * D, H]))
        if spec.qkv_bias:
            out.append((p + "self_attn.v_proj.bias", [nkv * D]))
        out.append((p + "self_attn.o_proj.weight", [H, nq * D]))
        if spec.o_bias:
            out.append((p + "self_attn.o_proj.bias", [H]))
        if spec.qk_norm:
            out.append((p + "self_attn.q_norm.weight", [D]))
            out.append((p + "self_attn.k_norm.weight", [D]))
        for proj, shape in (("gate_proj", [I, H]), ("up_proj", [I, H]), ("down_proj", [H, I])):
            out.append((p + f"mlp.{proj}.weight", shape))
            if spec.mlp_bias:
                out.append((p + f"mlp.{proj}.bias", [shape[0]]))
        out.append((p + "input_layernorm.weight", [H]))
        out.append((p + "post_attention_layernorm.weight", [H]))
    out.append(("model.norm.weight", [H]))
    if not spec.tie_word_embeddings:
        out.append(("lm_head.weight", [V, H]))
    return out


# ----------------------------------------------------------------------------------------------
# model math
# ----------------------------------------------------------------------------------------------


def rope_inv_freq(spec):
    """inverse frequencies (float32) exactly as modeling_rope_utils computes them (float32 tensor ops)."""
    rp, dim = spec.rope, spec.head_dim
    base = float(rp["rope_theta"])
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim))
    if rp["rope_type"] == "default":
        return inv
    # llama3 (Llama 3.1): keep high frequencies, divide low frequencies by `factor`, interpolate in between.
    factor = rp["factor"]
    lo, hi = rp["low_freq_factor"], rp["high_freq_factor"]
    old_len = rp["original_max_position_embeddings"]
    lo_wavelen, hi_wavelen = old_len / lo, old_len / hi
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > lo_wavelen, inv / factor, inv)
    smooth = (old_len / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < hi_wavelen) * ~(wavelen > lo_wavelen)
    return torch.where(medium, smoothed, scaled)


def rms_norm(x, w, eps):
    x32 = x.to(torch.float32)
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def linear(x, weights, name, has_bias):
    y = x @ weights[name + ".weight"].t()
    if has_bias:
        y = y + weights[name + ".bias"]
    return y


def packed_segments(position_ids):
    """masking_utils.find_packed_sequence_indices: a new segment starts wherever position_ids[t] - position_ids[t-1]
    != 1. Returns None when every row is a single segment."""
    first = position_ids[:, :1] - 1
    diff = torch.diff(position_ids, prepend=first, dim=-1)
    seg = (diff != 1).cumsum(-1)
    if bool((seg[:, -1] == 0).all()):
        return None
    return seg


def build_allowed(batch, seq, attention_mask, position_ids):
    """Boolean [B, 1, Q, K] mask = causal AND key-padding (if attention_mask given) AND same-segment (only when
    attention_mask is None, as in masking_utils._preprocess_mask_arguments)."""
    q = torch.arange(seq)[:, None]
    k = torch.arange(seq)[None, :]
    allowed = (k <= q)[None, None].expand(batch, 1, seq, seq).clone()
    if attention_mask is not None:
        allowed &= attention_mask.to(torch.bool)[:, None, None, :]
    else:
        seg = packed_segments(position_ids)
        if seg is not None:
            allowed &= (seg[:, :, None] == seg[:, None, :])[:, None]
    return allowed


def forward(spec, weights, input_ids, attention_mask=None, position_ids=None):
    """logits [B, S, V] float32 of {Qwen2,Qwen3,Llama}ForCausalLM in a plain forward (no cache)."""
    h = forward_hidden(spec, weights, input_ids, attention_mask, position_ids)
    head = weights["model.embed_tokens.weight"] if spec.tie_word_embeddings else weights["lm_head.weight"]
    return h @ head.t()


def forward_hidden(spec, weights, input_ids, attention_mask=None, position_ids=None):
    """The decoder's final hidden states [B, S, H] (after the final norm), float32, in a plain forward."""
    input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    B, S = input_ids.shape
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
    if position_ids is None:
        # HF: cache_position = arange(past, past + S); position_ids = cache_position.unsqueeze(0). NOT mask-derived.
        position_ids = torch.arange(S)[None].expand(B, S)
    else:
        position_ids = torch.as_tensor(position_ids, dtype=torch.long).expand(B, S)

    allowed = build_allowed(B, S, attention_mask, position_ids)
    additive = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)

    inv = rope_inv_freq(spec)
    freqs = position_ids.to(torch.float32)[:, :, None] * inv[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, S, D]

    D, nq, nkv, eps = spec.head_dim, spec.num_heads, spec.num_kv_heads, spec.rms_norm_eps
    rep = nq // nkv
    h = weights["model.embed_tokens.weight"][input_ids]
    for i in range(spec.num_layers):
        p = f"model.layers.{i}."
        x = rms_norm(h, weights[p + "input_layernorm.weight"], eps)
        q = linear(x, weights, p + "self_attn.q_proj", spec.qkv_bias).view(B, S, nq, D)
        k = linear(x, weights, p + "self_attn.k_proj", spec.qkv_bias).view(B, S, nkv, D)
        v = linear(x, weights, p + "self_attn.v_proj", spec.qkv_bias).view(B, S, nkv, D)
        if spec.qk_norm:  # Qwen3: per-head RMSNorm over head_dim, before RoPE
            q = rms_norm(q, weights[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, weights[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, S, D]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # repeat_kv: kv head j serves query heads j*rep .. j*rep+rep-1
        k = k[:, :, None].expand(B, nkv, rep, S, D).reshape(B, nq, S, D)
        v = v[:, :, None].expand(B, nkv, rep, S, D).reshape(B, nq, S, D)
        scores = (q @ k.transpose(2, 3)) * (D ** -0.5) + additive
        probs = torch.softmax(scores.to(torch.float32), dim=-1)
        attn = (probs @ v).transpose(1, 2).reshape(B, S, nq * D)
        h = h + linear(attn, weights, p + "self_attn.o_proj", spec.o_bias)
        x = rms_norm(h, weights[p + "post_attention_layernorm.weight"], eps)
        gate = linear(x, weights, p + "mlp.gate_proj", spec.mlp_bias)
        up = linear(x, weights, p + "mlp.up_proj", spec.mlp_bias)
        h = h + linear(torch.nn.functional.silu(gate) * up, weights, p + "mlp.down_proj", spec.mlp_bias)
    return rms_norm(h, weights["model.norm.weight"], eps)


def sequence_classification(spec, weights, input_ids, attention_mask, pad_token_id):
    """Pooled logits [B, num_labels] of {Qwen2,Llama}ForSequenceClassification (GenericForSequenceClassification):
    score = Linear(hidden, num_labels, bias=False) over every position, then the logits at the rightmost token
    that is not pad_token_id in each row (argmax of arange(S) * (ids != pad); row of only pads -> position 0).
    Returns (pooled logits, pooled positions)."""
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    h = forward_hidden(spec, weights, ids, attention_mask)
    logits = h @ weights["score.weight"].t()
    non_pad = (ids != pad_token_id).to(torch.int32)
    last = (torch.arange(ids.shape[-1], dtype=torch.int32) * non_pad).argmax(-1)
    return logits[torch.arange(ids.shape[0]), last], last


def score_rows(logits, input_ids, compare_mask, position_ids=None, packed=False):
    """Per row: logprob of token t given tokens before it (None where not scored) and the mean NLL.
    Token t is scored iff compare_mask[t] and compare_mask[t-1] are 1 and (for packed rows) t does not start a
    new document (position_ids[t] != position_ids[t-1] + 1)."""
    logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
    all_lp, all_nll = [], []
    for b in range(len(input_ids)):
        row, lps = input_ids[b], [None]
        for t in range(1, len(row)):
            ok = compare_mask[b][t] == 1 and compare_mask[b][t - 1] == 1
            if ok and packed and position_ids is not None:
                ok = position_ids[b][t] == position_ids[b][t - 1] + 1
            lps.append(float(logp[b, t - 1, row[t]]) if ok else None)
        scored = [x for x in lps if x is not None]
        all_lp.append(lps)
        all_nll.append(-sum(scored) / len(scored) if scored else None)
    return all_lp, all_nll


def validate(config, weights):
    """Returns a dict of problems: config keys missing, tensor names missing/unexpected, shape mismatches."""
    problems = {"config_missing": [], "config_warnings": [], "missing": [], "unexpected": [], "shape_mismatch": []}
    for k in REQUIRED_CONFIG_KEYS:
        if k not in config:
            problems["config_missing"].append(k)
    if problems["config_missing"]:
        return problems, None
    for k in RECOMMENDED_CONFIG_KEYS:
        if k not in config:
            problems["config_warnings"].append(f"missing {k} (transformers falls back to the class default)")
    arch = config.get("architectures")
    if arch is not None and arch != [ARCH_FOR_MODEL_TYPE.get(config["model_type"])]:
        problems["config_warnings"].append(f"architectures {arch} != [{ARCH_FOR_MODEL_TYPE.get(config['model_type'])}]")
    if "rope_theta" not in config and "rope_theta" not in (config.get("rope_parameters") or {}) \
            and "rope_theta" not in (config.get("rope_scaling") or {}):
        problems["config_warnings"].append("no rope_theta (flat or in rope_parameters): transformers uses 10000.0")
    if config["model_type"] == "qwen3" and "head_dim" not in config:
        problems["config_warnings"].append("qwen3 without head_dim: transformers uses the class default 128")
    try:
        spec = Spec(config)
    except (ValueError, KeyError) as e:
        problems["config_missing"].append(str(e))
        return problems, None
    expected = dict(expected_tensor_shapes(spec))
    for name, shape in expected.items():
        if name not in weights:
            problems["missing"].append(name)
        elif list(weights[name].shape) != shape:
            problems["shape_mismatch"].append(f"{name}: {list(weights[name].shape)} != expected {shape}")
    for name in weights:
        if name not in expected:
            problems["unexpected"].append(name)
    return problems, spec
