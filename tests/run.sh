#!/usr/bin/env bash
# The test command: installs what is missing, runs the style gates (tests/check_style.sh: format,
# cppcheck, sizes; a failure stops the run there), builds (plain, ASan+UBSan, TSan), starts
# throwaway RabbitMQ and PostgreSQL on free loopback ports, runs every suite with ctest, stops the
# servers even on failure, prints the servers' logs when a test failed. Exit status: 0 only if all
# passed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/install-deps.sh || { echo "tests/run.sh: dependency install failed" >&2; exit 1; }
# The style gates (format, cppcheck, sizes) first, before any build or server: they fail fast.
bash tests/check_style.sh || { echo "tests/run.sh: style gates failed (above); nothing else ran" >&2; exit 1; }
source deploy/servers.sh

jobs=$(nproc 2>/dev/null || echo 2)
build() { # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DJB_TESTS=ON "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$jobs" 2>&1 | grep -vE '^\[|^-- |Scanning|Built target|Consolidate' || true
  [ "${PIPESTATUS[0]}" = 0 ]
}
mkdir -p build
build build || { echo "tests/run.sh: build failed" >&2; exit 1; }

state=$(mktemp -d /tmp/jobbridge-test.XXXXXX)
chmod 755 "$state"
cleanup() { jb_servers_stop "$state"; rm -rf "$state"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
JB_PG_FSYNC=off jb_servers_start "$state" || { echo "tests/run.sh: servers did not start" >&2; exit 1; }
echo "servers: PostgreSQL 127.0.0.1:$JB_PG_PORT, RabbitMQ 127.0.0.1:$JB_AMQP_PORT"

status=0
# The layers: core uses no adapter, adapters only ports and core (README, "Layout").
bash tests/check_layers.sh || status=1
ctest --test-dir build --output-on-failure --timeout 900 "$@" || status=1

# The unit tests again under ASan+UBSan. Criterion runs each test in a forked child, where a
# LeakSanitizer report does not fail the test, so the whole log is searched for any report.
if [ "${JB_SKIP_ASAN:-0}" != 1 ]; then
  echo "--- unit tests under ASan+UBSan ---"
  if build build-asan -DJB_SANITIZE=address; then
    asan_log=build-asan/unit-tests.log
    # -V: ctest keeps the output of passing tests only in verbose mode.
    # CRITERION_JOBS=1: Criterion's runner itself leaks 48 bytes when tests of one binary end
    # in parallel workers (a stack wholly inside libcriterion, seen with test_exec_handler's
    # 25 tests); one worker at a time keeps the report for leaks of ours.
    CRITERION_JOBS=1 ASAN_OPTIONS=detect_leaks=1:handle_segv=0 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      ctest --test-dir build-asan -V -L unit >"$asan_log" 2>&1 || status=1
    grep -E "Test #|tests passed|tests failed" "$asan_log"
    if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$asan_log"; then
      echo "tests/run.sh: sanitizer reports above (full log: $asan_log)"
      status=1
    fi
  else
    status=1
  fi
fi

# The worker-pool tests again with jobbridge built under ThreadSanitizer: the tests fail on any
# ThreadSanitizer report in jobbridge's log (tests/integration/jbtest.py).
if [ "${JB_SKIP_TSAN:-0}" != 1 ]; then
  echo "--- worker-pool tests under TSan ---"
  if build build-tsan -DJB_SANITIZE=thread; then
    TSAN_OPTIONS=halt_on_error=0 ctest --test-dir build-tsan --output-on-failure -L workers ||
      status=1
  else
    status=1
  fi
fi

# The benchmark in --quick mode proves it works (small N, one run); no speed is asserted.
if [ "${JB_SKIP_BENCH:-0}" != 1 ]; then
  echo "--- benchmark, quick ---"
  bash tests/bench/run.sh --quick || status=1
fi

if [ $status != 0 ]; then
  echo "=== some tests failed: server logs follow ==="
  jb_servers_logs "$state"
fi
exit $status
