# tt_check.sh: sourced by the tuner's shell tests after they set T (their temporary directory).
# check NAME WANT_STATUS GREP_PATTERN -- command... runs the command with its output in $T/out
# and prints one line, "ok  : NAME" or "FAIL: NAME (...)" with the output; failures count in $fails.
fails=0
check() {
  local name=$1 want=$2 pat=$3; shift 4
  "$@" > "$T/out" 2>&1; local st=$?
  if [ "$st" = "$want" ] && grep -Eq -- "$pat" "$T/out"; then echo "ok  : $name"
  else echo "FAIL: $name (status $st, want $want; pattern '$pat')"; sed 's/^/      /' "$T/out" | head -8; fails=$((fails+1)); fi
}
