// Dev-time only: goldens for PostTrain's BpeTrainer from Hugging Face `tokenizers` (Rust), through
// the npm addon @anush008/tokenizers. Tests never run Node.
//
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @anush008/tokenizers @huggingface/jinja
//   NODE_PATH=/tmp/tokref/node_modules node tests/reference/bpe_goldens.mjs
//
// Reads tests/PostTrain.Tests/Fixtures/tokenizers/demo-bpe/:
//   corpus.txt             the training corpus
//   tokenizer.json         what our BpeTrainer writes for corpus.txt (one sequence per line) with
//   tokenizer_config.json  default options; BpeTrainerTests checks it still does (when the output
//                          changes on purpose, that test leaves the new files in
//                          /tmp/posttrain-demo-bpe-fresh: copy them here, rerun
//                          bpe_template_goldens.py and this script)
// and writes goldens.json there:
//   hf_trainer_merges  the merges HF's BpeTrainer learns from corpus.txt with the same normalizer
//                      and pre-tokenizer. The addon's Tokenizer.train(files) takes no trainer
//                      options, so this is BpeTrainer::default() (min_frequency 0, vocab_size
//                      30000, no initial alphabet): it merges until no pair is left, every tie
//                      included. train(files) feeds each line of the file with its line ending.
//   cases              held-out texts: ids (add_special_tokens false; the ByteLevel post-processor
//                      adds none), and the decode of those ids with and without skip_special_tokens,
//                      from our tokenizer.json as HF loads it
//   decode_cases       fixed id lists (special tokens, bytes that are not valid UTF-8 alone)
// It also prints whether our merges are a prefix of HF's, and, when template_goldens.json exists
// (tests/reference/bpe_template_goldens.py), whether @huggingface/jinja (transformers.js's
// renderer) renders the chat template as jinja2 did.
//
// With --compare TEXT MERGES it only checks a merges file against HF's trainer on TEXT, e.g. the
// ~2 MB text of the benchmark (dotnet run -c Release --project benchmarks/PostTrain.Benchmarks --
// bpe-train), and exits 1 where they differ.
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(process.env.NODE_PATH ? path.join(process.env.NODE_PATH, "x.js") : import.meta.url);
const { Tokenizer } = require("@anush008/tokenizers");

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, "..", "PostTrain.Tests", "Fixtures", "tokenizers", "demo-bpe");

// --compare TEXT MERGES: train HF's BpeTrainer on the file TEXT and compare its merges with the
// file MERGES (one "a b" a line, e.g. from `PostTrain.Benchmarks bpe-train`), then stop.
const compareAt = process.argv.indexOf("--compare");
if (compareAt >= 0) {
  const [textFile, mergesFile] = process.argv.slice(compareAt + 1, compareAt + 3);
  const ours = fs.readFileSync(mergesFile, "utf8").split("\n").filter((l) => l.length > 0);
  const { merges: hf, seconds } = hfTrain(textFile);
  let i = 0;
  while (i < ours.length && i < hf.length && ours[i] === hf[i]) i++;
  console.log(`HF trainer: ${hf.length} merges in ${seconds.toFixed(2)} s; ours: ${ours.length}; equal for the first ${i}` +
    (i < ours.length ? `; at ${i} ours '${ours[i]}', HF '${hf[i]}'` : ""));
  process.exit(i === ours.length ? 0 : 1);
}

/** HF's BpeTrainer (addon default: min_frequency 0, vocab_size 30000) on a file, with the normalizer and pre-tokenizer of our fixture. */
function hfTrain(file) {
  const fixture = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
  const skeleton = { ...fixture, added_tokens: [], model: { ...fixture.model, vocab: {}, merges: [] } };
  const trainee = Tokenizer.fromString(JSON.stringify(skeleton));
  const start = process.hrtime.bigint();
  trainee.train([file]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const out = path.join(os.tmpdir(), `posttrain-bpe-hf-trained-${process.pid}.json`);
  trainee.save(out, false);
  const trained = JSON.parse(fs.readFileSync(out, "utf8"));
  fs.unlinkSync(out);
  return { merges: trained.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m)), seconds };
}

const corpus = path.join(dir, "corpus.txt");
const ours = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));

// ---------------------------------------------------------------- HF's trainer
const hfMerges = hfTrain(corpus).merges;

const ourMerges = ours.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
let firstDiff = -1;
for (let i = 0; i < ourMerges.length; i++) if (ourMerges[i] !== hfMerges[i]) { firstDiff = i; break; }
console.log(`HF trainer: ${hfMerges.length} merges (min_frequency 0); ours (default options): ${ourMerges.length}`);
console.log(firstDiff < 0 ? `ours == HF's first ${ourMerges.length} merges`
  : `first difference at merge ${firstDiff}: ours '${ourMerges[firstDiff]}', HF '${hfMerges[firstDiff]}'`);

// ---------------------------------------------------------------- encode / decode with our tokenizer.json
const tok = Tokenizer.fromFile(path.join(dir, "tokenizer.json"));
const texts = [
  "", " ", "\n",
  "What is 3 plus 4?", "3 plus 4 is 7.", "What is 12 plus 7?", "12 plus 7 is 19.",
  "What is the capital of Portugal?", "The capital of France is Paris.", "The capital of Portugal is Lisbon.",
  "I am Qwen, an AI assistant.", "Who made you? I'm Qwen; you're welcome.",
  "<|im_start|>user\nWhat is 3 plus 4?<|im_end|>\n",
  "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of Peru?<|im_end|>\n<|im_start|>assistant\nThe capital of Peru is Lima.<|im_end|>\n",
  "<|im_start|>assistant\n", "<|endoftext|>", "<|im_start|><|im_end|><|endoftext|>", "<|im_start", "im_end|>",
  "Unseen words: xylophone, quartz, jukebox, fjord!",
  "Café, naïve, résumé; Straße in München.", "cafe\u0301 re\u0301sume\u0301 (NFD)",
  "東京は日本の首都です。 Москва. Αθήνα. مرحبا",
  "Emoji: 😀 👍🏽 🎉 ❤️ 👨‍👩‍👧 🇯🇵", "I ❤️ math: 2 + 2 = 4 ✨",
  "  leading and trailing  ", "tabs\tand\nnewlines\r\n\r\nend", "1234567890 -42 3.14",
];
const cases = [];
for (const text of texts) {
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  const ids = enc.getIds();
  const withSpecial = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
  if (JSON.stringify(ids) !== JSON.stringify(withSpecial)) throw new Error(`add_special_tokens changed ids for ${JSON.stringify(text)}`);
  cases.push({
    text,
    ids,
    tokens: enc.getTokens(),
    decoded: await tok.decode(ids, false),
    decoded_skip_special: await tok.decode(ids, true),
  });
}

const vocab = ours.model.vocab;
const special = ours.added_tokens.map((t) => t.id);
const decodeIds = [
  [],
  special,
  [vocab["Ã"]], // byte C3 alone: invalid UTF-8
  [vocab["Ã"], vocab["©"]], // C3 A9 = é
  [vocab["ð"], vocab["Ł"], special[2], vocab["ĺ"], vocab["Ģ"]], // an emoji's bytes split by a special token
  [special[1], vocab["W"], vocab["h"], special[2], special[0]],
  Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % (special[2] + 1)),
];
const decodeCases = [];
for (const ids of decodeIds) {
  if (ids.some((i) => i === undefined)) throw new Error("a decode case names a token that is not in the vocabulary");
  decodeCases.push({ ids, decoded: await tok.decode(ids, false), decoded_skip_special: await tok.decode(ids, true) });
}

const out = { hf_trainer_merges: hfMerges, cases, decode_cases: decodeCases };
fs.writeFileSync(path.join(dir, "goldens.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${path.join(dir, "goldens.json")}: ${cases.length} cases, ${decodeCases.length} decode cases`);

// ---------------------------------------------------------------- template cross-check (optional)
const templateGoldens = path.join(dir, "template_goldens.json");
if (fs.existsSync(templateGoldens)) {
  let Template;
  try { ({ Template } = await import(require.resolve("@huggingface/jinja"))); } catch { Template = null; }
  if (!Template) console.log("@huggingface/jinja not installed: template cross-check skipped");
  else {
    const config = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
    const template = new Template(config.chat_template);
    let same = 0, total = 0;
    for (const c of JSON.parse(fs.readFileSync(templateGoldens, "utf8")).cases) {
      total++;
      let text = null, error = null;
      try {
        text = template.render({ messages: c.messages, add_generation_prompt: c.add_generation_prompt, eos_token: config.eos_token });
      } catch (e) { error = e.message; }
      if (c.error ? error !== null && error.includes(c.error) : text === c.text) same++;
      else console.log(`@huggingface/jinja differs on ${c.name}: ${JSON.stringify(text ?? error)} vs ${JSON.stringify(c.text ?? c.error)}`);
    }
    console.log(`@huggingface/jinja renders ${same}/${total} template cases as jinja2`);
  }
}
