#!/usr/bin/python3
"""Runs EleutherAI lm-evaluation-harness's own IFEval scoring on the committed cases in
ifeval_cases.py and writes tests/PostTrain.Tests/Fixtures/eval/ifeval/golden.jsonl.

    /usr/bin/python3 tests/reference/ifeval_goldens.py [--lm-eval-git DIR] [--rev REV]

Needs Debian's python3-nltk, python3-langdetect and python3-immutabledict. lm-eval itself is not
installed: its four ifeval files are read from a git mirror (`git show REV:lm_eval/tasks/ifeval/...`)
into a temporary package and imported unchanged. What is patched, and why:

* instructions_util asserts nltk >= 3.9.1 and downloads punkt_tab at import. Debian 12 has nltk 3.8 and
  there is no network, so the version check is told 3.9.1 and nltk.download does nothing. The punkt,
  Treebank and RegexpTokenizer code that runs is therefore nltk 3.8's; nltk 3.9's source was not
  available to compare (3.9 changed how the Punkt model is loaded).
* nltk >= 3.9 loads the English Punkt model from punkt_tab (nltk.data.load of punkt/english.pickle is
  redirected to PunktTokenizer("english")). The punkt_tab data is not on this machine. The sentence
  tokenizer used by count_sentences and by word_tokenize (capital_word_frequency) is therefore
  nltk's own PunktSentenceTokenizer built from src/PostTrain/Evaluation/IfEval/PunktEnglish.json
  (abbreviations, collocations and sentence starters of the English model). The fourth table,
  ortho_context, is not available. It is replaced by a lookup that records every word it is asked
  about, and the case is rerun with every combination of flags those words could have in the real
  table (up to three words). A case whose verdicts change with them depends on the real table and is
  rejected (the script stops), so every committed verdict is independent of ortho_context.
* A missing or falsy kwarg makes lm-eval draw a random value (random.randint/choice/sample); the
  script refuses such a case.
* langdetect has no fixed seed in lm-eval, so its answer can vary between runs. Each detect() is run
  with seeds 0..9. A case where they disagree is rejected too.
"""
import argparse
import importlib
import importlib.metadata
import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests/PostTrain.Tests/Fixtures/eval/ifeval/golden.jsonl")
OUT_TOKENS = os.path.join(ROOT, "tests/PostTrain.Tests/Fixtures/eval/ifeval/tokenizers.jsonl")
PARAMS = os.path.join(ROOT, "src/PostTrain/Evaluation/IfEval/PunktEnglish.json")
FILES = ["instructions.py", "instructions_registry.py", "instructions_util.py", "utils.py"]


def load_lm_eval(git_dir, rev):
    tmp = tempfile.mkdtemp(prefix="lm_eval_ifeval_")
    pkg = os.path.join(tmp, "lm_eval", "tasks", "ifeval")
    os.makedirs(pkg)
    for d in [os.path.join(tmp, "lm_eval"), os.path.join(tmp, "lm_eval", "tasks"), pkg]:
        open(os.path.join(d, "__init__.py"), "w").close()
    for f in FILES:
        src = subprocess.run(["git", "--git-dir", git_dir, "show", f"{rev}:lm_eval/tasks/ifeval/{f}"],
                             check=True, capture_output=True).stdout
        open(os.path.join(pkg, f), "wb").write(src)
    commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    sys.path.insert(0, tmp)

    import nltk
    real_version = importlib.metadata.version
    importlib.metadata.version = lambda name: "3.9.1" if name == "nltk" else real_version(name)
    nltk.download = lambda *a, **k: True
    try:
        util = importlib.import_module("lm_eval.tasks.ifeval.instructions_util")
    finally:
        importlib.metadata.version = real_version
    instructions = importlib.import_module("lm_eval.tasks.ifeval.instructions")
    registry = importlib.import_module("lm_eval.tasks.ifeval.instructions_registry")
    utils = importlib.import_module("lm_eval.tasks.ifeval.utils")
    return util, instructions, registry, utils, commit


class Ortho(dict):
    """ortho_context stand-in: a word gets values[word] (0 when unset); the words asked about are
    recorded."""

    def __init__(self):
        super().__init__()
        self.values = {}
        self.asked = set()

    def __missing__(self, key):
        self.asked.add(key)
        return self.values.get(key, 0)


# Punkt's heuristics read four things from a word's flags: seen lower-case (any LC bit), seen
# upper-case mid-sentence (MID_UC), seen upper-case (any UC bit), seen lower-case sentence-initially
# (BEG_LC). These 16 values (MID_UC, UNK_UC, BEG_LC, MID_LC in every combination) cover every
# combination of the four that the real table can hold.
ORTHO_CLASSES = [a * 4 + b * 8 + c * 16 + d * 32 for a in (0, 1) for b in (0, 1) for c in (0, 1) for d in (0, 1)]


def make_punkt():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    p = json.load(open(PARAMS, encoding="utf-8"))
    params = PunktParameters()
    params.abbrev_types = set(p["abbrev_types"])
    params.collocations = {tuple(c) for c in p["collocations"]}
    params.sent_starters = set(p["sent_starters"])
    ortho = Ortho()
    params.ortho_context = ortho
    tok = PunktSentenceTokenizer()
    tok._params = params
    return tok, ortho


class Unstable(Exception):
    pass


def patch(util, instructions):
    import langdetect
    import nltk.tokenize
    from langdetect import DetectorFactory

    punkt, ortho = make_punkt()
    util._get_sentence_tokenizer = lambda: punkt
    nltk.tokenize.sent_tokenize = lambda text, language="english": punkt.tokenize(text)

    real_detect = langdetect.detect

    def detect(text):
        answers = set()
        for seed in range(10):
            DetectorFactory.seed = seed
            try:
                answers.add(real_detect(text))
            except langdetect.LangDetectException:
                answers.add(None)
        DetectorFactory.seed = None
        if len(answers) != 1:
            raise Unstable(f"langdetect answers {sorted(map(str, answers))} for {text[:60]!r}")
        answer = answers.pop()
        if answer is None:
            raise langdetect.LangDetectException(0, "No features in text.")
        return answer

    instructions.langdetect.detect = detect

    # A kwarg that is missing (or falsy, which utils.py drops) makes build_description draw a random
    # value. Such a case has no fixed verdict, so it is refused.
    class NoRandom:
        def __getattr__(self, name):
            def refuse(*a, **k):
                raise Unstable(f"lm-eval would draw random.{name}: a kwarg is missing")
            return refuse

    instructions.random = NoRandom()
    util.random = NoRandom()
    return ortho


def score(utils, doc, response):
    inp = utils.InputExample(key=doc.get("key", 0), instruction_id_list=doc["instruction_id_list"],
                             prompt=doc["prompt"], kwargs=doc["kwargs"])
    strict = utils.test_instruction_following_strict(inp, response).follow_instruction_list
    loose = utils.test_instruction_following_loose(inp, response).follow_instruction_list
    return strict, loose


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lm-eval-git", default="/work/.mirror/EleutherAI+lm-evaluation-harness/repo")
    ap.add_argument("--rev", default="HEAD")
    args = ap.parse_args()

    util, instructions, registry, utils, commit = load_lm_eval(args.lm_eval_git, args.rev)
    ortho = patch(util, instructions)
    sys.path.insert(0, HERE)
    from ifeval_cases import CASES, TOKENIZER_TEXTS

    names = set()
    seen = defaultdict(lambda: [set(), set()])  # id -> [strict verdicts, loose verdicts]
    lines = []
    problems = []
    for case in CASES:
        name, doc, response = case["name"], case["doc"], case["response"]
        assert name not in names, name
        names.add(name)
        ortho.values, ortho.asked = {}, set()
        try:
            strict, loose = score(utils, doc, response)
        except Unstable as e:
            problems.append(f"{name}: {e}")
            continue
        words = sorted(ortho.asked)
        if len(words) > 3:
            problems.append(f"{name}: punkt asks ortho_context about {len(words)} words {words}; keep it to 3")
        elif words:
            for values in itertools.product(ORTHO_CLASSES, repeat=len(words)):
                ortho.values = dict(zip(words, values))
                if score(utils, doc, response) != (strict, loose):
                    problems.append(f"{name}: verdict depends on punkt's ortho_context for {words}")
                    break
            if ortho.asked != set(words):
                problems.append(f"{name}: punkt asked about more words under other flags: {sorted(ortho.asked)}")
            ortho.values = {}
        for iid, s, l in zip(doc["instruction_id_list"], strict, loose):
            seen[iid][0].add(s)
            seen[iid][1].add(l)
        want = case.get("want")
        if want is not None and want != {"strict": strict, "loose": loose}:
            problems.append(f"{name}: wanted {want}, lm-eval says strict={strict} loose={loose}")
        lines.append(json.dumps({"name": name, "doc": doc, "response": response,
                                 "strict": strict, "loose": loose}, ensure_ascii=False))

    import nltk
    token_lines = []
    for text in TOKENIZER_TEXTS:
        def run():
            return util._get_sentence_tokenizer().tokenize(text), nltk.word_tokenize(text)
        ortho.values, ortho.asked = {}, set()
        sentences, tokens = run()
        words = sorted(ortho.asked)
        if len(words) > 3:
            problems.append(f"{text!r}: punkt asks ortho_context about {len(words)} words {words}")
        for values in itertools.product(ORTHO_CLASSES, repeat=len(words)) if len(words) <= 3 else []:
            ortho.values = dict(zip(words, values))
            if run() != (sentences, tokens):
                problems.append(f"{text!r}: punkt's answer depends on ortho_context for {words}")
                break
        ortho.values = {}
        assert util.count_sentences(text) == len(sentences)
        token_lines.append(json.dumps({"text": text, "sentences": sentences, "word_tokens": tokens},
                                      ensure_ascii=False))

    for iid in registry.INSTRUCTION_DICT:
        if seen[iid][0] != {True, False}:
            problems.append(f"{iid}: strict verdicts seen {sorted(seen[iid][0])}, want both")
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(OUT_TOKENS, "w", encoding="utf-8") as f:
        f.write("\n".join(token_lines) + "\n")
    n_inst = sum(len(json.loads(l)["strict"]) for l in lines)
    print(f"lm-eval {commit}: {len(lines)} cases, {n_inst} instructions, "
          f"{len(registry.INSTRUCTION_DICT)} ids -> {os.path.relpath(OUT, ROOT)}; "
          f"{len(token_lines)} tokenizer texts -> {os.path.relpath(OUT_TOKENS, ROOT)}")


if __name__ == "__main__":
    main()
