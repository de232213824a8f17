#!/usr/bin/env bash
# PostTrain's main job, end to end on this machine (a minute or two on 2 cores):
#   1. create a small Qwen3-architecture model with the real Qwen3 tokenizer and chat template;
#   2. make up a few hundred chat conversations (arithmetic and capitals);
#   3. score held-out conversations with it (per-token log-probabilities, mean NLL);
#   4. supervised fine-tuning on the conversations (loss on assistant turns only);
#   5. score the held-out conversations again with the fine-tuned model;
#   6. generate answers to held-out questions with the KV-cache engine (greedy).
# LoRA, DPO and GRPO/RLOO run on the same model directories: see README.md for their commands.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
runs=runs/demo
rm -rf "$runs"
mkdir -p "$runs/tokenizer"

echo "== 1. A small Qwen3 model (random weights) with the Qwen3 tokenizer and chat template"
fixture=tests/PostTrain.Tests/Fixtures/tokenizers/qwen3
gunzip -c "$fixture/tokenizer.json.gz" > "$runs/tokenizer/tokenizer.json"
cp "$fixture/tokenizer_config.json" "$runs/tokenizer/"
./posttrain init --arch qwen3 --preset tiny --hidden-size 64 --heads 4 --kv-heads 2 --head-dim 16 \
    --intermediate-size 128 --layers 2 --tokenizer "$runs/tokenizer" --seed 0 --output "$runs/base"

echo
echo "== 2. Made-up conversations: $runs/train.jsonl and held-out $runs/eval.jsonl"
chat() { printf '{"messages": [{"role": "user", "content": "%s"}, {"role": "assistant", "content": "%s"}]}\n' "$1" "$2"; }
words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty)
{
  for a in $(seq 1 15); do for b in $(seq 1 15); do
    [ $(((a * 7 + b) % 10)) -eq 0 ] && continue           # held out for evaluation
    chat "What is $a plus $b?" "$a plus $b is $((a + b))."
  done; done
  for pair in France:Paris Italy:Rome Spain:Madrid Japan:Tokyo Peru:Lima Kenya:Nairobi Egypt:Cairo Chile:Santiago; do
    for q in "What is the capital of" "Name the capital of" "Which city is the capital of"; do
      chat "$q ${pair%%:*}?" "The capital of ${pair%%:*} is ${pair##*:}."
    done
  done
} > "$runs/train.jsonl"
for a in $(seq 1 15); do for b in $(seq 1 15); do
  [ $(((a * 7 + b) % 10)) -eq 0 ] && chat "What is $a plus $b?" "$a plus $b is $((a + b))."
done; done > "$runs/eval.jsonl"
echo "$(wc -l < "$runs/train.jsonl") training conversations, $(wc -l < "$runs/eval.jsonl") held out"

mean_nll() { grep -o '"nll":[-0-9.eE+]*' "$1" | cut -d: -f2 | awk '{ s += $1; n++ } END { printf "%.3f", s / n }'; }

echo
echo "== 3. Held-out conversations scored by the untrained model"
./posttrain logprobs --model "$runs/base" --input "$runs/eval.jsonl" --output "$runs/before.jsonl"
before=$(mean_nll "$runs/before.jsonl")
echo "mean NLL per token: $before"

echo
echo "== 4. Supervised fine-tuning (assistant turns only), with evaluation and checkpoints"
./posttrain sft --model "$runs/base" --data "$runs/train.jsonl" --eval-data "$runs/eval.jsonl" --output "$runs/sft" \
    --epochs 6 --batch-size 16 --learning-rate 3e-3 --lr-scheduler cosine --warmup-ratio 0.05 \
    --logging-steps 10 --eval-steps 40 --save-steps 40 --save-total-limit 2 --max-length 64

echo
echo "== 5. The same held-out conversations scored by the fine-tuned model"
./posttrain logprobs --model "$runs/sft" --input "$runs/eval.jsonl" --output "$runs/after.jsonl"
after=$(mean_nll "$runs/after.jsonl")
echo "mean NLL per token: $before before fine-tuning, $after after"

echo
echo "== 6. Greedy answers of the fine-tuned model to held-out questions (chat template, KV cache)"
head -n 3 "$runs/eval.jsonl" | sed -E 's/, \{"role": "assistant"[^]]*\]/]/' > "$runs/questions.jsonl"
./posttrain generate --model "$runs/sft" --input "$runs/questions.jsonl" --output "$runs/answers.jsonl" --temperature 0 --max-new-tokens 24
sed -E 's/.*"content": ?"([^"]*)".*"text": ?"([^"]*)".*/\1  ->  \2/' "$runs/answers.jsonl" | sed 's/\\n/ /g'
echo
echo "The run: $runs/sft (metrics.jsonl, tensorboard/, checkpoint-*/, config.yaml, the final model with its tokenizer)"
echo "(A 10M-parameter model trained for a minute learns the answers' form; not yet their arithmetic.)"
