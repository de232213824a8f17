#!/usr/bin/python3
"""Golden prompts and metrics for `posttrain eval`, computed by lm-evaluation-harness's own code.

Every case runs ``lm_eval.evaluator.simple_evaluate`` end to end, with the fixture task YAMLs loaded by
lm-eval's own ``TaskManager`` (``include_path`` = the fixture folder, ``include_defaults=False``) and a
stand-in model (``FixedResponsesLM``, a subclass of ``lm_eval.api.model.LM``) that answers each request with
the fixed response of its document from ``responses.jsonl``. So the prompts come from
``ConfigurableTask.fewshot_context`` (with lm-eval's fewshot sampler seeded as ``simple_evaluate`` seeds it,
``fewshot_random_seed=1234``), the requests from ``construct_requests``, the filtered responses from
``task.apply_filters()`` (lm-eval's filter ensembles), the per-document metrics from ``task.process_results``
and the aggregated values and standard errors from ``evaluator_utils`` (``_compute_task_aggregations``,
``stderr_for_metric``), exactly as in a real run. The golden values are read back from simple_evaluate's
return value: ``results[task]`` (what results.json holds) and ``samples[task]`` (what samples_TASK.jsonl
holds: per document and filter the arguments, filtered_resps, target, metrics). This script only builds
fixtures and stand-ins; it re-implements none of lm-eval's logic.

lm-eval itself is not installed: its ``lm_eval`` package is extracted from the git mirror at the pinned
commit ``LM_EVAL_COMMIT`` into a temporary folder (with a minimal ``.dist-info`` so that
``importlib.metadata.version("lm_eval")`` in ``lm_eval/__init__.py`` works) and put first on sys.path.

What is stubbed, and why it does not change the results
-------------------------------------------------------
Only modules that are imported at module level by lm-eval but not used on the code paths these cases run,
plus the Hugging Face ``datasets`` loader:

* ``datasets`` (not installable here): a small ``Dataset`` (rows as dicts; ``features``/``column_names``,
  ``__len__``, ``__iter__``, ``__getitem__`` returning a fresh copy of the row like HF does, and ``map`` that
  merges the dict returned by the function into each row, existing columns first, as HF's ``map`` does) and
  ``load_dataset(path, name)``, which reads ``<path>/<split>.jsonl`` (path relative to the repository root,
  as the fixture YAMLs' ``dataset_path`` is) into a dict of split name -> Dataset. The split name is the
  file name (so ``dev.jsonl`` is the ``dev`` split, as on the Hub's cais/mmlu; HF's local-folder loader would
  call it ``validation``). ``dataset_name`` is ignored (each fixture folder holds one configuration) and
  ``responses.jsonl`` is not a split. lm-eval uses only these members of a dataset (the hellaswag
  ``process_docs`` calls ``map``). ``datasets.utils.metadata.MetadataConfigs`` is an empty class
  (imported by lm_eval.loggers.evaluation_tracker, used only when pushing results to the Hub).
* ``sacrebleu`` (bleu/chrf/ter metrics), ``dill`` (request cache, off by default), ``pandas`` (W&B
  logger): empty modules; none of these cases calls them.
* ``requests``, only if not installed: lm-eval uses it only for API models.
* ``typing_extensions``, unless one new enough (4.13, ``TypedDict(..., extra_items=...)``) is installed; Debian
  12 has 4.4 or none. lm-eval uses it only for type declarations: ``TypedDict`` becomes a plain ``dict``
  subclass that accepts and ignores the typing keywords (``total``, ``extra_items``); a TypedDict is a plain
  dict at run time anyway, and lm-eval only builds such dicts, it never inspects their declarations.
  ``deprecated`` returns the decorated object unchanged (it only adds a warning); everything else comes
  from ``typing``.

The chat template is applied the way lm-eval's HFLM.apply_chat_template calls
``tokenizer.apply_chat_template(..., add_generation_prompt=a, continue_final_message=not a)``: the
template is compiled as transformers compiles it (jinja2 ``ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True)``) and rendered with ``messages`` and ``add_generation_prompt``; lm-eval passes the bound
method ``lm.apply_chat_template`` as ``chat_template`` to ``build_all_requests`` (evaluator.evaluate).

golden.json
-----------
``{"generator", "lm_eval_commit", "cases": [case, ...]}``, one case per entry of ``CASES`` below:

* options: ``name``, ``task``, ``task_yaml`` / ``data_dir`` / ``responses`` (paths relative to the repository
  root), ``num_fewshot``, ``apply_chat_template``, ``fewshot_as_multiturn``, ``system_instruction``, ``limit``
  (int, a fraction below 1 as lm-eval's --limit, or null), ``chat_template`` (the jinja source, or null),
  ``fewshot_seed``.
* per evaluated document, in document order: ``doc_ids``; ``contexts`` (the string fewshot_context returned);
  ``arguments`` (the document's requests as lm-eval logs them: ``[[context, continuation], ...]`` one per
  choice for multiple_choice, ``[[context, generation_kwargs]]`` for generate_until); ``targets``
  (doc_to_target: the answer index for multiple choice); ``hashes`` (samples_TASK.jsonl's doc_hash, prompt_hash,
  target_hash: sha256 of ``json.dumps(doc, indent=2, ensure_ascii=False)``, of the first context, of
  ``str(target)``).
* ``filtered_resps``: ``{filter name: [per document, the list of filtered responses of its requests]}``
  (``["55"]`` for a generation, ``[[logprob, is_greedy], ...]`` for multiple choice);
  ``doc_metrics``: ``{filter name: [per document, process_results' dict]}``.
* ``results``: ``results[task]`` as results.json has it (``"acc,none"``, ``"acc_stderr,none"``,
  ``"exact_match,strict-match"``, ... and ``name``, ``alias``, ``sample_len``; a stderr is ``"N/A"`` when
  there is only one document); ``n-samples`` and ``higher_is_better`` of the task.

Run (Debian's python3 with python3-numpy, python3-yaml, python3-jinja2, python3-tqdm):

    /usr/bin/python3 tests/reference/eval_task_goldens.py [--lm-eval-repo GIT_DIR] [--lm-eval-src DIR]

writes tests/PostTrain.Tests/Fixtures/eval/tasks/golden.json (byte-identical on rerun).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import io
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path

sys.dont_write_bytecode = True  # lm-eval imports hellaswag/utils.py from the fixture folder: leave no __pycache__ there

REPO = Path(__file__).resolve().parents[2]
FIXTURES = "tests/PostTrain.Tests/Fixtures/eval/tasks"
LM_EVAL_COMMIT = "4e7e0d47f33bc71070c1d38394bafbb52b117163"
LM_EVAL_MIRROR = "/work/.mirror/EleutherAI+lm-evaluation-harness/repo"
FEWSHOT_SEED = 1234  # simple_evaluate's default fewshot_random_seed (lm_eval.defaults.DEFAULT_OTHER_SEED)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SYSTEM = "You are a careful solver."

# (name, task, fixture folder, yaml file, options). Options are simple_evaluate's arguments.
CASES = [
    ("gsm8k_3shot", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=3)),
    ("gsm8k_2shot_chat", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=2, apply_chat_template=True, fewshot_as_multiturn=False)),
    ("gsm8k_2shot_chat_multiturn", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=2, apply_chat_template=True, fewshot_as_multiturn=True)),
    ("gsm8k_2shot_chat_multiturn_system", "gsm8k", "gsm8k", "gsm8k.yaml",
     dict(num_fewshot=2, apply_chat_template=True, fewshot_as_multiturn=True, system_instruction=SYSTEM)),
    ("arc_easy_0shot", "arc_easy", "arc", "arc_easy.yaml", dict(num_fewshot=0)),
    ("arc_easy_2shot", "arc_easy", "arc", "arc_easy.yaml", dict(num_fewshot=2)),
    # lm-eval's CLI turns fewshot_as_multiturn on whenever --apply_chat_template is given without it.
    ("arc_easy_0shot_chat", "arc_easy", "arc", "arc_easy.yaml", dict(num_fewshot=0, apply_chat_template=True, fewshot_as_multiturn=True)),
    ("mmlu_0shot", "mmlu", "mmlu", "mmlu.yaml", dict(num_fewshot=0)),
    ("mmlu_2shot", "mmlu", "mmlu", "mmlu.yaml", dict(num_fewshot=2)),
    ("hellaswag_0shot", "hellaswag", "hellaswag", "hellaswag.yaml", dict(num_fewshot=0)),
    ("hellaswag_1shot", "hellaswag", "hellaswag", "hellaswag.yaml", dict(num_fewshot=1)),
    ("gsm8k_3shot_limit4", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=3, limit=4)),
    # Cases 13-17 pin further lm-eval behaviour:
    # a system instruction without a chat template (plain text: lm-eval glues it to the first question);
    ("gsm8k_2shot_system_plain", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=2, system_instruction=SYSTEM)),
    # a fractional --limit (ceil(6 * 0.5) = 3 documents);
    ("gsm8k_0shot_limit_half", "gsm8k", "gsm8k", "gsm8k.yaml", dict(num_fewshot=0, limit=0.5)),
    # one document: every stderr is "N/A";
    ("arc_easy_0shot_limit1", "arc_easy", "arc", "arc_easy.yaml", dict(num_fewshot=0, limit=1)),
    # few-shot examples from the evaluated split: each document is left out of its own examples;
    ("arc_easy_2shot_fewshot_from_test", "arc_easy_fewshot_test", "arc", "arc_easy_fewshot_test.yaml", dict(num_fewshot=2)),
    # a chat template with a task description: the description becomes (part of) the system message.
    ("mmlu_1shot_chat_multiturn_system", "mmlu", "mmlu", "mmlu.yaml",
     dict(num_fewshot=1, apply_chat_template=True, fewshot_as_multiturn=True, system_instruction=SYSTEM)),
]


# ----------------------------------------------------------------------------------------------- lm-eval source

def extract_lm_eval(mirror: str, commit: str, dest: Path) -> None:
    """`git archive COMMIT lm_eval` from the mirror into dest, without the built-in task folders."""
    tar = subprocess.run(["git", "-C", mirror, "archive", commit, "lm_eval"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        # lm_eval/tasks/*.py (TaskManager) yes; the thousands of built-in task folders are not needed
        t.extractall(dest, members=[m for m in t.getmembers() if not m.name.startswith("lm_eval/tasks/")
                                    or m.name.count("/") == 2 and not m.isdir()])


def write_dist_info(dest: Path) -> None:
    """lm_eval/__init__.py asks importlib.metadata for its version: a minimal dist-info answers."""
    version = "0+oracle"
    info = dest / f"lm_eval-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lm_eval\nVersion: {version}\n")


# ----------------------------------------------------------------------------------------------- stubs

class Dataset:
    """The part of datasets.Dataset that lm-eval's ConfigurableTask and hellaswag's process_docs use."""

    def __init__(self, rows: list[dict]):
        self._rows = rows
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        self.features = columns  # lm-eval only calls features.keys()

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: int) -> dict:
        return copy.deepcopy(self._rows[i])  # HF builds a new dict on every access

    def __iter__(self):
        return (copy.deepcopy(r) for r in self._rows)

    def map(self, function, **kwargs) -> "Dataset":
        return Dataset([{**row, **function(copy.deepcopy(row))} for row in self._rows])


def load_dataset(path: str, name: str | None = None, **kwargs) -> dict[str, Dataset]:
    folder = Path(path) if Path(path).is_absolute() else REPO / path
    splits = {}
    for f in sorted(folder.glob("*.jsonl")):
        if f.stem == "responses":
            continue
        with f.open(encoding="utf-8") as fh:
            splits[f.stem] = Dataset([json.loads(line) for line in fh if line.strip()])
    if not splits:
        raise FileNotFoundError(f"no <split>.jsonl files in {folder}")
    return splits


def module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def install_stubs() -> None:
    module("datasets", Dataset=Dataset, DatasetDict=dict, load_dataset=load_dataset, __version__="0+fixture-stub",
           DownloadMode=None)
    module("datasets.utils")
    module("datasets.utils.metadata", MetadataConfigs=type("MetadataConfigs", (dict,), {}))
    module("sacrebleu")
    module("dill")
    module("pandas", DataFrame=type("DataFrame", (), {}))  # named in an annotation
    if importlib.util.find_spec("requests") is None:
        module("requests")
    if not typing_extensions_is_usable():
        import typing

        class TypedDictBase(dict):
            def __init_subclass__(cls, **kwargs):  # total=, closed=, extra_items=: typing only
                super().__init_subclass__()

        def TypedDict(name, fields=None, /, **kwargs):  # the functional form
            return type(name, (TypedDictBase,), {})

        TypedDict.__mro_entries__ = lambda bases: (TypedDictBase,)  # the class form, as typing.TypedDict does

        def deprecated(*args, **kwargs):
            return lambda obj: obj

        te = module("typing_extensions", TypedDict=TypedDict, deprecated=deprecated)
        te.__getattr__ = lambda attr: getattr(typing, attr)


def typing_extensions_is_usable() -> bool:
    """lm-eval needs typing_extensions >= 4.13 (deprecated, TypedDict(..., extra_items=...))."""
    try:
        from typing import Generic, TypeVar

        from typing_extensions import TypedDict, deprecated  # noqa: F401

        T = TypeVar("T")

        class Probe(TypedDict, Generic[T], extra_items=T):
            x: int

        return True
    except (ImportError, TypeError):
        return False


# ----------------------------------------------------------------------------------------------- the stand-in model

def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def make_lm_class():
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from lm_eval.api.model import LM

    class FixedResponsesLM(LM):
        """Answers every request with the fixed response of its document (responses.jsonl)."""

        def __init__(self, responses_file: Path):
            super().__init__()
            self.resps = {r["doc_id"]: r["resps"] for r in read_jsonl(responses_file)}
            self.template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHATML)

        def loglikelihood(self, requests):
            # one (logprob, is_greedy) pair per request; a multiple-choice document's requests are its choices (idx)
            return [(float(self.resps[r.doc_id][r.idx][0]), bool(self.resps[r.doc_id][r.idx][1])) for r in requests]

        def generate_until(self, requests):
            return [self.resps[r.doc_id][0] for r in requests]

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def apply_chat_template(self, chat_history, add_generation_prompt=True):
            # HFLM passes continue_final_message=not add_generation_prompt; with add_generation_prompt=True
            # (lm-eval's case whenever the task has no gen_prefix) transformers renders the template as is.
            assert add_generation_prompt, "continue_final_message is not emulated"
            return self.template.render(messages=chat_history, add_generation_prompt=add_generation_prompt)

        @property
        def tokenizer_name(self) -> str:
            return "fixture-chatml"

    return FixedResponsesLM


# ----------------------------------------------------------------------------------------------- running a case

def plain(x):
    """numpy scalars and tuples to JSON values."""
    import numpy as np

    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


def run_case(name: str, task_name: str, folder: str, yaml_file: str, options: dict, lm_class) -> dict:
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.tasks import TaskManager

    data_dir = f"{FIXTURES}/{folder}"
    responses = f"{data_dir}/responses.jsonl"
    lm = lm_class(REPO / responses)
    seen = []  # the Instances the model was asked, to check them against the logged samples
    for method in ("loglikelihood", "generate_until"):
        inner = getattr(lm, method)
        setattr(lm, method, lambda reqs, inner=inner: (seen.extend(reqs), inner(reqs))[1])
    out = simple_evaluate(
        model=lm,
        tasks=[task_name],
        task_manager=TaskManager(include_path=str(REPO / FIXTURES), include_defaults=False),
        log_samples=True,
        fewshot_random_seed=FEWSHOT_SEED,
        **options,
    )
    samples = out["samples"][task_name]
    filters = list(dict.fromkeys(s["filter"] for s in samples))
    by_filter = {f: sorted((s for s in samples if s["filter"] == f), key=lambda s: s["doc_id"]) for f in filters}
    first = by_filter[filters[0]]
    for f in filters:  # every filter sees the same documents and requests
        assert [s["doc_id"] for s in by_filter[f]] == [s["doc_id"] for s in first]
        assert [s["arguments"] for s in by_filter[f]] == [s["arguments"] for s in first]
    # the logged arguments are the arguments the model received
    asked = {}
    for inst in seen:
        asked.setdefault(inst.doc_id, []).append((inst.idx, inst.args))
    assert {d: [a for _, a in sorted(v, key=lambda t: t[0])] for d, v in asked.items()} == \
        {s["doc_id"]: s["arguments"] for s in first}

    contexts = []
    for s in first:
        ctxs = {a[0] for a in s["arguments"]}
        assert len(ctxs) == 1, "one context per document (no multiple-input task here)"
        contexts.append(ctxs.pop())
    results = out["results"][task_name]
    case = {
        "name": name,
        "task": task_name,
        "task_yaml": f"{data_dir}/{yaml_file}",
        "data_dir": data_dir,
        "num_fewshot": options.get("num_fewshot", 0),
        "apply_chat_template": options.get("apply_chat_template", False),
        "fewshot_as_multiturn": options.get("fewshot_as_multiturn", False),
        "system_instruction": options.get("system_instruction"),
        "limit": options.get("limit"),
        "chat_template": CHATML if options.get("apply_chat_template") else None,
        "fewshot_seed": FEWSHOT_SEED,
        "responses": responses,
        "doc_ids": [s["doc_id"] for s in first],
        "contexts": contexts,
        "arguments": [plain(s["arguments"]) for s in first],
        "targets": [plain(s["target"]) for s in first],
        "hashes": [{k: s[k] for k in ("doc_hash", "prompt_hash", "target_hash")} for s in first],
        "filtered_resps": {f: [plain(s["filtered_resps"]) for s in by_filter[f]] for f in filters},
        "doc_metrics": {f: [plain({m: s[m] for m in s["metrics"]}) for s in by_filter[f]] for f in filters},
        "results": plain(results),
        "n-samples": plain(out["n-samples"][task_name]),
        "higher_is_better": plain(out["higher_is_better"][task_name]),
    }
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lm-eval-repo", default=LM_EVAL_MIRROR, help="git directory of lm-evaluation-harness")
    ap.add_argument("--lm-eval-commit", default=LM_EVAL_COMMIT)
    ap.add_argument("--lm-eval-src", help="an already extracted folder holding lm_eval/ (skips the git archive)")
    ap.add_argument("--out", default=str(REPO / FIXTURES / "golden.json"))
    ap.add_argument("-v", "--verbose", action="store_true", help="show lm-eval's log")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="lm_eval_src_") as tmp:
        src = Path(args.lm_eval_src) if args.lm_eval_src else Path(tmp)
        if not args.lm_eval_src:
            extract_lm_eval(args.lm_eval_repo, args.lm_eval_commit, src)
        write_dist_info(Path(tmp))
        sys.path[:0] = [str(src), tmp]
        install_stubs()
        import lm_eval

        assert Path(lm_eval.__file__).resolve().is_relative_to(src.resolve()), lm_eval.__file__
        lm_class = make_lm_class()
        cases = [run_case(*c, lm_class=lm_class) for c in CASES]

    golden = {
        "generator": "tests/reference/eval_task_goldens.py",
        "lm_eval_commit": args.lm_eval_commit if not args.lm_eval_src else None,
        "cases": cases,
    }
    text = json.dumps(golden, indent=1, ensure_ascii=False) + "\n"
    Path(args.out).write_text(text, encoding="utf-8")
    for c in cases:
        shown = {k: v for k, v in c["results"].items() if "," in k}
        print(f"{c['name']:36s} {json.dumps(shown)}")
    print(f"wrote {args.out} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
