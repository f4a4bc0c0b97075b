#!/bin/bash
# test_layering.sh: the library's layering, checked on the sources (issue 13): no file of gen/,
# targets/, tuner/ or runtime/ (their tests/ folders aside) includes a header of tests/, and no
# C file there names a template: what a kernel means lives in its template and its IR.
# One line per case; exit 1 on failure.
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
fails=0
srcs=$(find gen targets tuner runtime -name '*.[ch]' -not -path '*/tests/*' -not -path '*/node_modules/*')
test_headers=$(find tests -name '*.h' -printf '%f\n' | sort -u | paste -sd'|')
hits=$(grep -nE "#include +[<\"]([^\">]*/)?($test_headers)[\">]|#include +\"[^\"]*tests/" $srcs)
if [ -z "$hits" ]; then echo "ok  : no library source includes a header of tests/ ($(echo "$test_headers" | tr '|' ' '))"
else echo "FAIL: library sources include test headers:"; echo "$hits" | sed 's/^/      /'; fails=$((fails+1)); fi
names=$(ls templates/*.lua | xargs -n1 basename | sed 's/\.lua$//' | paste -sd'|')
hits=$(grep -nwE "$names" $srcs)
if [ -z "$hits" ]; then echo "ok  : no library source names a template ($(echo "$names" | tr '|' ' '))"
else echo "FAIL: template names in library sources:"; echo "$hits" | sed 's/^/      /'; fails=$((fails+1)); fi
echo "$fails failure(s)"
[ "$fails" = 0 ]
