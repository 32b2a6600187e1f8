#!/usr/bin/env bash
# The style gates, run first by tests/run.sh (before any build or server, so they fail fast).
# Over every C file (.c, .h) under src/, include/ and tests/:
#   1. format: `clang-format --dry-run --Werror` with the tree's .clang-format. Fails the run.
#      Fix: clang-format -i FILE.
#   2. cppcheck: C11, --enable=warning,performance,portability,information, the posix library,
#      -I include -I src, whole-program (no -j, so cross-file checks run). Fails the run on any
#      finding not in tests/cppcheck/suppressions.txt (each entry there is one finding id,
#      scoped to a file where it can be, with the reason it is not a defect) and on an entry
#      there that no longer matches anything. tests/cppcheck/criterion.cfg teaches cppcheck
#      Criterion's Test/TestSuite macros so test bodies are checked too.
#      The "style" group is off: on this tree it gave 13 findings, none a defect (const
#      parameters, rand_r/usleep called "obsolescent", an always-true first `rc == JB_OK` of a
#      chain, a wrong always-false claim in outbox_relay.c's publish_more).
#   3. sizes (README "Layout"): files under ~800 lines, functions under ~80 (a function counted
#      from the first line of its signature to its closing brace). Above the guide is a
#      warning, printed with file and line; more than a quarter above it (a file over 1000
#      lines, a function over 100) fails the run.
# Every finding is printed as FILE:LINE: what and why. Exit 1 if any gate failed, 2 if a tool
# is missing (bash deploy/install-deps.sh installs them).
# Usage: bash tests/check_style.sh [ROOT]
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2

file_warn=800 file_fail=1000
func_warn=80 func_fail=100

for tool in clang-format cppcheck; do
  command -v "$tool" >/dev/null ||
    { echo "check_style: $tool is not installed (bash deploy/install-deps.sh)" >&2; exit 2; }
done
mapfile -t files < <(find src include tests -type f \( -name '*.c' -o -name '*.h' \) | sort)
[ ${#files[@]} -gt 0 ] || { echo "check_style: no C files under src/ include/ tests/" >&2; exit 2; }
status=0

# 1. Format. clang-format prints FILE:LINE:COL: error: code should be clang-formatted, with
# the line and a caret, for every place that differs.
if ! out=$(clang-format --dry-run --Werror "${files[@]}" 2>&1) || [ -n "$out" ]; then
  echo "$out"
  bad=$(echo "$out" | grep -oE '^[^:]+\.[ch]:[0-9]+:[0-9]+: error' | cut -d: -f1 | sort -u)
  echo "check_style: FAIL format: not as clang-format ($(clang-format --version |
    grep -oE 'version [0-9.]+')) writes it; fix with: clang-format -i $(echo $bad)"
  status=1
else
  echo "check_style: ok format (clang-format, ${#files[@]} files)"
fi

# 2. cppcheck.
if ! out=$(cppcheck --std=c11 --enable=warning,performance,portability,information \
  --library=posix --library=tests/cppcheck/criterion.cfg -I include -I src \
  --suppressions-list=tests/cppcheck/suppressions.txt --error-exitcode=1 -q \
  --template='{file}:{line}: {severity}: {message} [{id}]' "${files[@]}" 2>&1) ||
  [ -n "$out" ]; then
  echo "$out"
  echo "check_style: FAIL cppcheck: fix the findings above; a finding that is not a defect" \
    "goes into tests/cppcheck/suppressions.txt by id and file, with the reason"
  status=1
else
  echo "check_style: ok cppcheck ($(cppcheck --version))"
fi

# 3. Sizes. A function: a line at column 0 with a "(", no "=" before it and no ";" at its end
# (its signature, as clang-format lays it out), then a line ending in "{" (the body opens), then the first "}" at
# column 0 (the body closes).
sizes=$(awk -v fw="$file_warn" -v ff="$file_fail" -v nw="$func_warn" -v nf="$func_fail" '
  function report(where, what, n, warn, fail) {
    if (n > fail) { printf "%s: FAIL %s is %d lines (guide ~%d, fails above %d)\n", where, what, n, warn, fail; bad = 1 }
    else if (n > warn) printf "%s: warning: %s is %d lines (guide ~%d, fails above %d)\n", where, what, n, warn, fail
  }
  FNR == 1 { if (prev != "") report(prev ":" lines, "the file", lines, fw, ff); sig = 0; body = 0 }
  { prev = FILENAME; lines = FNR }
  body { if ($0 ~ /^}/) { report(FILENAME ":" start, "function " name, FNR - start + 1, nw, nf); body = 0 } next }
  /^[A-Za-z_]/ && /\(/ && !/^[^(]*=/ && !/;[ \t]*$/ && !/^(typedef|struct|union|enum)[ \t][^(]*\{/ {
    s = $0; gsub(/__attribute__ *\(\([^)]*\)\)/, "", s)
    if (s ~ /^Test *\(/) { name = s; if (!sub(/\).*/, ")", name)) sub(/[ ,]*$/, ", ...)", name) }
    else { sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); name = w[n] }
    sig = 1; start = FNR
  }
  sig && /;[ \t]*$/ { sig = 0 }
  sig && /\{[ \t]*$/ { sig = 0; body = 1 }
  END { if (prev != "") report(prev ":" lines, "the file", lines, fw, ff); exit bad }
' "${files[@]}")
size_rc=$?
[ -n "$sizes" ] && echo "$sizes"
if [ $size_rc != 0 ]; then
  echo "check_style: FAIL sizes: split the files or functions marked FAIL above"
  status=1
else
  echo "check_style: ok sizes (files over $file_fail lines or functions over $func_fail fail;" \
    "$(echo -n "$sizes" | grep -c warning) over the guide, warned above)"
fi
exit $status
