/* jb_bench: the benchmark's own load generators and raw ceilings, written directly on
 * rabbitmq-c and libpq (no jobbridge code), each printing one JSON object on stdout.
 *   publish URL EXCHANGE ROUTING N MODE   MODE raw (~150 B to a queue) or events (~200 B JSON,
 *                                         three event types); persistent, confirms, window 512 (the
 * relay's) consume URL QUEUE N PREFETCH          consume + multiple-ack every 250 pg-insert DBURL N
 * BATCH               multi-row INSERT into a jobs-shaped table count URL QUEUE N TIMEOUT_S consume
 * until N messages; time of the last latency URL EXCHANGE RATE SECONDS OUTQUEUE   paced events in,
 * job.completed out */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "jb_bench: %s\n", what);
  exit(1);
}

static void check(amqp_rpc_reply_t r, const char *what) {
  if (r.reply_type != AMQP_RESPONSE_NORMAL) die(what);
}

static amqp_connection_state_t connect_amqp(const char *url) {
  char *copy = strdup(url);
  struct amqp_connection_info info;
  if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) die("bad AMQP URL");
  amqp_connection_state_t conn = amqp_new_connection();
  amqp_socket_t *sock = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(sock, info.host, info.port) != AMQP_STATUS_OK) die("cannot connect");
  check(
      amqp_login(conn, info.vhost, 0, 131072, 30, AMQP_SASL_METHOD_PLAIN, info.user, info.password),
      "login");
  amqp_channel_open(conn, 1);
  check(amqp_get_rpc_reply(conn), "channel");
  free(copy);
  return conn;
}

/* Reads confirms until `confirmed` reaches `target`. */
static void wait_confirms(amqp_connection_state_t conn, uint64_t *confirmed, uint64_t target) {
  while (*confirmed < target) {
    amqp_frame_t f;
    if (amqp_simple_wait_frame(conn, &f) != AMQP_STATUS_OK) die("confirm wait");
    if (f.frame_type != AMQP_FRAME_METHOD) continue;
    if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      amqp_basic_ack_t *a = f.payload.method.decoded;
      if (a->delivery_tag > *confirmed) *confirmed = a->delivery_tag;
    } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      die("nack");
    }
  }
}

static const char *const event_types[] = {"order.created", "user.signup", "invoice.paid"};

static int cmd_publish(char **a) {
  const char *url = a[0], *exchange = a[1], *routing = a[2], *mode = a[4];
  long n = atol(a[3]);
  bool events = strcmp(mode, "events") == 0;
  amqp_connection_state_t conn = connect_amqp(url);
  amqp_confirm_select(conn, 1);
  check(amqp_get_rpc_reply(conn), "confirm.select");
  if (!events) {
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(routing), 0, 1, 0, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(conn), "declare");
  }
  amqp_basic_properties_t props = {0};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");
  char body[512];
  uint64_t sent = 0, confirmed = 0;
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    const char *type = event_types[i % 3];
    if (events)
      snprintf(body, sizeof body,
               "{\"event_type\":\"%s\",\"id\":\"bench-%ld\",\"source\":\"bench\",\"data\":"
               "{\"account\":\"acct-%ld\",\"amount\":%ld,\"currency\":\"EUR\",\"note\":"
               "\"benchmark event of about two hundred bytes\"}}",
               type, i, i % 997, i % 10000);
    else
      snprintf(body, sizeof body,
               "{\"seq\":%ld,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
               i);
    if (amqp_basic_publish(conn, 1, amqp_cstring_bytes(events ? exchange : ""),
                           amqp_cstring_bytes(events ? type : routing), 0, 0, &props,
                           amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
      die("publish");
    sent++;
    if (sent - confirmed >= 512) wait_confirms(conn, &confirmed, sent - 256);
  }
  wait_confirms(conn, &confirmed, sent);
  double dt = now_s() - t0;
  printf("{\"count\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", n, dt, n / dt);
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
  return 0;
}

static int cmd_consume(char **a) {
  const char *url = a[0], *queue = a[1];
  long n = atol(a[2]);
  amqp_connection_state_t conn = connect_amqp(url);
  amqp_basic_qos(conn, 1, 0, (uint16_t)atoi(a[3]), 0);
  check(amqp_get_rpc_reply(conn), "qos");
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                     amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "consume");
  double t0 = 0;
  long got = 0;
  uint64_t last = 0;
  while (got < n) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    struct timeval tv = {30, 0};
    amqp_rpc_reply_t r = amqp_consume_message(conn, &env, &tv, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) die("consume timed out");
    if (got == 0) t0 = now_s();
    got++;
    last = env.delivery_tag;
    if (got % 250 == 0) amqp_basic_ack(conn, 1, last, 1);
    amqp_destroy_envelope(&env);
  }
  amqp_basic_ack(conn, 1, last, 1);
  double dt = now_s() - t0;
  printf("{\"count\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", n, dt, n / dt);
  amqp_destroy_connection(conn);
  return 0;
}

static PGconn *pg(const char *url) {
  PGconn *c = PQconnectdb(url);
  if (PQstatus(c) != CONNECTION_OK) die(PQerrorMessage(c));
  return c;
}

static void sql(PGconn *c, const char *q) {
  PGresult *r = PQexec(c, q);
  if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
    die(PQerrorMessage(c));
  PQclear(r);
}

static int cmd_pg_insert(char **a) {
  PGconn *c = pg(a[0]);
  long n = atol(a[1]), batch = atol(a[2]);
  sql(c,
      "DROP TABLE IF EXISTS bench_raw; CREATE TABLE bench_raw (id uuid PRIMARY KEY, "
      "queue_name text NOT NULL, job_type text NOT NULL, payload jsonb NOT NULL, priority int "
      "NOT NULL, status text NOT NULL, metadata jsonb NOT NULL, dedupe_key text UNIQUE, "
      "scheduled_at timestamptz NOT NULL DEFAULT now(), created_at timestamptz NOT NULL "
      "DEFAULT now())");
  size_t cap = (size_t)batch * 400 + 256;
  char *q = malloc(cap);
  double t0 = now_s();
  for (long done = 0; done < n; done += batch) {
    size_t len = (size_t)snprintf(q, cap,
                                  "INSERT INTO bench_raw (id, queue_name, job_type, "
                                  "payload, priority, status, metadata, dedupe_key) VALUES ");
    for (long i = done; i < done + batch && i < n; i++)
      len += (size_t)snprintf(q + len, cap - len,
                              "%s(gen_random_uuid(), 'default', 'noop', '{\"account\": %ld, "
                              "\"amount\": 5}', 0, 'PENDING', '{\"event_id\": \"e-%ld\"}', "
                              "'e-%ld|noop')",
                              i > done ? "," : "", i, i, i);
    sql(c, q);
  }
  double dt = now_s() - t0;
  printf("{\"count\": %ld, \"seconds\": %.3f, \"rate\": %.0f}\n", n, dt, n / dt);
  sql(c, "DROP TABLE bench_raw");
  free(q);
  PQfinish(c);
  return 0;
}

static int cmd_count(char **a) {
  const char *url = a[0], *queue = a[1];
  long n = atol(a[2]);
  int timeout = atoi(a[3]);
  amqp_connection_state_t conn = connect_amqp(url);
  amqp_basic_qos(conn, 1, 0, 1000, 0);
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "consume");
  long got = 0;
  double deadline = now_s() + timeout, last = 0;
  while (got < n && now_s() < deadline) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    struct timeval tv = {1, 0};
    if (amqp_consume_message(conn, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL) continue;
    got++;
    last = now_s();
    amqp_destroy_envelope(&env);
  }
  printf("{\"count\": %ld, \"last\": %.6f}\n", got, last);
  amqp_destroy_connection(conn);
  return got == n ? 0 : 1;
}

/* ---- latency: one thread publishes at a steady rate, the main thread reads job.completed
 * events; an event id carries its publish time in microseconds. ---- */

typedef struct lat_pub {
  const char *url, *exchange;
  double rate, seconds;
  long sent;
} lat_pub;

static void *latency_publisher(void *arg) {
  lat_pub *p = arg;
  amqp_connection_state_t conn = connect_amqp(p->url);
  amqp_confirm_select(conn, 1);
  check(amqp_get_rpc_reply(conn), "confirm.select");
  amqp_basic_properties_t props = {0};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;
  uint64_t confirmed = 0;
  double t0 = now_s();
  long total = (long)(p->rate * p->seconds);
  char body[256];
  for (long i = 0; i < total; i++) {
    double due = t0 + i / p->rate;
    double wait = due - now_s();
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
    snprintf(body, sizeof body,
             "{\"event_type\":\"lat.ping\",\"id\":\"lat-%ld-%.0f\",\"data\":{\"seq\":%ld}}", i,
             now_s() * 1e6, i);
    if (amqp_basic_publish(conn, 1, amqp_cstring_bytes(p->exchange), amqp_cstring_bytes("lat.ping"),
                           0, 0, &props, amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
      die("publish");
    p->sent++;
    /* Keep a window of confirms, never one by one: read what has arrived, without waiting. */
    struct timeval zero = {0, 0};
    amqp_frame_t f;
    while (amqp_simple_wait_frame_noblock(conn, &f, &zero) == AMQP_STATUS_OK) {
      if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t *ack = f.payload.method.decoded;
        if (ack->delivery_tag > confirmed) confirmed = ack->delivery_tag;
      }
    }
  }
  wait_confirms(conn, &confirmed, (uint64_t)p->sent);
  amqp_destroy_connection(conn);
  return NULL;
}

/* The "time" of a CloudEvents body (the start of the transaction that finished the job), in
 * microseconds since the epoch; -1 if absent. */
static double event_time_us(amqp_bytes_t body) {
  char buf[4096];
  size_t len = body.len < sizeof buf - 1 ? body.len : sizeof buf - 1;
  memcpy(buf, body.bytes, len);
  buf[len] = '\0';
  const char *t = strstr(buf, "\"time\":\"");
  struct tm tm = {0};
  long usec = 0;
  if (t == NULL || sscanf(t + 8, "%d-%d-%dT%d:%d:%d.%6ld", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                          &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &usec) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (double)timegm(&tm) * 1e6 + (double)usec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int cmd_latency(char **a) {
  lat_pub p = {a[0], a[1], atof(a[2]), atof(a[3]), 0};
  const char *outq = a[4];
  long total = (long)(p.rate * p.seconds);
  amqp_connection_state_t conn = connect_amqp(p.url);
  amqp_basic_qos(conn, 1, 0, 1000, 0);
  amqp_basic_consume(conn, 1, amqp_cstring_bytes(outq), amqp_empty_bytes, 0, 1, 0,
                     amqp_empty_table);
  check(amqp_get_rpc_reply(conn), "consume");
  pthread_t t;
  pthread_create(&t, NULL, latency_publisher, &p);
  double *lat = calloc((size_t)total, sizeof *lat);
  double *tail = calloc((size_t)total, sizeof *tail); /* the event's "time" to its arrival */
  long got = 0, ntail = 0;
  double deadline = now_s() + p.seconds + 60;
  while (got < total && now_s() < deadline) {
    amqp_envelope_t env;
    amqp_maybe_release_buffers(conn);
    struct timeval tv = {1, 0};
    if (amqp_consume_message(conn, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL) continue;
    double recv = now_s() * 1e6;
    amqp_basic_properties_t *pr = &env.message.properties;
    if (pr->_flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
      char id[128];
      size_t len = pr->correlation_id.len < 127 ? pr->correlation_id.len : 127;
      memcpy(id, pr->correlation_id.bytes, len);
      id[len] = '\0';
      const char *dash = strrchr(id, '-');
      if (strncmp(id, "lat-", 4) == 0 && dash) {
        lat[got++] = (recv - atof(dash + 1)) / 1000.0;
        double finished = event_time_us(env.message.body);
        if (finished > 0) tail[ntail++] = (recv - finished) / 1000.0;
      }
    }
    amqp_destroy_envelope(&env);
  }
  pthread_join(t, NULL);
  qsort(lat, (size_t)got, sizeof *lat, cmp_double);
  qsort(tail, (size_t)ntail, sizeof *tail, cmp_double);
#define PCT(q) (got ? lat[(long)((got - 1) * (q))] : -1)
  printf(
      "{\"sent\": %ld, \"received\": %ld, \"p50_ms\": %.2f, \"p95_ms\": %.2f, \"p99_ms\": "
      "%.2f, \"max_ms\": %.2f, \"finish_to_receive_p50_ms\": %.2f}\n",
      p.sent, got, PCT(0.50), PCT(0.95), PCT(0.99), got ? lat[got - 1] : -1,
      ntail ? tail[ntail / 2] : -1);
  free(lat);
  free(tail);
  amqp_destroy_connection(conn);
  return got == total ? 0 : 1;
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int nargs;
    int (*fn)(char **);
  } cmds[] = {{"publish", 5, cmd_publish},
              {"consume", 4, cmd_consume},
              {"pg-insert", 3, cmd_pg_insert},
              {"count", 4, cmd_count},
              {"latency", 5, cmd_latency}};
  for (size_t i = 0; argc >= 2 && i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(argv[1], cmds[i].name) == 0) {
      if (argc - 2 != cmds[i].nargs) die("wrong number of arguments");
      return cmds[i].fn(argv + 2);
    }
  die("usage: jb_bench publish|consume|pg-insert|count|latency ...");
  return 2;
}
