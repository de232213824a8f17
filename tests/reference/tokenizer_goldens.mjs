// Dev-time only: writes the tokenizer goldens that tests/PostTrain.Tests compares against, using
// Hugging Face `tokenizers` (Rust) through the npm addon @anush008/tokenizers. Tests never run Node.
//
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @anush008/tokenizers
//   NODE_PATH=/tmp/tokref/node_modules node tests/reference/tokenizer_goldens.mjs
//
// For each model in tests/PostTrain.Tests/Fixtures/tokenizers/ it writes goldens.<model>.json:
// cases (text, ids, ids with add_special_tokens, UTF-16 offsets, decodes with and without
// skip_special_tokens) and decode_cases (random id lists, exercising invalid UTF-8 on decode).
// "llama3-template" is llama3 with the post_processor of Meta's official Llama 3 tokenizer.json
// (Sequence[ByteLevel, TemplateProcessing adding <|begin_of_text|>]); the tests build it the same way.
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { fileURLToPath } from "node:url";

const require = createRequire(process.env.NODE_PATH ? path.join(process.env.NODE_PATH, "x.js") : import.meta.url);
const { Tokenizer } = require("@anush008/tokenizers");

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, "..", "PostTrain.Tests", "Fixtures", "tokenizers");

export const llama3TemplatePostProcessor = {
  type: "Sequence",
  processors: [
    { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [128000], tokens: ["<|begin_of_text|>"] } },
    },
  ],
};

function loadTokenizerJson(model) {
  const base = model === "llama3-template" ? "llama3" : model;
  const json = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(fixtures, base, "tokenizer.json.gz"))).toString("utf8"));
  if (model === "llama3-template") json.post_processor = llama3TemplatePostProcessor;
  const file = path.join(os.tmpdir(), `posttrain-goldens-${model}.json`);
  fs.writeFileSync(file, JSON.stringify(json));
  return Tokenizer.fromFile(file);
}

// ---------------------------------------------------------------- corpus
const fixed = [
  "", " ", "  ", "\n", "\t", "\r\n", " \n ", "a", "Hello, world!", "Hello world ", " Hello", "  leading and trailing  ",
  "The quick brown fox jumps over the lazy dog. It's 3:45pm; don't forget the 2nd meeting!",
  "I've been there. You're right. She'll go. He'd know. I'm here. It's John's.",
  "IT'S JOHN'S. YOU'RE. I'VE. WE'LL. HE'D. I'M. DON'T. 'S 'T 'Re 'rE 'LL 'Ll 'ſ 'K",
  "'s't're've'm'll'd 'x '' ''' 'sup",
  "a'ſx 'ſup x'Sup y'KELVIN", // onig's (?i:'s) matches 'ſ (LONG S case-folds to s)
  "def f(x):\n\treturn x**2  # square\n\n\nclass A:\n    pass\n",
  "function add(a, b) {\n  return a + b;\n}\n\n// comment\t\twith tabs\nconst x = [1, 2, 3].map(v => v * 2);",
  "#include <stdio.h>\nint main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
  "fn main() { let v: Vec<u8> = vec![0xFF; 16]; println!(\"{:?}\", v); }",
  "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
  "    indented with spaces\n\t\tand tabs\n  \n\n\n   \t \n",
  "line1\r\nline2\r\n\r\nline4\r\r\n\n\r",
  "trailing spaces   \nand more     ", "     ", "\t\t\t", "a  b   c    d",
  "1234567890 12 123 1234 12345 3.14159 -42 1,000,000 0x1F 1e-9",
  "٠١٢٣٤٥٦٧٨٩ ０１２３ ²³¹ ½ Ⅻ ⑩",
  "你好，世界！这是一个测试。中文文本没有空格。",
  "日本語のテキスト、ひらがなとカタカナ。東京タワー",
  "한국어 텍스트입니다. 안녕하세요!",
  "مرحبا بالعالم، هذا اختبار.",
  "नमस्ते दुनिया, यह एक परीक्षण है।",
  "Привет, мир! Ελληνικά κείμενα.",
  "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇺🇸🇯🇵🇩🇪 ❤️ ✨",
  "combining: e\u0301 a\u0300\u0316 o\u0308\u0304 n\u0303 \u0301leading mark",
  "NFC: \u00e9t\u00e9 caf\u00e9 \u00c5ngstr\u00f6m", "NFD: e\u0301te\u0301 cafe\u0301 A\u030angstro\u0308m",
  "Hangul jamo: \u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af",
  "Å Ω K ﬁ ﬃ ｆｕｌｌ ① ㎏ ẛ̣ ḍ̇ \u0958 \u2126",
  "astral: 𝐀𝑥 𝔘𝔫𝔦 𝒜 𠀀𠀁 𐐀𐐨 𝟘𝟙 𝐀b c𝑥d",
  "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
  "text<|endoftext|>more<|end_of_text|> <think>\nreasoning\n</think>\n\nanswer",
  "<|im_start|><|im_start|> <|im_end |> <|im_start <|unknown|>",
  "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
  "a".repeat(300), "supercalifragilisticexpialidocious".repeat(20), "x".repeat(1000) + " " + "😀".repeat(50),
  "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
  "URL: https://example.com/path?q=1&r=two#frag user@example.org",
  "\u00a0nbsp\u3000ideographic\u2009thin\u200bzwsp\u200dzwj\ufeffbom",
  "mixed: abc123def 中文abc ab中文 a😀b 1😀2",
  "\u0085next line\u2028line sep\u2029para",
  "!!! ??? ... --- *** ### @@@ ~~~ ``` $$$ %%%\n",
  "tab\tseparated\tvalues\n1\t2\t3\n",
  "{\"key\": \"value\", \"n\": [1, 2.5, null, true]}",
  "\uFFFD replacement \uFFFF nonchar",
];

function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pools = [
  () => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
  () => "0123456789",
  () => " \t\n\r.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`",
  () => ["'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'LL", "'d", "'D", "'ſ"],
  () => [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\u00a0", "\u3000", "\u2009", "\u0085", "\u200b"],
  () => "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
  () => "あいうえおかきくけこアイウエオカキクケコ",
  () => "가나다라마바사아자차카타파하한국어",
  () => "\u1100\u1161\u11a8\u1112\u1173",
  () => "مرحبابالعالم",
  () => "नमस्तेदुनियाक़",
  () => "αβγδεЖЗИЙКЛ",
  () => "\u0300\u0301\u0302\u0308\u0316\u0323\u0327\u0338",
  () => ["😀", "👍🏽", "👨‍👩‍👧", "🏳️‍🌈", "🇺🇸", "❤️", "✨", "🤖", "\u200d", "\ufe0f"],
  () => ["𝐀", "𝑥", "𝔘", "𠀀", "𠀁", "𐐀", "𐐨", "𝟘", "𝒜", "\u{1F600}", "\u{10FFFD}", "\u{E0041}"],
  () => ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<think>", "</think>", "<|im_", "|>"],
  () => ["é", "e\u0301", "Å", "A\u030a", "ﬁ", "Ω", "\u0958", "\u0f73", "\u0f71\u0f72"],
];

function fuzzStrings(count, seed) {
  const rnd = mulberry32(seed);
  const out = [];
  for (let n = 0; n < count; n++) {
    const len = 1 + Math.floor(rnd() * 40);
    let s = "";
    for (let i = 0; i < len; i++) {
      const pool = pools[Math.floor(rnd() * pools.length)]();
      const items = typeof pool === "string" ? Array.from(pool) : pool;
      const pick = items[Math.floor(rnd() * items.length)];
      s += rnd() < 0.3 ? pick.repeat(1 + Math.floor(rnd() * 4)) : pick;
    }
    out.push(s);
  }
  return out;
}

// Random code points from every plane in use (unassigned ones and Unicode-version edge cases too),
// mixed with spaces, to catch differences in character tables.
function wideFuzzStrings(count, seed) {
  const rnd = mulberry32(seed);
  const out = [];
  for (let n = 0; n < count; n++) {
    const len = 1 + Math.floor(rnd() * 24);
    let s = "";
    for (let i = 0; i < len; i++) {
      const r = rnd();
      let cp;
      if (r < 0.15) cp = 0x20;
      else if (r < 0.6) cp = Math.floor(rnd() * 0x10000);
      else if (r < 0.85) cp = 0x10000 + Math.floor(rnd() * 0x10000);
      else cp = 0x20000 + Math.floor(rnd() * 0x20000);
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0x41;
      s += String.fromCodePoint(cp);
    }
    out.push(s);
  }
  return out;
}

function toUtf16Offsets(text, offsets) {
  // HF gives offsets in code points; the C# API uses UTF-16 units.
  const map = [0];
  let u = 0;
  for (const ch of text) { u += ch.length; map.push(u); }
  return offsets.map(([a, b]) => [map[a], map[b]]);
}

async function goldensFor(model) {
  const tok = loadTokenizerJson(model);
  const texts = [...fixed, ...fuzzStrings(400, model === "qwen3" ? 1 : 2), ...wideFuzzStrings(200, model === "qwen3" ? 3 : 4)];
  const cases = [];
  for (const text of texts) {
    const e = await tok.encode(text, null, { addSpecialTokens: false });
    const es = await tok.encode(text, null, { addSpecialTokens: true });
    const ids = e.getIds();
    const idsSpecial = es.getIds();
    cases.push({
      text,
      ids,
      tokens: e.getTokens(),
      offsets: toUtf16Offsets(text, e.getOffsets()),
      ids_special: idsSpecial,
      offsets_special: toUtf16Offsets(text, es.getOffsets()),
      decoded: await tok.decode(idsSpecial, false),
      decoded_skip: await tok.decode(idsSpecial, true),
    });
  }
  const rnd = mulberry32(99);
  const vocab = tok.getVocabSize(true);
  const decodeCases = [];
  for (let n = 0; n < 200; n++) {
    const len = 1 + Math.floor(rnd() * 12);
    const ids = [];
    for (let i = 0; i < len; i++) {
      const r = rnd();
      // mostly single-byte tokens (to split UTF-8 sequences), some anywhere, some added tokens
      ids.push(r < 0.5 ? Math.floor(rnd() * 256) : r < 0.85 ? Math.floor(rnd() * vocab) : vocab - 1 - Math.floor(rnd() * 20));
    }
    decodeCases.push({ ids, text: await tok.decode(ids, false), text_skip: await tok.decode(ids, true) });
  }
  return { model, vocab_size: vocab, cases, decode_cases: decodeCases };
}

for (const model of ["qwen3", "llama3", "llama3-template"]) {
  const g = await goldensFor(model);
  const out = path.join(fixtures, `goldens.${model}.json`);
  fs.writeFileSync(out, JSON.stringify(g));
  console.log(`${out}: ${g.cases.length} strings, ${g.decode_cases.length} decode cases`);
}
