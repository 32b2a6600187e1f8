#!/usr/bin/env bash
# Issue 16's process handler benchmark (tests/bench/procbench.py): builds jobbridge in Release
# (build-bench/) and proc_bench, starts throwaway servers (fsync on), runs it, stops them.
# Arguments go to procbench.py (--jobs N, --reps R, --processes P, --threads W, --quick).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/install-deps.sh || exit 1
source deploy/servers.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DJB_TESTS=OFF >/dev/null || exit 1
cmake --build build-bench -j "$(nproc)" --target jobbridge >/dev/null || exit 1
cc -O2 -Wall -Wextra -Werror tests/bench/proc_bench.c -lpthread -o build-bench/proc_bench || exit 1
state=$(mktemp -d /tmp/jobbridge-pbench.XXXXXX)
chmod 755 "$state"
trap 'jb_servers_stop "$state"; rm -rf "$state"' EXIT
jb_servers_start "$state" || exit 1
/usr/bin/python3 tests/bench/procbench.py build-bench build-bench/proc_bench "$@"
