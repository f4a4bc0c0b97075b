#!/bin/bash
# test_install.sh BUILD_DIR: `cmake --install` into a temporary prefix, then, from a directory
# outside the source tree: the installed kforge finds its templates (list, check); the example
# builds against the installed tree with find_package(kforge) and with pkg-config, and runs;
# every man page renders; the installed AIS Python package imports. Then a copy of the source
# tree is configured and built, moved away, and its build still installs.
# One line per case; exit 1 on failure.
B=$(cd "${1:?usage: test_install.sh BUILD_DIR}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T=$(mktemp -d /tmp/kforge-inst-XXXXXX)
trap 'rm -rf "$T"' EXIT
. "$SRC/tuner/tests/tt_check.sh" # check NAME WANT_STATUS GREP_PATTERN -- command...
P="$T/prefix"
check "cmake --install" 0 "Installing: .*/bin/kforge" -- cmake --install "$B" --prefix "$P"
for f in bin/kforge lib/libkforge.so lib/libkforge.a lib/libkforge_quant.a lib/libkforge_lopt.a \
         lib/libkforge_dispatch.a lib/pkgconfig/kforge.pc lib/pkgconfig/kforge-quant.pc lib/pkgconfig/kforge-lopt.pc \
         lib/pkgconfig/kforge-ais.pc lib/cmake/kforge/kforgeConfig.cmake lib/cmake/kforge/kforgeConfigVersion.cmake \
         include/kforge/kforge.h include/kforge/quant.h include/kforge/lopt.h include/kforge/ais.h \
         include/kforge/dispatch.h share/kforge/templates/msd_gemm.lua share/kforge/templates/lib/kf.lua \
         share/man/man1/kforge.1 share/man/man1/kforge-check.1 share/doc/kforge/LICENSE; do
  [ -e "$P/$f" ] || { echo "FAIL: $f not installed"; fails=$((fails+1)); }
done
echo "ok  : installed files checked"
readelf -d "$P/lib/libkforge.so" | grep -q 'SONAME.*libkforge.so.0' && echo "ok  : libkforge.so has SONAME libkforge.so.0" ||
  { echo "FAIL: SONAME"; fails=$((fails+1)); }
cd "$T" || exit 2
check "installed kforge list finds the installed templates" 0 "templates: $P/share/kforge/templates" -- \
  env -u KFORGE_TEMPLATES "$P/bin/kforge" list
check "installed kforge check" 0 "^ok" -- env -u KFORGE_TEMPLATES "$P/bin/kforge" check msd_gemm --shape M=3,N=40,K=100
check "example with find_package(kforge)" 0 "." -- bash -c \
  "cmake -S '$SRC/examples' -B '$T/ex' -DCMAKE_PREFIX_PATH='$P' >/dev/null && cmake --build '$T/ex' >/dev/null && echo built"
check "  ... runs: generate, JIT, run, plain-loop check" 0 "^ok$" -- env -u KFORGE_TEMPLATES "$T/ex/msd_jit" 5 70 130 2
check "example with cc \$(pkg-config --cflags --libs kforge kforge-quant)" 0 "." -- bash -c \
  "cc -Wall -Wextra -Werror '$SRC/examples/msd_jit.c' \$(PKG_CONFIG_PATH='$P/lib/pkgconfig' pkg-config --cflags --libs kforge kforge-quant) -lm -o '$T/msd_jit_pc' && echo built"
check "  ... runs (1 pass, odd shape)" 0 "^ok$" -- env -u KFORGE_TEMPLATES LD_LIBRARY_PATH="$P/lib" "$T/msd_jit_pc" 1 33 17 1
n_pages=0
for page in "$P"/share/man/man1/*.1; do
  n_pages=$((n_pages + 1))
  out=$(MANWIDTH=100 man -l "$page" 2>&1)
  if ! echo "$out" | grep -q '^NAME' || ! echo "$out" | grep -Eq 'usage: +kforge'; then
    echo "FAIL: man -l $(basename "$page")"; echo "$out" | head -5 | sed 's/^/      /'; fails=$((fails+1))
  fi
done
[ "$n_pages" -ge 6 ] && echo "ok  : $n_pages man pages render with man -l" || { echo "FAIL: only $n_pages man pages"; fails=$((fails+1)); }
check "installed AIS Python package imports" 0 "ok" -- env PYTHONPATH="$P/lib/python3/dist-packages" \
  /usr/bin/python3 -c "import kforge_ais, sys; print('ok', kforge_ais.__file__)"
grep -q "$P" "$T/out" || { echo "FAIL: imported from the prefix"; fails=$((fails+1)); }
# a build whose source tree was then moved still installs
if [ "${KF_INSTALL_MOVED:-1}" = 1 ]; then
  mkdir -p "$T/src1"
  (cd "$SRC" && git ls-files -z | xargs -0 cp --parents -t "$T/src1" 2>/dev/null)
  [ -d "$SRC/runtime/lopt/node_modules" ] && ln -s "$SRC/runtime/lopt/node_modules" "$T/src1/runtime/lopt/node_modules"
  if cmake -S "$T/src1" -B "$T/b1" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null 2>&1 &&
     cmake --build "$T/b1" -j "$(nproc)" >/dev/null 2>&1; then
    mv "$T/src1" "$T/src2"
    check "install after the source tree moved" 0 "Installing: .*/share/kforge/templates" -- cmake --install "$T/b1" --prefix "$T/p2"
    check "  ... and that kforge finds its templates" 0 "zz_never|msd_gemm" -- env -u KFORGE_TEMPLATES "$T/p2/bin/kforge" list msd_gemm
  else
    echo "FAIL: building the copied source tree"; fails=$((fails+1))
  fi
fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
