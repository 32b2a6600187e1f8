#!/usr/bin/env bash
# The soak (issue 15): jobbridge under steady mixed load for JB_SOAK_MINUTES (20) with a fault
# every minute, in turn: kill -9 of jobbridge (then started again), a broker restart, a
# database restart, and jobbridge's database backends killed by pg_terminate_backend. At the
# end it waits for everything to drain and reports events in, jobs created, jobs finished,
# events out, lost (must be 0), duplicated jobs (must be 0), and each jobbridge process's RSS
# and open descriptors when it started (30 s in) and at its end.
#
# JB_SOAK_VALGRIND=1 runs jobbridge under valgrind memcheck instead (shorter: set
# JB_SOAK_MINUTES to 3-5; the kill -9 fault becomes a SIGTERM restart, so each process exits
# and reports its leaks) and also fails on any byte "definitely lost".
#
# Not part of ctest. usage: tests/soak/run.sh [JOBBRIDGE_BINARY]
#   JB_SOAK_MINUTES (20), JB_SOAK_RATE (events/s, 100), JB_SOAK_VALGRIND (0)
# Exit status 0 only when nothing was lost or duplicated (and, under valgrind, nothing leaked).
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(realpath "${1:-$SRC/build/jobbridge}")
MINUTES=${JB_SOAK_MINUTES:-20}
RATE=${JB_SOAK_RATE:-100}
VALGRIND=${JB_SOAK_VALGRIND:-0}
PY=/usr/bin/python3

state=$(mktemp -d /tmp/jb-soak.XXXXXX)
chmod 755 "$state"
source "$SRC/deploy/servers.sh"
export JB_PG_FSYNC=off
log() { echo "[soak $(date +%H:%M:%S)] $*"; }

jb_pid=""
pub_pid=""
con_pid=""
cleanup() {
  touch "$state/stop"
  [ -n "$jb_pid" ] && kill -9 "$jb_pid" 2>/dev/null
  [ -n "$pub_pid" ] && kill "$pub_pid" 2>/dev/null
  [ -n "$con_pid" ] && kill "$con_pid" 2>/dev/null
  jb_servers_stop "$state"
  [ "${JB_SOAK_KEEP:-0}" = 1 ] || rm -rf "$state"
}
trap cleanup EXIT

jb_servers_start "$state" || exit 1
log "servers up: PostgreSQL $JB_PG_PORT, RabbitMQ $JB_AMQP_PORT; state in $state"

cat >"$state/jobbridge.json" <<JSON
{
  "amqp": {"heartbeat_s": 5, "prefetch": 200,
           "input": {"exchange": "soak.ev", "queue": "soak.q", "bindings": ["soak.#"],
                     "dead_letter_exchange": "soak.dl"},
           "output": {"exchange": "soak.out"}},
  "database": {"schema": "soak"},
  "http": {"listen": null},
  "workers": {"threads": 4, "lease_s": 10, "poll_ms": 500, "shutdown_grace_s": 10},
  "mappings": [
    {"event_type": "soak.fast", "job_type": "fast", "queue": "fast"},
    {"event_type": "soak.slow", "job_type": "slow", "queue": "slow"}
  ],
  "job_types": {
    "fast": {"handler": "noop"},
    "slow": {"handler": "exec", "command": ["/bin/sleep", "0.02"], "timeout_s": 30}
  }
}
JSON

# The job events' watch queue, before anything is published.
$PY - "$JOBBRIDGE_AMQP_URL" <<'PY' || exit 1
import sys, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1] + "/%2F"))
ch = conn.channel()
ch.exchange_declare("soak.out", "topic", durable=True)
ch.queue_declare("soak.out.watch", durable=True)
ch.queue_bind("soak.out.watch", "soak.out", "#")
conn.close()
PY

start_jb() {
  if [ "$VALGRIND" = 1 ]; then
    # Forked children (the exec handler's) are silent: they exec or _exit at once, and their
    # copy of the parent's heap is not a leak.
    valgrind --leak-check=full --show-leak-kinds=definite --child-silent-after-fork=yes \
      --errors-for-leak-kinds=definite --log-file="$state/valgrind.%p.log" \
      "$BIN" run --config "$state/jobbridge.json" 2>>"$state/jobbridge.log" &
  else
    "$BIN" run --config "$state/jobbridge.json" 2>>"$state/jobbridge.log" &
  fi
  jb_pid=$!
  jb_started=$SECONDS
  jb_first=""
}

# "rss_kb fds" of jobbridge now.
sample() {
  local rss fds
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$jb_pid/status" 2>/dev/null)
  fds=$(ls "/proc/$jb_pid/fd" 2>/dev/null | wc -l)
  echo "${rss:-?} $fds"
}

# Records the process's figures at its end (before a kill or a restart, and at the end).
end_of_process() {
  echo "pid $jb_pid: lived $((SECONDS - jb_started))s; RSS kB, fds at 30 s: ${jb_first:-(n/a)};" \
    "at the end: $(sample)" >>"$state/processes"
}

stop_jb() { # SIGTERM and wait
  kill -TERM "$jb_pid" 2>/dev/null
  wait "$jb_pid" 2>/dev/null
}

psql_q() { psql "$JOBBRIDGE_DATABASE_URL" -AtXqc "$1" 2>/dev/null; }

terminate_backends() {
  psql_q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = 'jobbridge' AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
}

start_jb
sleep 3
$PY "$SRC/tests/soak/load.py" publish "$JOBBRIDGE_AMQP_URL" soak.ev "$RATE" "$state/published" \
  "$state/stop" &
pub_pid=$!
$PY "$SRC/tests/soak/load.py" consume "$JOBBRIDGE_AMQP_URL" soak.out.watch "$state/out" \
  "$state/stop.consumer" &
con_pid=$!
log "load: $RATE events/s for $MINUTES min; a fault every minute"

faults=("jobbridge kill -9" "broker restart" "database restart" "backends terminated")
for ((m = 0; m < MINUTES; m++)); do
  for ((s = 0; s < 60; s += 5)); do
    sleep 5
    if [ -z "$jb_first" ] && ((SECONDS - jb_started >= 30)); then jb_first=$(sample); fi
    if ! kill -0 "$jb_pid" 2>/dev/null; then
      log "jobbridge exited on its own; see $state/jobbridge.log"
      JB_SOAK_KEEP=1
      exit 1
    fi
  done
  f=$((m % 4))
  log "minute $((m + 1)): ${faults[$f]} (published $(cat "$state/published" 2>/dev/null))"
  case $f in
    0)
      end_of_process
      if [ "$VALGRIND" = 1 ]; then stop_jb; else kill -9 "$jb_pid"; wait "$jb_pid" 2>/dev/null; fi
      start_jb
      ;;
    1) jb_rabbit_stop "$state" && jb_rabbit_start "$state" "$JB_AMQP_PORT" ;;
    2) jb_pg_stop "$state" && jb_pg_start "$state" "$JB_PG_PORT" ;;
    3) log "  terminated $(terminate_backends) backends" ;;
  esac
done

touch "$state/stop"
wait "$pub_pid"
pub_pid=""
published=$(cat "$state/published")
log "load stopped: $published events published; draining"
deadline=$((SECONDS + 600))
while ((SECONDS < deadline)); do
  left=$(psql_q "SELECT (SELECT count(*) FROM soak.jobs WHERE status NOT IN
                   ('COMPLETED','FAILED','DEAD_LETTER')) + (SELECT count(*) FROM soak.outbox)")
  distinct=$(psql_q "SELECT count(DISTINCT dedupe_key) FROM soak.jobs")
  [ "${left:-1}" = 0 ] && [ "${distinct:-0}" -ge "$published" ] && break
  sleep 2
done
touch "$state/stop.consumer"
wait "$con_pid"
con_pid=""
end_of_process
stop_jb
jb_pid=""

jobs=$(psql_q "SELECT count(*) FROM soak.jobs")
distinct=$(psql_q "SELECT count(DISTINCT dedupe_key) FROM soak.jobs")
finished=$(psql_q "SELECT count(*) FROM soak.jobs WHERE status IN ('COMPLETED','FAILED','DEAD_LETTER')")
completed=$(psql_q "SELECT count(*) FROM soak.jobs WHERE status = 'COMPLETED'")
read -r out_total out_ids out_done <"$state/out"
lost=$((published - distinct))
dup=$((jobs - distinct))
echo "=== soak: $MINUTES min at $RATE events/s, a fault a minute (valgrind: $VALGRIND) ==="
echo "events in:        $published"
echo "jobs created:     $jobs ($distinct distinct events)"
echo "jobs finished:    $finished ($completed completed)"
echo "events out:       $out_total ($out_ids distinct message ids; $out_done distinct jobs completed)"
echo "lost:             $lost"
echo "duplicated jobs:  $dup"
echo "job events missing: $((completed - out_done))"
echo "processes (RSS kB, open fds):"
sed 's/^/  /' "$state/processes"
rc=0
[ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$completed" = "$out_done" ] || rc=1
if [ "$VALGRIND" = 1 ]; then
  echo "valgrind (definitely lost, per process):"
  for pid in $(awk '{print $2}' "$state/processes" | tr -d :); do
    f="$state/valgrind.$pid.log"
    d=$(grep -o "definitely lost: [0-9,]* bytes" "$f" | tail -1)
    echo "  pid $pid: ${d:-no leak summary (the process did not exit normally)}"
    case "$d" in "definitely lost: 0 bytes") ;; *) rc=1 ;; esac
    grep -q "ERROR SUMMARY: 0 errors" "$f" || { echo "  $(grep 'ERROR SUMMARY' "$f")"; rc=1; }
  done
fi
[ $rc = 0 ] || { JB_SOAK_KEEP=1; log "FAILED; state kept in $state"; }
exit $rc
