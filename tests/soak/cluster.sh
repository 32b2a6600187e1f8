#!/usr/bin/env bash
# The issue's full cluster run: tests/integration/test_cluster.py with 50,000 events (ctest runs
# it with 3,000 to stay within the suite's time). Starts a PostgreSQL and a RabbitMQ of its own
# for the test's helpers (the cluster's three nodes are the test's own).
# usage: tests/soak/cluster.sh [JOBBRIDGE_BINARY]   JB_CLUSTER_EVENTS (50000)
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$SRC/build/jobbridge}")
state=$(mktemp -d /tmp/jb-cluster-soak.XXXXXX)
chmod 755 "$state"
source "$SRC/deploy/servers.sh"
trap 'jb_servers_stop "$state"; rm -rf "$state"' EXIT
JB_PG_FSYNC=off jb_servers_start "$state" || exit 1
JB_CLUSTER_EVENTS=${JB_CLUSTER_EVENTS:-50000} /usr/bin/python3 \
  "$SRC/tests/integration/test_cluster.py" "$BIN" "$SRC"
