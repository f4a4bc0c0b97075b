// Peer speeds on the same text file: Hugging Face tokenizers (npm, native) with the given
// tokenizer.json files, and tiktoken (npm, WASM) cl100k_base / o200k_base encode_ordinary.
// usage: node bench_peers.js TEXT_FILE TOKENIZER_JSON...
// KF_TIKTOKEN=enc1,enc2 picks the tiktoken encodings (default both; empty: none).
'use strict';
const fs = require('fs');
const path = require('path');
const nm = path.join(__dirname, 'node_modules');
const { Tokenizer } = require(path.join(nm, 'tokenizers'));
const { get_encoding } = require(path.join(nm, 'tiktoken'));
async function main() {
  const [file, ...toks] = process.argv.slice(2);
  if (!file) { console.error('usage: node bench_peers.js TEXT_FILE TOKENIZER_JSON...'); process.exit(2); }
  const bytes = fs.readFileSync(file);
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  const mb = bytes.length / 1e6;
  const time = async (f) => { const t0 = process.hrtime.bigint(); const n = await f(); return [n, Number(process.hrtime.bigint() - t0) / 1e9]; };
  for (const t of toks) {
    const tok = Tokenizer.fromFile(t);
    const [n, s] = await time(async () => (await tok.encode(text, null, { addSpecialTokens: false })).getIds().length);
    console.log(`HF tokenizers ${path.basename(path.dirname(path.dirname(t)))}: ${mb.toFixed(1)} MB, ${n} tokens, ${(mb / s).toFixed(2)} MB/s`);
  }
  const encs = process.env.KF_TIKTOKEN === undefined ? ['cl100k_base', 'o200k_base']
    : process.env.KF_TIKTOKEN.split(',').filter((x) => x);
  for (const e of encs) {
    const enc = get_encoding(e);
    const [n, s] = await time(async () => enc.encode_ordinary(text).length);
    console.log(`tiktoken ${e}: ${mb.toFixed(1)} MB, ${n} tokens, ${(mb / s).toFixed(2)} MB/s`);
    enc.free();
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
