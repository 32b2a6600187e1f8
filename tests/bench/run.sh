#!/usr/bin/env bash
# The benchmark command: installs what is missing, builds jobbridge in Release, starts its own
# throwaway RabbitMQ and PostgreSQL (fsync on, like production), runs tests/bench/bench.py and
# stops the servers. Arguments go to bench.py (--quick for CI, --events N, --reps R).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash deploy/install-deps.sh || exit 1
source deploy/servers.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DJB_TESTS=OFF >/dev/null || exit 1
cmake --build build-bench -j "$(nproc)" --target jobbridge jb_bench >/dev/null || exit 1
state=$(mktemp -d /tmp/jobbridge-bench.XXXXXX)
chmod 755 "$state"
trap 'jb_servers_stop "$state"; rm -rf "$state"' EXIT
jb_servers_start "$state" || exit 1
/usr/bin/python3 tests/bench/bench.py build-bench "$@"
status=$?
[ $status = 0 ] || jb_servers_logs "$state"
exit $status
