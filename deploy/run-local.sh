#!/usr/bin/env bash
# The local-run command: installs what is missing, builds, starts RabbitMQ and PostgreSQL on
# loopback with their state in .state/ (kept between runs, git-ignored), applies the schema and
# runs `jobbridge run` with config/jobbridge.example.json in the foreground. Ctrl-C stops
# jobbridge, then the servers.
#   JB_PG_PORT (default 55432) and JB_AMQP_PORT (default 55672) choose the ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash deploy/install-deps.sh
source deploy/servers.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target jobbridge >/dev/null

state="$root/.state"
mkdir -p "$state"
chmod 755 "$state"
jb_servers_stop "$state" 2>/dev/null || true
jb_servers_start "$state" "${JB_PG_PORT:-55432}" "${JB_AMQP_PORT:-55672}"
trap 'echo "stopping servers..."; jb_servers_stop "$state"' EXIT

export JOBBRIDGE_CONFIG="$root/config/jobbridge.example.json"
build/jobbridge migrate >/dev/null
# The HTTP face's address, from the example config (http.listen; null: no HTTP server).
http_listen=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["http"]["listen"] or "")' \
  "$JOBBRIDGE_CONFIG")
if [ -n "$http_listen" ]; then
  http_line="  HTTP        http://$http_listen   (health: /healthz, readiness: /readyz)"
  http_try="  curl -s http://$http_listen/readyz
  curl -s -H 'Authorization: Bearer dev-token-change-me' http://$http_listen/v1/jobs/<id>"
else
  http_line="  HTTP        off (http.listen is null)"
  http_try=""
fi
cat <<MSG

  PostgreSQL  127.0.0.1:$JB_PG_PORT   ($JOBBRIDGE_DATABASE_URL)
  RabbitMQ    127.0.0.1:$JB_AMQP_PORT   (amqp://guest:***@127.0.0.1:$JB_AMQP_PORT)
  config      $JOBBRIDGE_CONFIG
$http_line

In another terminal:
  export JOBBRIDGE_CONFIG=$JOBBRIDGE_CONFIG
  export JOBBRIDGE_DATABASE_URL=$JOBBRIDGE_DATABASE_URL
  export JOBBRIDGE_AMQP_URL=amqp://guest:guest@127.0.0.1:$JB_AMQP_PORT
  build/jobbridge jobs create audit_log --payload '{"order_id": 42}'
  build/jobbridge jobs list
  build/jobbridge stats
$http_try
  amqp-publish -u "\$JOBBRIDGE_AMQP_URL" -e jobbridge.events -r order.created \\
      -C application/json -b '{"event_type": "order.created", "id": "evt-1", "data": {"order_id": 42}}'

Ctrl-C stops jobbridge and the servers.
MSG
set +e
build/jobbridge run &
pid=$!
# Ctrl-C reaches jobbridge through the process group; a SIGTERM to this script is passed on.
trap 'kill -TERM $pid 2>/dev/null' INT TERM
wait $pid
wait $pid
