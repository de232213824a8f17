"""Loads a Hugging Face-layout Qwen2/Qwen3/Llama checkpoint directory with the reference implementation,
validates it against what transformers expects, and prints logits / logprobs / NLL for some token ids.

    /usr/bin/python3 tests/reference/check_checkpoint.py DIR [--ids 1,2,3] [--no-logits]

Output (stdout, JSON):
  {"dir", "model_type", "dtypes": {stored dtype: tensor count}, "validation": {"config_missing": [...],
   "config_warnings": [...], "missing": [...], "unexpected": [...], "shape_mismatch": [...]}, "ok": bool,
   "input_ids": [[...]], "logits": [[[...]]] (float32, [1, seq, vocab]), "logprobs": [[null, ...]], "nll": [x]}
Exit status 0 when ok (no missing config keys, no missing/unexpected tensor names, no shape mismatch), else 1.
"""

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--ids", default=None, help="comma-separated token ids (default: 1,5,9,13,17,21)")
    ap.add_argument("--no-logits", action="store_true", help="omit the full logits from the output")
    args = ap.parse_args()

    config, weights, dtypes = ref.load_checkpoint(args.dir)
    problems, spec = ref.validate(config, weights)
    ok = not any(problems[k] for k in ("config_missing", "missing", "unexpected", "shape_mismatch"))
    out = {"dir": os.path.abspath(args.dir), "model_type": config.get("model_type"),
           "dtypes": dict(collections.Counter(dtypes.values())), "validation": problems, "ok": ok}
    if spec is not None and not problems["missing"] and not problems["shape_mismatch"]:
        ids = [int(x) for x in args.ids.split(",")] if args.ids else [1, 5, 9, 13, 17, 21]
        bad = [i for i in ids if not 0 <= i < spec.vocab_size]
        if bad:
            raise SystemExit(f"token ids out of range [0, {spec.vocab_size}): {bad}")
        logits = ref.forward(spec, weights, [ids])
        lps, nll = ref.score_rows(logits, [ids], [[1] * len(ids)])
        out["input_ids"] = [ids]
        if not args.no_logits:
            out["logits"] = logits.tolist()
        out["logprobs"] = lps
        out["nll"] = nll
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
