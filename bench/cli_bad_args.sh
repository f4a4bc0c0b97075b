#!/bin/sh
# kf-peers rejects bad options with a one-line message naming the option, and exit status 2.
# usage: cli_bad_args.sh PATH/TO/kf-peers
bin="$1"
fail=0
check() { # expected-text args...
  want="$1"; shift
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -eq 2 ] && printf '%s' "$out" | grep -q -- "$want"; then
    echo "ok   kf-peers $* -> $out"
  else
    echo "FAIL kf-peers $* -> rc=$rc: $out (want rc 2 and '$want')"; fail=1
  fi
}
check "want M,N,K" --shape 1,2
check "want M,N,K" --shape 0,4,4
check "want M,N,K" --shape 1,x,4
check "want an integer" --threads 0
check "want seconds" --budget -1
check "needs a value" --budget
check "unknown option" --frobnicate
"$bin" --help | grep -q "usage: kf-peers" && echo "ok   kf-peers --help" || { echo "FAIL --help"; fail=1; }
exit $fail
