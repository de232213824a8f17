"""Golden outputs of lm-evaluation-harness's response filters, exact_match and mean/mean_stderr.

The oracle is lm-eval's own code, not a re-implementation: the files below are extracted from the lm-eval git
mirror at a pinned commit with `git show` into a temporary directory and imported from there.

    /usr/bin/python3 tests/reference/eval_filter_goldens.py   # writes Fixtures/eval/filters/golden.json, casing.json

Needs Debian's python3 with numpy and yaml (python3-numpy, python3-yaml). LM_EVAL_REPO overrides the mirror's path.

Extracted (unchanged): lm_eval/api/{filter,instance,registry,metrics}.py, lm_eval/filters/{__init__,custom,extraction,
selection,transformation}.py. Stubbed, because they are imported but not used by what runs here:
  * lm_eval/__init__.py: the real one reads the installed package's version (importlib.metadata), and lm-eval is
    not installed; it is replaced by an empty file.
  * lm_eval/api/__init__.py: empty in lm-eval too; written empty.
  * sacrebleu: imported at the top of metrics.py for the bleu/chrf/ter aggregations; an empty module.
Nothing else is stubbed: numpy, re, string and math are the real ones.

Filters run the way lm-eval's task does: the task's filter_list entry becomes components
[function, {every other key}] (ConfigurableTask.__init__), build_filter_ensemble makes the FilterEnsemble, and
FilterEnsemble.apply runs it over Instance objects; the golden records inst.filtered_resps[name].
exact_match runs through the registered metric function (exact_match_fn) with one prediction and one reference,
as ConfigurableTask.process_results calls it. mean and mean_stderr are metrics.mean / metrics.mean_stderr.

golden.json:
  filter_cases: {name, entry (a filter_list entry), resps [[str]], docs [obj], expected [json per doc] | error}
  rejected_configs: {name, entry, error}            # lm-eval fails to build the pipeline
  task_responses: [str]; task_pattern_cases: {pattern, source, group_select, expected [str] | error}: every
    regex_pattern in lm-eval's task YAMLs, as a lone regex filter over task_responses (one document's repeats)
  exact_match_cases: {prediction, reference, ignore_case, ignore_punctuation, ignore_numbers, regexes_to_ignore, expected}
  mean_cases: {name, values, mean | mean_error, mean_stderr | null (lm-eval reports "N/A": it computes stderr only for
               more than one item)}
  python_isspace: code points for which str.isspace() (= str.strip()'s whitespace and re's \\s) is true
casing.json: [[code point, str.lower(), str.upper()]] for every code point that lower() or upper() changes
"""
import atexit
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "PostTrain.Tests", "Fixtures", "eval", "filters")
REPO = os.environ.get("LM_EVAL_REPO", "/work/.mirror/EleutherAI+lm-evaluation-harness/repo")
COMMIT = "4e7e0d47f33bc71070c1d38394bafbb52b117163"
FILES = [
    "lm_eval/api/filter.py", "lm_eval/api/instance.py", "lm_eval/api/registry.py", "lm_eval/api/metrics.py",
    "lm_eval/filters/__init__.py", "lm_eval/filters/custom.py", "lm_eval/filters/extraction.py",
    "lm_eval/filters/selection.py", "lm_eval/filters/transformation.py",
]


def load_lm_eval():
    tmp = tempfile.mkdtemp(prefix="lm_eval_oracle_")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    for f in FILES:
        text = subprocess.run(["git", "show", f"{COMMIT}:{f}"], cwd=REPO, check=True, capture_output=True).stdout
        path = os.path.join(tmp, f)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(text)
    for stub in ["lm_eval/__init__.py", "lm_eval/api/__init__.py"]:
        open(os.path.join(tmp, stub), "w").close()
    sys.modules["sacrebleu"] = types.ModuleType("sacrebleu")  # stub: bleu/chrf/ter only
    sys.path.insert(0, tmp)
    filters = importlib.import_module("lm_eval.filters")
    instance = importlib.import_module("lm_eval.api.instance")
    metrics = importlib.import_module("lm_eval.api.metrics")
    return filters, instance, metrics


filters, instance_mod, metrics = load_lm_eval()


def to_json(v):
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    raise TypeError(type(v))


def build(entry):
    # ConfigurableTask.__init__: filter_list entry -> components -> build_filter_ensemble
    components = []
    for function in entry["filter"]:
        kwargs = {key: function[key] for key in function if key != "function"}
        components.append([function["function"], kwargs])
    return filters.build_filter_ensemble(entry["name"], components)


def run_filter(entry, resps, docs):
    ensemble = build(entry)
    insts = [instance_mod.Instance("generate_until", doc, ("", {}), i) for i, doc in enumerate(docs)]
    for inst, r in zip(insts, resps):
        inst.resps = list(r)
    ensemble.apply(insts)
    return [to_json(inst.filtered_resps[entry["name"]]) for inst in insts]


filter_cases = []
rejected = []


def case(name, entry, resps, docs=None):
    if isinstance(entry, list):
        entry = {"name": name, "filter": entry}
    if docs is None:
        docs = [{} for _ in resps]
    c = {"name": name, "entry": entry, "resps": resps, "docs": docs}
    try:
        c["expected"] = run_filter(entry, resps, docs)
    except Exception as e:  # lm-eval fails while applying
        c["error"] = f"{type(e).__name__}: {e}"
    filter_cases.append(c)


def reject(name, entry):
    try:
        ens = build(entry)
        for f in ens.filters:
            f()  # lm-eval instantiates each filter inside FilterEnsemble.apply
    except Exception as e:
        rejected.append({"name": name, "entry": entry, "error": f"{type(e).__name__}: {e}"})
        return
    raise AssertionError(f"{name}: lm-eval accepted it")


def regex(pattern, **kw):
    return {"function": "regex", "regex_pattern": pattern, **kw}


TF = {"function": "take_first"}

# ---- gsm8k (lm_eval/tasks/gsm8k/*.yaml), on realistic responses ----
gsm_resps = [
    ["Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n#### 72"],
    ["He spends 3 * 4 = $12.\n#### $12\n\nQuestion: next"],
    ["#### -1,234.50"],
    ["The total is 5 + 7 = 12 apples. So the answer is 12."],
    ["#### 3\n#### 4"],
    ["No numbers here at all."],
    ["####  42 "],
    ["It costs $1,000.00. Then 2 more, total 1002."],
    ["Answer: . , .. ,,"],
    [""],
    ["The answer is 7.5.\nThe answer is -3,"],
    ["The final answer is $18. The final answer is 9"],
]
case("gsm8k strict-match", {"name": "strict-match", "filter": [regex(r"#### (\-?[0-9\.\,]+)"), TF]}, gsm_resps)
case("gsm8k flexible-extract", {"name": "flexible-extract", "filter": [
    regex(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1), TF]}, gsm_resps)
case("gsm8k-cot strict-match", {"name": "strict-match", "filter": [
    regex(r"The answer is (\-?[0-9\.\,]+)."), TF]}, gsm_resps)
case("gsm8k-cot-llama strict-match", {"name": "strict-match", "filter": [
    regex(r"The final answer is ((-?[$0-9.,]{2,})|(-?[0-9]+))", group_select=-1), TF]}, gsm_resps)
case("regex defaults (gsm8k pattern, group 0, [invalid])", {"name": "d", "filter": [{"function": "regex"}, TF]}, gsm_resps)

sc_resps = [
    ["The answer is 5.", "The answer is 6.", "The answer is 6", "nothing", "The answer is 5", "The answer is 6."],
    ["nothing", "still nothing", "The answer is 1,000", "The answer is 1000", "x", "y"],
    ["The answer is 2", "The answer is 3", "The answer is 3", "The answer is 2", "z", "w"],
]
sc = r"The answer is (\-?[0-9\.\,]*[0-9]+)"
case("gsm8k-cot-self-consistency score-first", {"name": "score-first", "filter": [regex(sc), TF]}, sc_resps)
case("gsm8k-cot-self-consistency maj@64", {"name": "maj@64", "filter": [
    regex(sc), {"function": "majority_vote"}, TF]}, sc_resps)
case("gsm8k-cot-self-consistency maj@8 (k=4)", {"name": "maj@8", "filter": [
    {"function": "take_first_k", "k": 4}, regex(sc), {"function": "majority_vote"}, TF]}, sc_resps)
case("take_first_k only (list per doc)", [{"function": "take_first_k", "k": 2}], sc_resps)
case("take_first_k k larger than the repeats", [{"function": "take_first_k", "k": 7}], sc_resps)
case("majority_vote without take_first", [{"function": "majority_vote"}], sc_resps)
case("majority_vote tie: first seen wins", [{"function": "majority_vote"}, TF],
     [["b", "a", "a", "b"], ["x", "y", "z"], ["", " ", " "]])

# ---- group_select, groups, tuples, fallback ----
gs_resps = [["a1 b22 c333"], ["x"], ["only9"]]
for g in [0, 1, 2, -1, -2]:
    case(f"group_select {g}", [regex(r"[a-z](\d+)", group_select=g, fallback="NONE"), TF],
         [["a1 b22 c333"], ["x"], ["a1 b22 c333 d4444"]])
case("group_select out of range", [regex(r"[a-z](\d+)", group_select=5), TF], gs_resps)
case("no groups: whole matches", [regex(r"\d+", group_select=-1), TF], gs_resps)
case("two groups: first non-empty of the tuple", [regex(r"(\d+)|([a-z]+)", group_select=0), TF],
     [["x 12"], ["12 x"], ["!!"]])
case("tuple all empty -> fallback, stripped", [regex(r"(a)?(b)?", fallback="  [none]  "), TF],
     [["xyz"], [""], ["ab"]])
case("no match -> fallback, not stripped", [regex(r"(q+)", fallback="  [none]  "), TF], [["xyz"], ["qq"]])
case("match is stripped", [regex(r"answer:(.*)"), TF], [["answer:   B  \n"], ["answer:\t\n"], ["answer:\x1c\xa0C\u3000"]])
case("named groups keep Python's left-to-right order", [regex(r"(?P<letter>[a-z])(\d)|(?P<digit>\d)([a-z])"), TF],
     [["a1"], ["1a"], ["--"]])
case("named group backreference", [regex(r"(?P<q>['\"])(.*?)(?P=q)", group_select=-1), TF],
     [["say 'hi' and \"bye\""], ["'open"]])
case("numbered backreference", [regex(r"(\w)\1"), TF], [["abccd"], ["abc"]])
case("repeats: regex per response, take_first", [regex(r"(\d+)"), TF], [["no", "1"], ["2", "no"]])
case("repeats: regex per response, kept as list", [regex(r"(\d+)")], [["no", "1", "3"], ["2", "no", "x9"]])

# ---- Python re semantics that differ from .NET ----
case("$ matches before a final newline", [regex(r"(\d+)$"), TF], [["12\n"], ["12\n\n"], ["12"]])
case("\\Z is the very end", [regex(r"(\d+)\Z"), TF], [["12\n"], ["12"]])
case("(?m) ^ and $", [regex(r"(?m)^Answer: (.*)$", group_select=-1), TF],
     [["Answer: A\nAnswer: B\n"], ["Answer: C"], ["x\n"]])
case("(?m)^ after a final newline", [regex(r"(?m)^", group_select=-1, fallback="F"), TF], [["a\n"]])
case("{,n} is {0,n}", [regex(r"a{,2}", group_select=2), TF], [["aaaaa"], ["ba"]])
case("{} and {x} are literal", [regex(r"a{}b|c{x}"), TF], [["a{}b"], ["c{x}"]])
case("{,} is *", [regex(r"xa{,}y"), TF], [["xaaay"], ["xy"]])
case("empty match then a non-empty match at the same place", [regex(r"^|\w+", group_select=1), TF],
     [["foo bar"], ["x"]])
case("empty matches in findall", [regex(r"x*", group_select=-2), TF], [["axxb"], ["ab"]])
case("\\d is Unicode Nd", [regex(r"(\d+)", group_select=-1), TF], [["\u0663\u0664 and \uff11\uff12"], ["\u00b2"]])
case("\\w is L, N and _ (not Mn, not Pc)", [regex(r"\w+", group_select=-1), TF],
     [["cafe\u0301"], ["x\u00b2"], ["a\u203fb"], ["\u2160\u2161"], ["na\u00efve_caf\u00e9"], ["\u65e5\u672c\u8a9e"]])
case("\\W", [regex(r"\W+", group_select=0), TF], [["ab\u0301cd"], ["a\u00b2b c"]])
case("\\b uses Python's \\w", [regex(r"\b\w+\b", group_select=-1), TF], [["cafe\u0301"], ["a\u203fb"], ["x\u00b2"]])
case("\\B", [regex(r"\Ba", group_select=-1, fallback="F"), TF], [["aa a"], ["a\u00b2a"]])
case("\\s includes \\x1c-\\x1f", [regex(r"a\s+b"), TF], [["a\x1cb"], ["a\x1f\x1eb"], ["a\u200bb"], ["a\u3000\xa0b"]])
case("\\S", [regex(r"\S+", group_select=-1), TF], [["x\x1dy"], ["ab\x1c"]])
case("[^\\S\\n] (whitespace but newline)", [regex(r"a[^\S\n]+b"), TF], [["a \x1c\tb"], ["a\nb"]])
case("[\\w-] and [^\\W\\d]", [regex(r"[\w-]+-[^\W\d]+"), TF], [["x\u00b2-\u00e9t\u00e9"], ["a-1"]])
case("[\\D] [\\W] in a class", [regex(r"[\D]+[\W]", group_select=0), TF], [["ab12cd!"], ["123"]])
case(". is one code point", [regex(r"(.)", group_select=1), TF], [["\U0001F600b"], ["a\U0001F600"]])
case(".{2} over astral characters", [regex(r".{2}", group_select=-1), TF], [["\U0001F600\U0001F601x"], ["x\U0001F600y"]])
case("^(.)(.)$ cannot split a surrogate pair", [regex(r"^(.)(.)$", fallback="F"), TF],
     [["\U0001F600"], ["\U0001F600a"]])
case("empty matches between astral characters", [regex(r"x*", group_select=1), TF], [["\U0001F600\U0001F600"]])
case("astral literal and class range", [regex(r"[\U0001F600-\U0001F64F]+|\U0001F680+"), TF],
     [["go \U0001F600\U0001F602!"], ["\U0001F680\U0001F680\U0001F681"], ["\u263a"]])
case("negated class over astral characters", [regex(r"[^a\U0001F600]+"), TF], [["a\U0001F600\U0001F601b"], ["\U0001F600"]])
case("\\W on an emoji", [regex(r"\W"), TF], [["\U0001F600"]])
case("(?i) ASCII and Unicode", [regex(r"(?i)the answer is (\w+)"), TF], [["THE ANSWER IS Yes"], ["The Answer Is \u00c9T\u00c9"]])
case("(?i) Greek and Cyrillic", [regex(r"(?i)(\u03c3\u03bf\u03c6\u03b9\u03b1|\u043f\u0440\u0438\u0432\u0435\u0442)"), TF],
     [["\u03a3\u039f\u03a6\u0399\u0391"], ["\u041f\u0420\u0418\u0412\u0415\u0422"]])
case("(?i:...) scoped flag", [regex(r"a(?i:b)c"), TF], [["aBc"], ["ABc"], ["abC"]])
case("(?x) verbose with comments", [regex("(?x)  (\\d+)  # a number\n  \\s* [#] \\s* (\\w+) # a tag ) (\n", group_select=0), TF],
     [["12 # ab"], ["12#ab"], ["12 ab"]])
case("(?s) dot matches newline", [regex(r"(?s)start(.*)end"), TF], [["start\nA\nend"], ["startend"]])
case("dot does not match newline", [regex(r"start(.*)end"), TF], [["start\nA\nend"], ["start A end"]])
case("(?a) ASCII classes", [regex(r"(?a)\w+", group_select=-1), TF], [["caf\u00e9"], ["\u0663"]])
case("(?a:...) scoped ASCII", [regex(r"(?a:\d+)|(\w+)"), TF], [["\u0663\u0664 12"]])
case("possessive and atomic", [regex(r"\d++1|(?>a+)b|x*+y"), TF], [["1111"], ["aab"], ["xxy"]])
case("lazy quantifiers", [regex(r"<(.+?)>", group_select=-1), TF], [["<a><b>"], ["<>"]])
case("octal, hex and unicode escapes", [regex(r"\101\x42\u0043\U00000044|\0x|[\101-\103]+"), TF],
     [["ABCD"], ["\x00x"], ["CBA"]])
case("escaped punctuation and whitespace (re.escape style)", [regex("\\$\\ 1\\.0\\#\\&\\~\\\n"), TF], [["$ 1.0#&~\n"]])
case("class edge cases: ] first, - last, escapes", [regex(r"[]a-]+|[\]\\-]+|[\t\n]+"), TF], [["]a-b"], ["\\]-"], ["\t\n"]])
case("conditional group", [regex(r"(<)?(\w+)(?(1)>|$)"), TF], [["<ab>"], ["ab"], ["<ab"]])
case("named conditional group", [regex(r"(?P<o>\()?\d+(?(o)\))"), TF], [["(12)"], ["12"]])
case("lookarounds", [regex(r"(?<=\$)\d+(?=\.)|(?<!x)y(?!z)"), TF], [["cost $12."], ["xy y yz"]])
case("(?#comment)", [regex(r"a(?#ignored)b"), TF], [["ab"]])
case("acpbench mcq pattern", [regex(
    r"(((?<=[answer is ])[A-D])|([A-D]\n)|([A-D]\.)|( [A-D] )|(^[A-D]$)|(\[[A-D]\])|([A-D])|(?<=..Final Answer..: )(.*)(?=.)|(?<=..answer..: )(.*)(?=.)|(?<=..Answer..: )(.*)(?=.))",
    group_select=-1), TF],
     [["So the answer is C. Final"], ["**Final Answer**: B)."], ["D"], ["none"]])
case("regex on non-strings (after map) sees the empty string",
     [{"function": "map", "mapping_dict": {"a": 1}}, regex(r"(x?)", fallback="F")], [["a", "b"]])

# ---- other functions ----
case("lowercase", [{"function": "lowercase"}],
     [["ABC \u00c9", "\u0130stanbul", "\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.", "\u03a3", "A\u03a3\u0301 b"],
      ["\u1e9e", "\u0041\u030a", "\U00010400"]])
case("uppercase", [{"function": "uppercase"}],
     [["stra\u00dfe", "\ufb01x", "\u0149", "\u1f80", "\u0587", "\u00ff"], ["\U00010428", "\u01c6 \u01c5"]])
case("remove_whitespace (str.strip)", [{"function": "remove_whitespace"}],
     [["  a b \n", "\x1c\x1fx\x85", "\u200bx\u200b", "\xa0\u3000y\u2029", "\t"], [""]])
case("map (lm-eval's A-D to 0-3, default -1)", [
    {"function": "remove_whitespace"},
    {"function": "map", "mapping_dict": {"A": 0, "B": 1, "C": 2, "D": 3}, "default_value": -1}, TF],
     [[" A"], ["B\n"], ["E"], ["a"]])
case("map without default_value gives null", [{"function": "map", "mapping_dict": {"yes": "Y", "no": [1, 2]}}],
     [["yes", "maybe", "no"]])
case("map then take_first null", [{"function": "map", "mapping_dict": {"yes": "Y"}}, TF], [["maybe"], ["yes"]])
case("map with empty mapping_dict and object values", [{"function": "map", "mapping_dict": {}, "default_value": {"k": "v"}}],
     [["x"]])
case("map then majority_vote: 1 equals true", [
    {"function": "map", "mapping_dict": {"a": 1, "b": True, "c": 1.0, "d": "1"}}, {"function": "majority_vote"}, TF],
     [["b", "a", "d", "d"], ["d", "c", "d"]])
case("majority_vote of nulls", [{"function": "map", "mapping_dict": {}}, {"function": "majority_vote"}], [["x", "y"]])
case("empty filter list keeps the lists", [], [["a", "b"], ["c"]])
case("after take_first, a filter iterates the string's characters", [TF, {"function": "uppercase"}],
     [["ab\U0001F600"], [""]])
case("take_first twice: first character", [TF, TF], [["xyz"], ["\U0001F600z"]])
case("take_first twice on an empty string", [TF, TF], [["", "a"]])
case("take_first then take_first_k slices the string", [TF, {"function": "take_first_k", "k": 2}], [["abc"], ["abc"]])
case("take_first then majority_vote counts characters", [TF, {"function": "majority_vote"}], [["abcbc"]])
case("lowercase of a non-string fails", [{"function": "map", "mapping_dict": {"a": 1}}, {"function": "lowercase"}], [["a"]])
case("majority_vote of lists fails", [{"function": "map", "mapping_dict": {"a": [1]}}, {"function": "majority_vote"}], [["a"]])

# ---- multi_choice_regex (gpqa / mmlu flan cot configs) ----
mc_docs = [
    {"choices": ["Paris", "London", "Rome", "Berlin"]},
    {"choices": ["Paris", "London", "Rome", "Berlin"]},
    {"choices": ["Paris", "London", "Rome", "Berlin"]},
    {"choices": ["Paris", "London", "Rome", "Berlin"]},
    {"choices": ["  4.5% ", "(c)", "\u201cyes\u201d", "New-York"]},
    {"choices": ["  4.5% ", "(c)", "\u201cyes\u201d", "New-York"]},
    {"choices": ["  4.5% ", "(c)", "\u201cyes\u201d", "New-York"]},
    {"choices": ["Paris", "London", "Rome", "Berlin"]},
]
mc_resps = [
    ["I think (B) is right, no wait (C)."],
    ["The capital is rome!"],
    ["Answer: D"],
    ["nothing useful"],
    ["it is 45 percent... no: 4.5"],
    ["NEWYORK for sure"],
    ["I say YES."],
    ["(  )"],
]
gpqa = {"function": "multi_choice_regex", "group_select": -1, "ignore_case": True, "ignore_punctuation": True,
        "regex_pattern": "(\\([A-Z]\\))"}
case("multi_choice_regex (gpqa cot)", {"name": "flexible-extract", "filter": [gpqa, TF]}, mc_resps, mc_docs)
case("multi_choice_regex (mmlu flan generative, group 0)", {"name": "flexible-extract", "filter": [
    {"function": "multi_choice_regex", "group_select": 0, "regex_pattern": "(\\([A-Z]\\))",
     "ignore_case": True, "ignore_punctuation": True}, TF]}, mc_resps, mc_docs)
case("multi_choice_regex case and punctuation kept", {"name": "m", "filter": [
    {"function": "multi_choice_regex", "regex_pattern": "(\\([A-Z]\\))", "fallback": "??"}, TF]}, mc_resps, mc_docs)
case("multi_choice_regex regexes_to_ignore", {"name": "m", "filter": [
    {"function": "multi_choice_regex", "regex_pattern": "X(\\d)", "regexes_to_ignore": ["\\s+", "^the "],
     "ignore_case": True}]},
     [["The London", "x1", "X2", "the paris"], ["ROME", "nope"]],
     [{"choices": ["the Paris", "Lon don", "Rome"]}, {"choices": ["Paris", "Rome"]}])
case("multi_choice_regex tuples", {"name": "m", "filter": [
    {"function": "multi_choice_regex", "regex_pattern": "([A-D])\\)|\\(([A-D])", "group_select": -1}, TF]},
     [["A) or (B"], ["C)"]], [{"choices": ["x", "y"]}, {"choices": ["x", "y"]}])

# ---- every regex_pattern in lm-eval's task YAMLs, on answer-like responses ----
def task_yaml_values():
    """Unique regex_pattern strings and regexes_to_ignore entries of lm_eval/tasks (YAML as lm-eval reads it;
    !function tags are not followed)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    files = subprocess.run(["git", "grep", "-l", "-E", "regex_pattern|regexes_to_ignore", COMMIT, "--", "lm_eval/tasks"],
                           cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    patterns, ignores = {}, {}

    def walk(o, path):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "regex_pattern" and isinstance(v, str):
                    patterns.setdefault(v, path)
                if k == "regexes_to_ignore" and isinstance(v, list):
                    for x in v:
                        if isinstance(x, str):
                            ignores.setdefault(x, path)
                walk(v, path)
        elif isinstance(o, list):
            for x in o:
                walk(x, path)

    for f in sorted(files):
        f = f.split(":", 1)[1]
        if not (f.endswith(".yaml") or f.endswith("_yaml")):  # task configs only (not README.md, utils.py)
            continue
        text = subprocess.run(["git", "show", f"{COMMIT}:{f}"], cwd=REPO, check=True, capture_output=True, text=True).stdout
        walk(yaml.load(text, Loader=Loader), f)
    return sorted(patterns.items()), sorted(ignores.items())


task_patterns, task_ignores = task_yaml_values()
task_responses = [
    "The answer is (B).", "the answer is C", "The best answer is D", "Answer: A\nExplanation: because.",
    "**Final Answer**: B.", "The final answer is 42.", "so 3 + 4 = 7\n#### 1,234", "\uc815\ub2f5\uc740 (B) \uc785\ub2c8\ub2e4.",
    "Cevap C \u015f\u0131kk\u0131d\u0131r", "Yes, it is valid.", "\\boxed{A}", "La respuesta es (C)",
    "Erantzuna 1.234 da", "  C  \n", "", "no answer \U0001F600", "The answer: True.", "False\nTrue",
    "A man and a woman", "[ ( < { } > ) ]",
]
task_pattern_cases = []
for pattern, source in task_patterns:
    for g in (0, -1):
        entry = {"name": "t", "filter": [regex(pattern, group_select=g)]}
        c = {"pattern": pattern, "source": source, "group_select": g}
        try:
            c["expected"] = run_filter(entry, [task_responses], [{}])[0]
        except Exception as e:
            c["error"] = f"{type(e).__name__}: {e}"
        task_pattern_cases.append(c)

# ---- configs lm-eval rejects ----
reject("unknown function", {"name": "x", "filter": [{"function": "no_such_filter"}]})
reject("unknown regex argument", {"name": "x", "filter": [{"function": "regex", "pattern": "a"}]})
reject("regex does not compile", {"name": "x", "filter": [regex("(a")]})
reject("take_first with an argument", {"name": "x", "filter": [{"function": "take_first", "k": 1}]})
reject("take_first_k without k", {"name": "x", "filter": [{"function": "take_first_k"}]})
reject("map with a list", {"name": "x", "filter": [{"function": "map", "mapping_dict": ["a"]}]})
reject("lowercase with an argument", {"name": "x", "filter": [{"function": "lowercase", "x": 1}]})
reject("regex bad escape", {"name": "x", "filter": [regex(r"\e")]})
reject("regex global flag not at start", {"name": "x", "filter": [regex(r"a(?i)b")]})
reject("regex (?<name>) is not Python", {"name": "x", "filter": [regex(r"(?<n>a)")]})
reject("regex unknown group reference", {"name": "x", "filter": [regex(r"(a)\2")]})
reject("regex nothing to repeat", {"name": "x", "filter": [regex(r"^*a")]})
reject("regex multiple repeat", {"name": "x", "filter": [regex(r"a**")]})
reject("regex bad range", {"name": "x", "filter": [regex(r"[z-a]")]})
reject("regex (?P=name) unknown", {"name": "x", "filter": [regex(r"(?P<a>x)(?P=b)")]})
reject("regex min > max", {"name": "x", "filter": [regex(r"a{3,2}")]})
reject("regex unterminated class", {"name": "x", "filter": [regex(r"[abc")]})
reject("regex L flag", {"name": "x", "filter": [regex(r"(?L)a")]})
reject("multi_choice_regex unknown argument", {"name": "x", "filter": [{"function": "multi_choice_regex", "k": 1}]})

# ---- exact_match ----
exact_match = metrics.exact_match_fn
pairs = [
    ("The Answer", "the answer"),
    ("42.", "42"),
    ("$1,234", "1234"),
    ("abc123", "ABC"),
    ("  x", "x"),
    ("x", "x"),
    ("", ""),
    ("Hello, World!", "hello world"),
    ("\u0130", "i"),                       # numpy lowers into a fixed-width array: 'i̇' is cut to 'i'
    ("\u0130x", "i\u0307x"),
    ("\u039f\u0394\u039f\u03a3", "\u03bf\u03b4\u03bf\u03c2"),  # final sigma
    ("Stra\u00dfe", "strasse"),
    ("\u201cquoted\u201d", "quoted"),       # only ASCII punctuation is removed
    ("\u0663", "3"),                       # only ASCII digits are removed
    ("a\x00", "a"),                        # numpy drops trailing NULs
    ("\u0130\x00", "i\u0307"),              # ... but the array is as wide as the string with them
    ("The answer is 12.", "12"),
    ("answer: B", "B"),
]
regex_sets = [None, ["\\$", ","], ["(?i)^the answer is\\s*", "\\.$"], ["^answer:\\s*", "\\b\\w\\b"], ["\\d+"], []]
em_cases = []
for pred, ref in pairs:
    for regexes in regex_sets:
        for ic in (False, True):
            for ip in (False, True):
                for inum in (False, True):
                    kwargs = dict(ignore_case=ic, ignore_punctuation=ip, ignore_numbers=inum)
                    if regexes is not None:
                        kwargs["regexes_to_ignore"] = regexes
                    v = exact_match(references=[ref], predictions=[pred], **kwargs)["exact_match"]
                    em_cases.append({"prediction": pred, "reference": ref, "ignore_case": ic, "ignore_punctuation": ip,
                                     "ignore_numbers": inum, "regexes_to_ignore": regexes, "expected": float(v)})

task_pairs = [("The answer", "answer"), ("the cat ", "cat"), ("a\n\"b\"", "ab"), ("$1,000.", "1000"),
              ("x #### 12", "12"), ("\\frac{1}{2}", "frac{1}{2}")]
for pattern, source in task_ignores:
    for pred, ref in task_pairs:
        for on in (False, True):
            v = exact_match(references=[ref], predictions=[pred], regexes_to_ignore=[pattern], ignore_case=on,
                            ignore_punctuation=on, ignore_numbers=False)["exact_match"]
            em_cases.append({"prediction": pred, "reference": ref, "ignore_case": on, "ignore_punctuation": on,
                             "ignore_numbers": False, "regexes_to_ignore": [pattern], "expected": float(v)})

# ---- mean / mean_stderr (held-out inputs) ----
rng = random.Random(20260821)
mean_inputs = [
    ("empty", []),
    ("one", [1.0]),
    ("two", [0.0, 1.0]),
    ("all ones", [1.0] * 5),
    ("binary 10", [float(rng.random() < 0.5) for _ in range(10)]),
    ("binary 1319 (gsm8k size)", [float(rng.random() < 0.37) for _ in range(1319)]),
    ("floats 37", [rng.uniform(-3, 3) for _ in range(37)]),
    ("tenths", [0.1 * i for i in range(11)]),
    ("cancellation", [1e16, 1.0, -1e16, 3.0]),
    ("tiny spread", [1.0 + i * 1e-12 for i in range(9)]),
]
mean_cases = []
for name, values in mean_inputs:
    c = {"name": name, "values": values}
    try:
        c["mean"] = metrics.mean(values)
    except ZeroDivisionError as e:
        c["mean_error"] = f"ZeroDivisionError: {e}"
    # lm-eval: stderr_fn(items) if (stderr_fn and len(items) > 1) else "N/A"  (evaluator_utils)
    c["mean_stderr"] = metrics.mean_stderr(values) if len(values) > 1 else None
    if len(values) == 1:
        try:
            metrics.mean_stderr(values)
            raise AssertionError("expected a division by zero")
        except ZeroDivisionError:
            pass
    mean_cases.append(c)

golden = {
    "lm_eval_commit": COMMIT,
    "python": sys.version.split()[0],
    "numpy": __import__("numpy").__version__,
    "unicode": unicodedata.unidata_version,
    "filter_cases": filter_cases,
    "rejected_configs": rejected,
    "task_responses": task_responses,
    "task_pattern_cases": task_pattern_cases,
    "exact_match_cases": em_cases,
    "mean_cases": mean_cases,
    "python_isspace": [c for c in range(sys.maxunicode + 1) if chr(c).isspace()],
}
casing = [[c, chr(c).lower(), chr(c).upper()] for c in range(sys.maxunicode + 1)
          if chr(c).lower() != chr(c) or chr(c).upper() != chr(c)]



def dump(obj):
    """JSON with one line per list element at the top two levels (small diffs, readable)."""
    parts = []
    for k, v in obj.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            body = ",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in v)
            parts.append(f" {json.dumps(k)}: [\n{body}\n ]")
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


os.makedirs(OUT, exist_ok=True)
with open(os.path.join(OUT, "golden.json"), "w", encoding="utf-8") as f:
    f.write(dump(golden))
with open(os.path.join(OUT, "casing.json"), "w", encoding="utf-8") as f:
    f.write("[\n" + ",\n".join(json.dumps(e, ensure_ascii=False) for e in casing) + "\n]\n")
print(f"{len(filter_cases)} filter cases ({sum('error' in c for c in filter_cases)} fail in lm-eval), "
      f"{len(task_pattern_cases)} task-pattern cases ({len(task_patterns)} patterns), "
      f"{len(rejected)} rejected configs, {len(em_cases)} exact_match cases, {len(mean_cases)} mean cases, "
      f"{len(casing)} casing entries")
