// Dev-time only: encode throughput of Hugging Face tokenizers (Rust, via @anush008/tokenizers) on
// the text that `dotnet run -c Release --project benchmarks/PostTrain.Benchmarks -- tokenizer`
// writes, in the same 4096-char chunks (one encode at a time, awaited: single-threaded).
//
//   NODE_PATH=/tmp/tokref/node_modules node tests/reference/tokenizer_bench.mjs [TEXT_FILE] [PASSES]
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

const textFile = process.argv[2] ?? path.join(os.tmpdir(), "posttrain-tokenizer-bench.txt");
const passes = Number(process.argv[3] ?? 3);
const text = fs.readFileSync(textFile, "utf8");
const bytes = Buffer.byteLength(text, "utf8");
const CHUNK = 4096;
const chunks = [];
for (let i = 0; i < text.length;) {
  let end = Math.min(i + CHUNK, text.length);
  const c = text.charCodeAt(end - 1);
  if (end < text.length && c >= 0xd800 && c <= 0xdbff) end--;
  chunks.push(text.slice(i, end));
  i = end;
}
const result = { text_file: textFile, text_mb: +(bytes / 1e6).toFixed(2), chunks: chunks.length, chunk_chars: CHUNK, threads: 1 };
for (const model of ["qwen3", "llama3"]) {
  const json = zlib.gunzipSync(fs.readFileSync(path.join(fixtures, model, "tokenizer.json.gz")));
  const file = path.join(os.tmpdir(), `posttrain-bench-hf-${model}.json`);
  fs.writeFileSync(file, json);
  const tok = Tokenizer.fromFile(file);
  for (let i = 0; i < Math.min(chunks.length, 250); i++) await tok.encode(chunks[i], null, { addSpecialTokens: false });
  const times = [];
  let tokens = 0;
  for (let p = 0; p < passes; p++) {
    tokens = 0;
    const t0 = process.hrtime.bigint();
    for (const c of chunks) tokens += (await tok.encode(c, null, { addSpecialTokens: false })).getLength();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  result[model] = {
    tokens, best_s: +times[0].toFixed(3), median_s: +med.toFixed(3),
    mb_per_s_best: +(bytes / 1e6 / times[0]).toFixed(2), mb_per_s_median: +(bytes / 1e6 / med).toFixed(2),
  };
}
console.log(JSON.stringify(result, null, 2));
