#!/usr/bin/env python3
"""Renders the chat template BpeTrainer writes, as transformers' apply_chat_template would.

Reads the chat_template of tests/PostTrain.Tests/Fixtures/tokenizers/demo-bpe/tokenizer_config.json
(our trainer's output) and renders a few conversations, with and without add_generation_prompt and
a system message, through render_templates.py's jinja2 environment (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, raise_exception, ...) with apply_chat_template's context: messages,
tools=None, documents=None, add_generation_prompt and the special tokens map. Writes
template_goldens.json beside it: {"cases": [{name, messages, add_generation_prompt, text | error}]}.

Run: python3 tests/reference/bpe_template_goldens.py   (jinja2 3.1.x; Debian's python3-jinja2)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import render_templates  # noqa: E402

DIR = os.path.join(HERE, "..", "PostTrain.Tests", "Fixtures", "tokenizers", "demo-bpe")

CONVERSATIONS = {
    "user": [{"role": "user", "content": "What is 3 plus 4?"}],
    "user_assistant": [
        {"role": "user", "content": "What is 3 plus 4?"},
        {"role": "assistant", "content": "3 plus 4 is 7."},
    ],
    "system_user_assistant": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ],
    "multi_turn": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "I am Qwen, an AI assistant."},
        {"role": "user", "content": "What is 12 plus 7?"},
    ],
    "unicode": [{"role": "user", "content": "Café 😀\nline two\n"}],
    "system_not_first": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "late"},
    ],
    "empty": [],
}


def main():
    with open(os.path.join(DIR, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    special = {k: config[k] for k in ("eos_token", "pad_token", "additional_special_tokens") if config.get(k) is not None}
    cases = []
    for name, messages in CONVERSATIONS.items():
        for agp in (False, True):
            context = {"messages": messages, "tools": None, "documents": None, "add_generation_prompt": agp, **special}
            out = render_templates.render(config["chat_template"], context)
            case = {"name": f"{name}/agp={agp}", "messages": messages, "add_generation_prompt": agp}
            if "error" in out:
                case["error"] = out["error"]
            else:
                case["text"] = out["text"]
            cases.append(case)
    with open(os.path.join(DIR, "template_goldens.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"jinja2 {render_templates.jinja2.__version__}: wrote {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
