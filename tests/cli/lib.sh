# Shared helpers of the CLI tests: run a command, check its exit code and output.
fails=0
check() {  # check NAME EXPECTED_EXIT COMMAND... ; output in $out
  local name=$1 want=$2; shift 2
  out=$("$@" 2>&1); local got=$?
  if [ "$got" != "$want" ]; then echo "FAIL $name: exit $got, want $want"; echo "$out"; fails=$((fails+1)); fi
}
expect_in() { grep -qF -- "$2" <<<"$out" || { echo "FAIL $1: missing '$2'"; echo "$out"; fails=$((fails+1)); }; }
expect_not_in() { if grep -qF -- "$2" <<<"$out"; then echo "FAIL $1: leaked '$2'"; fails=$((fails+1)); fi; }
