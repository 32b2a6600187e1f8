#!/usr/bin/env bash
# Throwaway RabbitMQ and PostgreSQL servers on loopback, for the local run, the tests and the
# benchmarks. Source this file, then call jb_servers_start DIR; it exports JB_PG_PORT,
# JB_AMQP_PORT, JOBBRIDGE_DATABASE_URL and JOBBRIDGE_AMQP_URL. jb_servers_stop DIR stops both.
# Hooks for the tests: JB_PG_EXTRA_OPTS is added to postgres's options (e.g. "-c ssl=on -c
# ssl_cert_file=... -c ssl_key_file=..."), JB_RABBIT_EXTRA_CONF appended to rabbitmq.conf (e.g.
# a TLS listener and its ssl_options.*).
# PostgreSQL refuses to run as root, so it runs as the `postgres` system user (created by the
# postgresql package) or, failing that, a `jobbridge` user this script creates.

JB_PG_BIN=${JB_PG_BIN:-/usr/lib/postgresql/15/bin}
JB_RABBIT_BIN=${JB_RABBIT_BIN:-/usr/lib/rabbitmq/bin}

jb_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

jb_pg_user() {
  if id -u postgres >/dev/null 2>&1; then echo postgres; return; fi
  id -u jobbridge >/dev/null 2>&1 || useradd --system --no-create-home jobbridge
  echo jobbridge
}

# as_pg CMD...: run a command as the unprivileged PostgreSQL user (or as ourselves if not root).
jb_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$(jb_pg_user)" -- "$@"; else "$@"; fi
}

# jb_pg_start DIR PORT: initdb (once) and start PostgreSQL in DIR/pg on 127.0.0.1:PORT.
# FSYNC=off is for tests only; the local run keeps fsync on.
jb_pg_start() {
  local dir=$1 port=$2 fsync=${JB_PG_FSYNC:-on}
  mkdir -p "$dir/pg"
  if [ "$(id -u)" = 0 ]; then chown "$(jb_pg_user)" "$dir/pg"; chmod 700 "$dir/pg"; fi
  if [ ! -f "$dir/pg/data/PG_VERSION" ]; then
    jb_as_pg "$JB_PG_BIN/initdb" -D "$dir/pg/data" -U jobbridge --auth=trust -E UTF8 \
      --no-locale >"$dir/pg/initdb.log" 2>&1 || { cat "$dir/pg/initdb.log" >&2; return 1; }
  fi
  jb_as_pg "$JB_PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/pg \
        -c fsync=$fsync -c synchronous_commit=$fsync -c full_page_writes=$fsync \
        -c max_connections=200 ${JB_PG_EXTRA_OPTS:-}" >/dev/null \
    || { cat "$dir/pg/server.log" >&2; return 1; }
  local i
  for i in $(seq 1 60); do
    psql -h 127.0.0.1 -p "$port" -U jobbridge -d postgres -Atqc \
      "select 1 from pg_database where datname='jobbridge'" 2>/dev/null | grep -q 1 && break
    psql -h 127.0.0.1 -p "$port" -U jobbridge -d postgres -qc "create database jobbridge" \
      >/dev/null 2>&1 && break
    sleep 0.5
  done
}

jb_pg_stop() {
  local dir=$1
  [ -f "$dir/pg/data/postmaster.pid" ] || return 0
  jb_as_pg "$JB_PG_BIN/pg_ctl" -D "$dir/pg/data" -m fast -w -t 60 stop >/dev/null 2>&1
}

jb_rabbit_env() {
  local dir=$1 port=$2
  export HOME="$dir/rabbit/home"
  export RABBITMQ_NODENAME="jb$port@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=$port
  # The CLI tools take their own Erlang distribution port from a range that, by default, starts
  # at the server's: `rabbitmqctl wait` could grab it before the booting server binds it, and the
  # server then dies silently. Give each its own free ports, chosen once per state dir.
  [ -f "$dir/rabbit/dist_port" ] || jb_free_port >"$dir/rabbit/dist_port"
  export RABBITMQ_DIST_PORT=$(cat "$dir/rabbit/dist_port")
  export RABBITMQ_CTL_DIST_PORT_MIN=$((RABBITMQ_DIST_PORT + 1))
  export RABBITMQ_CTL_DIST_PORT_MAX=$((RABBITMQ_DIST_PORT + 11))
  export RABBITMQ_MNESIA_BASE="$dir/rabbit/mnesia"
  export RABBITMQ_LOG_BASE="$dir/rabbit/log"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbit/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$dir/rabbit/rabbitmq"
  export RABBITMQ_PID_FILE="$dir/rabbit/rabbit.pid"
}

# jb_rabbit_start DIR PORT: start a RabbitMQ node with its state in DIR/rabbit on 127.0.0.1:PORT.
jb_rabbit_start() {
  local dir=$1 port=$2
  mkdir -p "$dir/rabbit/home" "$dir/rabbit/mnesia" "$dir/rabbit/log"
  rm -f "$dir/rabbit/dist_port"
  [ -f "$dir/rabbit/enabled_plugins" ] || echo '[].' >"$dir/rabbit/enabled_plugins"
  # Loopback only; the guest user may log in from localhost, which is all we need.
  cat >"$dir/rabbit/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$port
loopback_users = none
vm_memory_high_watermark.relative = 0.6
disk_free_limit.absolute = 50MB
CONF
  # Extra lines for rabbitmq.conf (a TLS listener, cluster settings): the tests' hook.
  [ -z "${JB_RABBIT_EXTRA_CONF:-}" ] || printf '%s\n' "$JB_RABBIT_EXTRA_CONF" >>"$dir/rabbit/rabbitmq.conf"
  echo "$port" >"$dir/rabbit/port"
  ( jb_rabbit_env "$dir" "$port"
    "$JB_RABBIT_BIN/rabbitmq-server" -detached >"$dir/rabbit/start.log" 2>&1
    # `wait PIDFILE` waits for the node to write its pid and then for the app to boot;
    # `await_startup` alone fails at once if the node has not registered with epmd yet.
    "$JB_RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q wait "$RABBITMQ_PID_FILE" \
      --timeout 120 >>"$dir/rabbit/start.log" 2>&1 ) || { jb_rabbit_logs "$dir" >&2; return 1; }
}

jb_rabbitmqctl() {
  local dir=$1; shift
  ( jb_rabbit_env "$dir" "$(cat "$dir/rabbit/port")"
    "$JB_RABBIT_BIN/rabbitmqctl" -n "$RABBITMQ_NODENAME" -q "$@" )
}

jb_rabbit_stop() {
  local dir=$1 pid=""
  [ -f "$dir/rabbit/port" ] || return 0
  [ -f "$dir/rabbit/rabbit.pid" ] && pid=$(cat "$dir/rabbit/rabbit.pid")
  # rabbitmqctl can wait forever on a node that is half gone: bound it, then make sure the VM
  # is dead, so no script ever hangs or leaves a broker behind.
  timeout 60 bash -c "$(declare -f jb_rabbit_env jb_rabbitmqctl); JB_RABBIT_BIN=$JB_RABBIT_BIN; \
    jb_rabbitmqctl '$dir' stop" >/dev/null 2>&1 || true
  if [ -n "$pid" ]; then
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/rabbit/rabbit.pid"
}

jb_rabbit_logs() {
  local dir=$1
  echo "=== RabbitMQ logs ($dir/rabbit) ==="
  cat "$dir/rabbit/start.log" 2>/dev/null
  tail -n 100 "$dir"/rabbit/log/*.log 2>/dev/null
}

jb_servers_logs() {
  local dir=$1
  echo "=== PostgreSQL log ($dir/pg/server.log) ==="
  tail -n 100 "$dir/pg/server.log" 2>/dev/null
  jb_rabbit_logs "$dir"
}

# jb_servers_start DIR [PG_PORT AMQP_PORT]: start both, export the URLs.
jb_servers_start() {
  local dir=$1
  JB_PG_PORT=${2:-$(jb_free_port)}
  JB_AMQP_PORT=${3:-$(jb_free_port)}
  mkdir -p "$dir"
  jb_pg_start "$dir" "$JB_PG_PORT" &
  local pg_pid=$!
  jb_rabbit_start "$dir" "$JB_AMQP_PORT" || { wait $pg_pid; return 1; }
  wait $pg_pid || return 1
  export JB_PG_PORT JB_AMQP_PORT JB_STATE_DIR="$dir"
  export JOBBRIDGE_DATABASE_URL="postgresql://jobbridge@127.0.0.1:$JB_PG_PORT/jobbridge"
  # No trailing slash: "amqp://host:port/" would name the empty vhost, not "/".
  export JOBBRIDGE_AMQP_URL="amqp://guest:guest@127.0.0.1:$JB_AMQP_PORT"
}

jb_servers_stop() {
  local dir=$1
  jb_rabbit_stop "$dir" &
  jb_pg_stop "$dir"
  wait
}
