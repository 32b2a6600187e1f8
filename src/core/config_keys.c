/* Every config key, declared once: path, type, where it lives in jb_config, default (JSON text;
 * NULL: required), bounds, whether SIGHUP reloads it, and its doc line (README's key table and
 * `jobbridge config-keys` print it). A new key is one line here plus its field in config.h. */
#include "core/config_keys.h"

#include <stddef.h>

#include "jobbridge/config.h"

#define CFG(field) offsetof(jb_config, field)
#define MAP(field) offsetof(jb_mapping, field)
#define JT(field) offsetof(jb_job_type_cfg, field)

static const key_decl mapping_keys[] = {
    {"event_type", K_STRING, MAP(event_type), 0, NULL, 0, 0, true,
     "event type pattern (AMQP topic rules: `*` one word, `#` zero or more)", NULL, 0, 0},
    {"job_type", K_STRING, MAP(job_type), 0, NULL, 0, 0, true,
     "job type to create; must be registered in job_types", NULL, 0, 0},
    {"queue", K_STRING, MAP(queue), 0, "\"default\"", 0, 0, true, "queue of the new job", NULL, 0,
     0},
    {"priority", K_INT, MAP(priority), 0, "0", -1000000, 1000000, true,
     "priority of the new job (higher runs first)", NULL, 0, 0},
    {"max_retries", K_INT, MAP(max_retries), 0, "-1", -1, 1000, true,
     "retries of the new job (-1: the job type's)", NULL, 0, 0},
    {"delay_s", K_NUMBER, MAP(delay_s), 0, "0", 0, 31536000, true,
     "run the job this many seconds after the event arrived", NULL, 0, 0},
    {"payload", K_STRING, MAP(payload), 0, "null", 0, 0, true,
     "JSON pointer into the event body selecting the job payload (default: payload/data)", NULL, 0,
     0},
    {"metadata", K_OBJECT, MAP(metadata), 0, "null", 0, 0, true,
     "static metadata merged into each job's metadata", NULL, 0, 0},
};

static const key_decl job_type_keys[] = {
    {"handler", K_STRING, JT(handler), 0, NULL, 0, 0, false, "noop or exec", NULL, 0, 0},
    {"command", K_STRINGS, JT(command), JT(command_len), "[]", 0, 0, false,
     "exec: argv of the program to run (no shell)", NULL, 0, 0},
    {"timeout_s", K_NUMBER, JT(timeout_s), 0, "300", 0.001, 604800, false,
     "exec: a run longer than this is killed and retried", NULL, 0, 0},
    {"max_retries", K_INT, JT(max_retries), 0, "3", 0, 1000, false,
     "default retries of jobs of this type", NULL, 0, 0},
    {"env", K_OBJECT, JT(env), 0, "{}", 0, 0, false,
     "exec: fixed environment variables of the program (name -> string)", NULL, 0, 0},
    {"env_passthrough", K_STRINGS, JT(env_passthrough), JT(env_passthrough_len), "[]", 0, 0, false,
     "exec: names of variables copied from jobbridge's environment when set there", NULL, 0, 0},
    {"retry.base_s", K_NUMBER, JT(retry.base_s), 0, "null", 0, 86400, false,
     "first retry delay of jobs of this type (null: retry.base_s)", NULL, 0, 0},
    {"retry.max_s", K_NUMBER, JT(retry.max_s), 0, "null", 0, 604800, false,
     "cap on the retry delay of jobs of this type (null: retry.max_s)", NULL, 0, 0},
    {"retry.jitter", K_NUMBER, JT(retry.jitter), 0, "null", 0, 1, false,
     "random fraction of each retry delay of jobs of this type (null: retry.jitter)", NULL, 0, 0},
};

static const table MAPPING = {mapping_keys, NKEYS(mapping_keys), "mappings[].", "mapping"};
static const table JOB_TYPE = {job_type_keys, NKEYS(job_type_keys), "job_types.*.", "job type"};

static const key_decl root_keys[] = {
    {"amqp.url", K_STRLIST, CFG(amqp.urls), CFG(amqp.urls_len),
     "\"amqp://guest:guest@127.0.0.1:5672\"", 0, 0, false,
     "AMQP 0-9-1 URL of the broker (amqps:// for TLS), or a list of a cluster's nodes tried in "
     "turn; JOBBRIDGE_AMQP_URL (comma-separated for a list) overrides it",
     NULL, 0, 0},
    {"amqp.url_file", K_STRING, CFG(amqp.url_file), 0, "null", 0, 0, false,
     "a file holding amqp.url (one URL, or a cluster's, one a line or comma-separated), so the "
     "password stays out of the config; JOBBRIDGE_AMQP_URL still overrides it",
     NULL, 0, 0},
    {"amqp.tls.ca_file", K_STRING, CFG(amqp.tls.ca_file), 0, "null", 0, 0, false,
     "amqps: PEM file of the CAs that sign the broker's certificate (null: the system's, "
     "/etc/ssl/certs/ca-certificates.crt)",
     NULL, 0, 0},
    {"amqp.tls.cert_file", K_STRING, CFG(amqp.tls.cert_file), 0, "null", 0, 0, false,
     "amqps: PEM client certificate, for brokers that ask for one (with amqp.tls.key_file)", NULL,
     0, 0},
    {"amqp.tls.key_file", K_STRING, CFG(amqp.tls.key_file), 0, "null", 0, 0, false,
     "amqps: PEM private key of the client certificate", NULL, 0, 0},
    {"amqp.tls.verify_peer", K_BOOL, CFG(amqp.tls.verify_peer), 0, "true", 0, 0, false,
     "amqps: refuse a broker whose certificate no trusted CA signed (turn off only to test)", NULL,
     0, 0},
    {"amqp.tls.verify_hostname", K_BOOL, CFG(amqp.tls.verify_hostname), 0, "true", 0, 0, false,
     "amqps: refuse a broker whose certificate does not name the URL's host", NULL, 0, 0},
    {"amqp.heartbeat_s", K_INT, CFG(amqp.heartbeat_s), 0, "15", 0, 600, false,
     "AMQP heartbeat interval in seconds (0 turns heartbeats off; not advised)", NULL, 0, 0},
    {"amqp.prefetch", K_INT, CFG(amqp.prefetch), 0, "1000", 1, 65535, false,
     "unacknowledged deliveries the broker may send each consumer", NULL, 0, 0},
    {"amqp.input.exchange", K_STRING, CFG(amqp.input.exchange), 0, "\"jobbridge.events\"", 0, 0,
     false, "exchange producers publish domain events to (declared durable)", NULL, 0, 0},
    {"amqp.input.exchange_type", K_STRING, CFG(amqp.input.exchange_type), 0, "\"topic\"", 0, 0,
     false, "type of the input exchange: topic, direct, fanout or headers", NULL, 0, 0},
    {"amqp.input.queue", K_STRING, CFG(amqp.input.queue), 0, "\"jobbridge.events\"", 0, 0, false,
     "durable queue jobbridge consumes events from", NULL, 0, 0},
    {"amqp.input.bindings", K_STRINGS, CFG(amqp.input.bindings), CFG(amqp.input.bindings_len),
     "[\"#\"]", 0, 0, false, "routing keys binding the input queue to the input exchange", NULL, 0,
     0},
    {"amqp.input.queue_type", K_STRING, CFG(amqp.input.queue_type), 0, "\"classic\"", 0, 0, false,
     "classic or quorum (quorum for high availability)", NULL, 0, 0},
    {"amqp.input.dead_letter_exchange", K_STRING, CFG(amqp.input.dead_letter_exchange), 0,
     "\"jobbridge.dead-letter\"", 0, 0, false,
     "durable topic exchange that receives dead-lettered events with an x-jobbridge-error header",
     NULL, 0, 0},
    {"amqp.output.exchange", K_STRING, CFG(amqp.output.exchange), 0, "\"jobbridge.jobs\"", 0, 0,
     false, "durable topic exchange job events (job.<status>.<job_type>) are published to", NULL, 0,
     0},
    {"amqp.output.exchange_type", K_STRING, CFG(amqp.output.exchange_type), 0, "\"topic\"", 0, 0,
     false, "type of the output exchange", NULL, 0, 0},
    {"amqp.output.alternate_exchange", K_STRING, CFG(amqp.output.alternate_exchange), 0, "null", 0,
     0, false,
     "when set, unroutable job events go to this durable fanout exchange and its durable queue "
     "of the same name (declared as the output exchange's alternate-exchange); null: they are "
     "returned, counted, logged and dropped",
     NULL, 0, 0},
    {"database.url", K_STRING, CFG(database.url), 0,
     "\"postgresql://jobbridge@127.0.0.1:5432/jobbridge\"", 0, 0, false,
     "libpq connection URL; JOBBRIDGE_DATABASE_URL overrides it", NULL, 0, 0},
    {"database.url_file", K_STRING, CFG(database.url_file), 0, "null", 0, 0, false,
     "a file holding database.url, so the password stays out of the config; "
     "JOBBRIDGE_DATABASE_URL still overrides it",
     NULL, 0, 0},
    {"database.schema", K_STRING, CFG(database.schema), 0, "\"jobbridge\"", 0, 0, false,
     "PostgreSQL schema holding jobbridge's tables", NULL, 0, 0},
    {"ingest.batch_max", K_INT, CFG(ingest.batch_max), 0, "200", 1, 10000, false,
     "deliveries gathered into one database transaction at most", NULL, 0, 0},
    {"ingest.batch_wait_ms", K_INT, CFG(ingest.batch_wait_ms), 0, "20", 0, 60000, false,
     "longest wait for a batch to fill before it is committed anyway", NULL, 0, 0},
    {"ingest.consumers", K_INT, CFG(ingest.consumers), 0, "2", 1, 64, false,
     "AMQP consumers (each its own connection, thread and database connection)", NULL, 0, 0},
    {"ingest.max_body_bytes", K_INT, CFG(ingest.max_body_bytes), 0, "1048576", 1, 134217728, false,
     "larger event bodies are dead-lettered", NULL, 0, 0},
    {"ingest.require_event_id", K_BOOL, CFG(ingest.require_event_id), 0, "false", 0, 0, false,
     "dead-letter events that carry no id (otherwise they are accepted without deduplication)",
     NULL, 0, 0},
    {"ingest.max_waiting", K_INT, CFG(ingest.max_waiting), 0, "0", 0, 100000000, false,
     "backpressure: stop taking deliveries while the mappings' queues hold this many waiting jobs "
     "(0: off)",
     NULL, 0, 0},
    {"ingest.resume_waiting", K_INT, CFG(ingest.resume_waiting), 0, "0", 0, 100000000, false,
     "backpressure: take deliveries again below this many waiting jobs (0: 80% of "
     "ingest.max_waiting)",
     NULL, 0, 0},
    {"workers.enabled", K_BOOL, CFG(workers.enabled), 0, "true", 0, 0, false,
     "run workers in this instance (false: an ingest-only instance)", NULL, 0, 0},
    {"workers.threads", K_INT, CFG(workers.threads), 0, "0", 0, 256, false,
     "worker threads (0: two per core, at least 4)", NULL, 0, 0},
    {"workers.queues", K_STRINGS, CFG(workers.queues), CFG(workers.queues_len), "[]", 0, 0, false,
     "queues the workers serve (empty: all)", NULL, 0, 0},
    {"workers.lease_s", K_INT, CFG(workers.lease_s), 0, "30", 1, 86400, false,
     "lease of a running job, renewed while its handler runs", NULL, 0, 0},
    {"workers.poll_ms", K_INT, CFG(workers.poll_ms), 0, "1000", 10, 600000, false,
     "how often idle workers look for due jobs when no notification wakes them", NULL, 0, 0},
    {"workers.shutdown_grace_s", K_NUMBER, CFG(workers.shutdown_grace_s), 0, "30", 0, 86400, false,
     "on SIGTERM, how long running handlers may finish before they are stopped", NULL, 0, 0},
    {"retry.base_s", K_NUMBER, CFG(retry.base_s), 0, "1", 0, 86400, false,
     "first retry delay; each further retry doubles it", NULL, 0, 0},
    {"retry.max_s", K_NUMBER, CFG(retry.max_s), 0, "300", 0, 604800, false,
     "cap on the retry delay", NULL, 0, 0},
    {"retry.jitter", K_NUMBER, CFG(retry.jitter), 0, "0.2", 0, 1, false,
     "random fraction added to or taken from each retry delay", NULL, 0, 0},
    {"http.listen", K_NSTRING, CFG(http.listen), 0, "\"127.0.0.1:8080\"", 0, 0, false,
     "address of the HTTP API, health and metrics (host:port; port 0: any free port; null: no "
     "HTTP server)",
     NULL, 0, 0},
    {"http.max_body_bytes", K_INT, CFG(http.max_body_bytes), 0, "1048576", 1, 134217728, false,
     "larger request bodies are refused with 413", NULL, 0, 0},
    {"http.max_connections", K_INT, CFG(http.max_connections), 0, "256", 1, 65536, false,
     "HTTP connections served at once (a thread each); more wait in the listen backlog", NULL, 0,
     0},
    {"http.request_timeout_s", K_INT, CFG(http.request_timeout_s), 0, "30", 1, 3600, false,
     "an HTTP connection idle this long (a slow or stalled client) is closed", NULL, 0, 0},
    {"http.db_connections", K_INT, CFG(http.db_connections), 0, "4", 1, 256, false,
     "database connections serving API reads, cancels and retries (a request waits for a free "
     "one)",
     NULL, 0, 0},
    {"mappings", K_ARRAY, CFG(mappings), CFG(mappings_len), "[]", 0, 0, true,
     "the mapping table: event type pattern -> job (reloaded on SIGHUP)", &MAPPING,
     sizeof(jb_mapping), 0},
    {"job_types", K_MAP, CFG(job_types), CFG(job_types_len), "{}", 0, 0, false,
     "registered job types and their handlers", &JOB_TYPE, sizeof(jb_job_type_cfg), JT(name)},
};

const table jb_config_root = {root_keys, NKEYS(root_keys), "", NULL};
