// Synthetic tokenizer.json files for lopt_all: the vocabularies of two real files with the
// pipeline stages no @lenml file uses, so that they too are checked against the reference.
// usage: node make_synth.js OUTDIR BYTE_LEVEL_TOKENIZER_JSON SENTENCEPIECE_TOKENIZER_JSON
// Writes OUTDIR/tokenizer-synth_X/models/tokenizer.json for X in a, b, c, d.
'use strict';
const fs = require('fs');
const path = require('path');
const [out, bl, sp] = process.argv.slice(2);
if (!out || !bl || !sp) {
  console.error('usage: node make_synth.js OUTDIR BYTE_LEVEL_TOKENIZER_JSON SENTENCEPIECE_TOKENIZER_JSON');
  process.exit(2);
}
const base = { bl: JSON.parse(fs.readFileSync(bl, 'utf8')), sp: JSON.parse(fs.readFileSync(sp, 'utf8')) };
const variants = {
  synth_a: ['bl', {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Strip', strip_left: true, strip_right: true },
      { type: 'Replace', pattern: { Regex: '\\d{4}' }, content: '#' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Digits', individual_digits: true }, { type: 'Punctuation', behavior: 'Contiguous' },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: false }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  }],
  synth_b: ['bl', {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' },
      { type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Contiguous', invert: true },
      { type: 'Split', pattern: { Regex: '[\\p{P}\\p{S}]' }, behavior: 'MergedWithNext', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  }],
  synth_c: ['sp', {
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: true },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: true }] },
  }],
  synth_d: ['sp', {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { String: '\t' }, content: '    ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' },
      { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: false },
      { type: 'Split', pattern: { Regex: '\\d+' }, behavior: 'Removed', invert: false },
      { type: 'Punctuation', behavior: 'MergedWithPrevious' }] },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
      { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 1 }] },
  }],
};
for (const [name, [b, stages]] of Object.entries(variants)) {
  const j = Object.assign({}, base[b], stages);
  const dir = path.join(out, 'tokenizer-' + name, 'models');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(j));
}
