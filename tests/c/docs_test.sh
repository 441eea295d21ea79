#!/usr/bin/env bash
# Extracts every ```c block of a Markdown file, compiles each as a complete C11 program
# against libjobqueue_c and runs it; fails on the first block that does not build or exit 0.
#   docs_test.sh <doc.md> <include dir> <libjobqueue_c.so> [extra cflags]
set -euo pipefail
doc=$1 include=$2 lib=$3 extra=${4:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v dir="$work" '
  /^```c[[:space:]]*$/ { n++; file = sprintf("%s/block%02d.c", dir, n); inside = 1; next }
  /^```/ && inside { inside = 0; close(file); next }
  inside { print > file }
' "$doc"

shopt -s nullglob
blocks=("$work"/block*.c)
if [ "${#blocks[@]}" -eq 0 ]; then
  echo "docs_test: no \`\`\`c blocks in $doc" >&2
  exit 1
fi
libdir=$(dirname "$lib")
for block in "${blocks[@]}"; do
  name=$(basename "$block" .c)
  # shellcheck disable=SC2086 # extra holds several flags
  if ! gcc -std=c11 -Wall -Werror $extra -I"$include" -o "$work/$name" "$block" \
      -L"$libdir" -ljobqueue_c -Wl,-rpath,"$libdir" -pthread; then
    echo "docs_test: $name (block ${name#block} of $doc) does not compile" >&2
    exit 1
  fi
  if ! timeout 120 "$work/$name" >"$work/$name.out" 2>&1; then
    echo "docs_test: $name (block ${name#block} of $doc) failed:" >&2
    cat "$work/$name.out" >&2
    exit 1
  fi
  echo "docs_test: $name ok"
done
echo "docs_test: ${#blocks[@]} blocks of $doc compiled and ran"
