#!/usr/bin/env bash
# Installs what kforge needs on Debian 12 (packages only from Debian and npm), then
# each runtime module's own setup (runtime/*/setup.sh, e.g. npm packages for tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake ninja-build pkg-config git
      llvm-19-dev liblua5.4-dev libsqlite3-dev sqlite3
      libdnnl-dev libopenblas-dev
      libpcre2-dev libcjson-dev
      python3-numpy python3-torch
      python3-pip python3-setuptools python3-wheel python3-venv
      gnuplot-nox help2man man-db
      clang libclang-rt-14-dev # clang: fuzz/ (scripts/fuzz.sh)
      slurm-wlm munge) # tuner/tests/test_slurm.sh: a one-node Slurm cluster on localhost
# node/npm/python3 may come from elsewhere on a machine (a newer Node with its own npm):
# install Debian's only when the command is missing.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
[ -x /usr/bin/python3 ] || PKGS+=(python3)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for s in runtime/*/setup.sh; do
  [ -f "$s" ] && bash "$s"
done
echo "setup: done"
