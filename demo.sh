#!/usr/bin/env bash
# PostTrain's main job, end to end on this machine: create a small model in Hugging Face
# layout, then score token sequences with it (per-token log-probabilities and mean NLL).
# Later stages (SFT, DPO, GRPO) join this script as they land.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs=runs/demo
mkdir -p "$runs"

echo "== 1. Create a tiny Qwen2-architecture model (random weights, Hugging Face layout)"
./posttrain init --arch qwen2 --preset tiny --seed 0 --output "$runs/model" --overwrite
ls -l "$runs/model"

echo
echo "== 2. Score token sequences: log p(token | tokens before it), and the mean NLL"
cat > "$runs/sequences.jsonl" <<'JSONL'
{"input_ids": [1, 15, 27, 3, 99, 100, 4]}
{"input_ids": [7, 7, 7, 7]}
{"input_ids": [42, 17]}
JSONL
./posttrain logprobs --model "$runs/model" --input "$runs/sequences.jsonl" --output "$runs/logprobs.jsonl"
cat "$runs/logprobs.jsonl"
echo
echo "A random model spreads probability evenly: its NLL is near ln(vocab) = ln(512) = 6.24."
