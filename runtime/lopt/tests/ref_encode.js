// Reference ids for the exactness test: Hugging Face `tokenizers` (npm, native Rust via N-API).
// usage: node ref_encode.js CORPUS TOKENIZER_JSON OUT.u32 [TOKENIZER_JSON OUT.u32 ...]
// The corpus bytes become a JS string with the WHATWG UTF-8 decoder (TextDecoder, which replaces
// each maximal invalid subpart with U+FFFD; ignoreBOM keeps a leading U+FEFF as text), i.e. what a
// JavaScript caller of the reference passes. encode(..., addSpecialTokens: false); ids are written
// as little-endian uint32.
'use strict';
const fs = require('fs');
const path = require('path');
let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(__dirname, '..', 'node_modules', 'tokenizers')));
} catch (e) {
  console.error('ref_encode: cannot load the npm package "tokenizers" (run runtime/lopt/setup.sh): ' + e.message);
  process.exit(1);
}
async function main() {
  const args = process.argv.slice(2);
  if (args.length < 3 || args.length % 2 !== 1) {
    console.error('usage: node ref_encode.js CORPUS TOKENIZER_JSON OUT.u32 [TOKENIZER_JSON OUT.u32 ...]');
    process.exit(2);
  }
  const bytes = fs.readFileSync(args[0]);
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
  for (let i = 1; i < args.length; i += 2) {
    const t0 = process.hrtime.bigint();
    const tok = Tokenizer.fromFile(args[i]);
    const t1 = process.hrtime.bigint();
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = Uint32Array.from(enc.getIds());
    const t2 = process.hrtime.bigint();
    fs.writeFileSync(args[i + 1], Buffer.from(ids.buffer));
    const secs = Number(t2 - t1) / 1e9;
    console.log(`ref_encode: ${path.basename(path.dirname(path.dirname(args[i])))}: ${ids.length} ids ` +
      `for ${bytes.length} bytes (load ${(Number(t1 - t0) / 1e9).toFixed(2)} s, encode ${secs.toFixed(2)} s, ` +
      `${(bytes.length / 1e6 / secs).toFixed(2)} MB/s) -> ${args[i + 1]}`);
  }
}
main().catch((e) => { console.error('ref_encode: ' + (e && e.stack || e)); process.exit(1); });
