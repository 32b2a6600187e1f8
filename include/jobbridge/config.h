/* jobbridge's configuration: one JSON file, every key declared once (name, type, default,
 * reloadable, doc) in src/core/config.c. */
#ifndef JOBBRIDGE_CONFIG_H
#define JOBBRIDGE_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jobbridge/err.h"
#include "jobbridge/outcome.h"

/* One row of the mapping table: events whose type matches `event_type` become jobs. */
typedef struct jb_mapping {
  char *event_type; /* AMQP topic pattern: `*` one word, `#` zero or more */
  char *job_type;
  char *queue;
  int priority;
  int max_retries; /* -1: the job type's */
  double delay_s;
  char *payload;    /* JSON pointer into the event, NULL: the event's payload/data */
  json_t *metadata; /* static metadata merged into each job's metadata, NULL if none */
} jb_mapping;

typedef struct jb_job_type_cfg {
  char *name;
  char *handler;  /* "noop" | "exec" | "http" */
  char **command; /* argv for exec, NULL-terminated; NULL for other handlers */
  size_t command_len;
  double timeout_s;
  int max_retries;
  json_t *env;            /* exec: fixed variables, name -> string value; NULL if none */
  char **env_passthrough; /* exec: names copied from jobbridge's environment, NULL-terminated */
  size_t env_passthrough_len;
  int processes;        /* process: how many long-lived processes serve this type */
  int concurrency;      /* asynchronous handlers (http): jobs of this type in flight at most */
  bool progress_events; /* publish job.progress events */
  /* How failed runs of this type are retried: job_types.*.retry.*, each unset field the global
   * retry.* (filled in by loading, so always complete after it). */
  jb_retry_policy retry;
  char **events; /* lifecycle events of this type besides events.lifecycle; NULL-terminated */
  size_t events_len;
  /* http handler (src/handlers/http_handler.c): job_types.*.url, method, headers, ca_file,
   * signing_secret; NULL / {} when unset. */
  char *url; /* {id} and {job_type} are replaced per job */
  char *method;
  json_t *headers; /* name -> string */
  char *ca_file;
  char *signing_secret;
} jb_job_type_cfg;

/* amqp.input.*: where events come in. */
typedef struct jb_amqp_input_cfg {
  char *exchange;
  char *exchange_type;
  char *queue;
  char **bindings; /* NULL-terminated */
  size_t bindings_len;
  char *queue_type;
  char *dead_letter_exchange;
} jb_amqp_input_cfg;

/* amqp.output.*: where job events go out. */
typedef struct jb_amqp_output_cfg {
  char *exchange;
  char *exchange_type;
  char *alternate_exchange; /* NULL or "" when none */
} jb_amqp_output_cfg;

/* amqp.*: the broker and both directions of traffic. */
typedef struct jb_amqp_tls_cfg {
  char *ca_file;   /* NULL: the system's bundle */
  char *cert_file; /* client certificate (with key_file), or NULL */
  char *key_file;
  bool verify_peer;
  bool verify_hostname;
} jb_amqp_tls_cfg;

typedef struct jb_amqp_cfg {
  char **urls; /* amqp.url: one URL or a list of a cluster's nodes, tried in turn; NULL-ended */
  size_t urls_len;
  char *url;      /* urls[0] (borrowed from urls) */
  char *url_file; /* amqp.url_file: a file holding the URL(s) instead (a secret), or NULL */
  int heartbeat_s;
  int prefetch;
  jb_amqp_input_cfg input;
  jb_amqp_output_cfg output;
  jb_amqp_tls_cfg tls;
} jb_amqp_cfg;

/* database.* */
typedef struct jb_database_cfg {
  char *url;
  char *url_file; /* database.url_file: a file holding the URL instead (a secret), or NULL */
  char *schema;
} jb_database_cfg;

/* ingest.*: how events become jobs. */
typedef struct jb_ingest_cfg {
  int batch_max;
  int batch_wait_ms;
  int consumers;
  int max_body_bytes;
  bool require_event_id;
  int max_waiting;    /* backpressure: pause consuming at this many waiting jobs (0: off) */
  int resume_waiting; /* ... and resume below this many (0: 80% of max_waiting) */
} jb_ingest_cfg;

/* workers.* */
typedef struct jb_workers_cfg {
  bool enabled;
  int threads;   /* 0: number of cores */
  char **queues; /* NULL-terminated; empty: all queues */
  size_t queues_len;
  int lease_s;
  int poll_ms;
  double shutdown_grace_s;
} jb_workers_cfg;

/* http.webhooks.<name>: one webhook, POST /v1/webhooks/<name> (src/http/webhooks.c). */
typedef struct jb_webhook_cfg {
  char *name;               /* its key: the last segment of its URL */
  char *mode;               /* "event" (routed through the mapping table) | "job" (a job request) */
  char *signature;          /* "github" | "stripe" | "hmac" | "token" */
  char *secret;             /* the shared HMAC secret; filled from secret_env when that is set */
  char *secret_env;         /* the environment variable holding the secret, or NULL */
  int tolerance_s;          /* stripe: how far the signed timestamp may be from now */
  char *header;             /* hmac: the header carrying the signature */
  char *prefix;             /* hmac: text before the hex digest in that header (NULL: none) */
  char **allowed_job_types; /* mode job: the job types it may create (NULL-terminated) */
  size_t allowed_job_types_len;
  char *event_type_header; /* mode event: a header naming the event type when the body names
                              none (e.g. X-GitHub-Event), or NULL */
  char *dedupe; /* where the dedupe key comes from when the event has none: "/json/pointer" into
                   the body or "header:<Name>"; NULL: no fallback */
} jb_webhook_cfg;
/* http.tokens[]: a bearer token, known by its SHA-256 digest. */
typedef struct jb_http_token_cfg {
  char *name;       /* logged instead of the token */
  char *sha256;     /* 64 hex digits; filled from sha256_env by loading when that is set */
  char *sha256_env; /* NULL, or the environment variable holding the digest */
  char **scopes;    /* "read", "write", "admin"; NULL-terminated */
  size_t scopes_len;
} jb_http_token_cfg;

/* http.*: the HTTP face (src/http/). */
typedef struct jb_http_cfg {
  char *listen; /* host:port; NULL: no HTTP server */
  int max_body_bytes;
  int max_connections;
  int request_timeout_s;
  /* http.webhooks.*: a map of tables, each named by its key */
  jb_webhook_cfg *webhooks;
  size_t webhooks_len;
  int db_connections;         /* database connections lent to requests that read or change jobs */
  int max_header_bytes;       /* a connection's memory for the request line and headers */
  int max_connections_per_ip; /* 0: no limit */
  int header_timeout_s;       /* the request line and headers must be in within this */
  jb_http_token_cfg *tokens;  /* http.tokens[] */
  size_t tokens_len;
  char *tls_cert;     /* http.tls.cert: PEM file; NULL: plain HTTP */
  char *tls_key;      /* http.tls.key */
  char *progress_key; /* keys progress tokens (progress_token.h); NULL: random */
} jb_http_cfg;

/* One entry of schedules[]: a cron expression in a zone that creates a job at each firing
 * (jobbridge/schedule.h). */
typedef struct jb_schedule_cfg {
  char *name;
  char *cron;     /* jobbridge/cron.h syntax: 5 fields, a 6th for seconds last, or @daily ... */
  char *timezone; /* IANA zone name */
  char *job_type;
  json_t *payload; /* a JSON object */
  char *queue;
  int priority;
  int max_retries;  /* -1: the job type's */
  json_t *metadata; /* merged into each job's metadata; NULL if none */
  double jitter_s;  /* each job runs up to this many seconds after its fire time, at random */
  bool enabled;
  char *misfire; /* "skip" | "once" | "all" */
  int misfire_max;
} jb_schedule_cfg;
/* retention.*: how long finished jobs are kept (src/core/retention.c). The strings are the
 * durations as written ("7d"; NULL: forever); loading parses them into the *_s fields. */
typedef struct jb_retention_cfg {
  char *completed;
  char *failed;
  char *dead_letter;
  int interval_s;
  int batch;
  bool vacuum;         /* VACUUM the pruned tables after a pass that deleted rows */
  int64_t completed_s; /* parsed; -1: kept forever */
  int64_t failed_s;
  int64_t dead_letter_s;
} jb_retention_cfg;

/* events.*: lifecycle events besides the outcome events (src/core/lifecycle.c). */
typedef struct jb_events_cfg {
  char **lifecycle; /* "created", "started"; NULL-terminated */
  size_t lifecycle_len;
} jb_events_cfg;

/* retry.*: the global retry policy (base_s, max_s, jitter), the one of job types that set none
 * of their own. */
typedef jb_retry_policy jb_retry_cfg;

/* The whole file: one member per top-level section, each of the section's type. */
typedef struct jb_config {
  jb_amqp_cfg amqp;
  jb_database_cfg database;
  jb_ingest_cfg ingest;
  jb_workers_cfg workers;
  jb_retry_cfg retry;
  jb_http_cfg http;
  jb_retention_cfg retention;
  jb_events_cfg events;
  jb_mapping *mappings; /* mappings[]: an array of tables */
  size_t mappings_len;
  struct jb_topic_index *mapping_index; /* the mappings' patterns compiled by jb_config_load
                                          and jb_config_parse (jobbridge/topic.h); owned */
  const char **mapping_patterns;        /* the index's pattern list (borrowed strings); owned */
  jb_job_type_cfg *job_types;           /* job_types.*: a map of tables, each named by its key */
  size_t job_types_len;
  jb_schedule_cfg *schedules; /* schedules[]: an array of tables */
  size_t schedules_len;
} jb_config;

/* Loads and validates a config file; JOBBRIDGE_AMQP_URL / JOBBRIDGE_DATABASE_URL override the
 * URLs. On error returns JB_ERR_CONFIG with e->msg naming the file and the key path (or line and
 * column for malformed JSON, or "<path> is a directory", "<path> is empty"), JB_ERR_IO when the
 * file cannot be opened or read ("<path>: cannot open config file: Permission denied"). A URL that
 * cannot be read is a config error whose message says what is wrong without quoting the URL
 * (jb_url_problem). *out is a new config the caller frees. */
jb_err jb_config_load(const char *path, jb_config **out, jb_error *e) JB_MUST_CHECK;

/* The same from a JSON text already in memory (`name` is used in messages). */
jb_err jb_config_parse(const char *text, const char *name, jb_config **out,
                       jb_error *e) JB_MUST_CHECK;

void jb_config_free(jb_config *cfg);

/* The effective config (defaults filled in, URLs' passwords redacted) as a new JSON object. */
json_t *jb_config_to_json(const jb_config *cfg);

/* The registered job type of that name, or NULL (borrowed from cfg). */
const jb_job_type_cfg *jb_config_job_type(const jb_config *cfg, const char *name);

/* The retry policy of a job type: its job_types.*.retry.*, or the global retry.* for a type
 * that is not registered (or NULL). */
jb_retry_policy jb_config_retry_policy(const jb_config *cfg, const char *job_type);

/* Declared keys, for tests and docs: path ("amqp.input.queue", "mappings[].job_type",
 * "job_types.*.handler"), a one-line doc, whether SIGHUP reloads it. The path is held in the
 * struct (no shared static buffer), so jb_config_keys is reentrant. */
typedef struct jb_config_key_info {
  char path[96];
  const char *doc;
  bool reloadable;
} jb_config_key_info;

/* Fills out[0..max) and returns how many keys there are (more than max: the rest is left out).
 * Reentrant and thread-safe: it writes only to out. */
size_t jb_config_keys(jb_config_key_info *out, size_t max);

#endif
