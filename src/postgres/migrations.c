/* Versioned schema migrations. Each runs once, in order, inside the migrate transaction with
 * search_path set to the configured schema. Never edit a released migration: add one. */
#include "postgres/migrations.h"

const jb_migration jb_migrations[] = {
    {1, "jobs table",
     "CREATE TABLE jobs (\n"
     "  id uuid PRIMARY KEY,\n"
     "  queue_name text NOT NULL DEFAULT 'default',\n"
     "  job_type text NOT NULL,\n"
     "  payload jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),\n"
     "  priority int NOT NULL DEFAULT 0,\n"
     "  max_retries int NOT NULL DEFAULT 3 CHECK (max_retries >= 0),\n"
     "  retry_count int NOT NULL DEFAULT 0 CHECK (retry_count >= 0),\n"
     "  scheduled_at timestamptz NOT NULL DEFAULT now(),\n"
     "  started_at timestamptz,\n"
     "  completed_at timestamptz,\n"
     "  failed_at timestamptz,\n"
     "  created_at timestamptz NOT NULL DEFAULT now(),\n"
     "  updated_at timestamptz NOT NULL DEFAULT now(),\n"
     "  status text NOT NULL CHECK (status IN ('PENDING','SCHEDULED','RUNNING','COMPLETED',\n"
     "                                         'FAILED','RETRYING','DEAD_LETTER')),\n"
     "  error_message text,\n"
     "  created_by uuid,\n"
     "  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),\n"
     "  result jsonb,\n"
     "  progress int NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),\n"
     "  dedupe_key text UNIQUE,\n"
     "  locked_by text,\n"
     "  locked_until timestamptz\n"
     ");\n"
     /* The hot index: only waiting jobs, in claim order. Finished jobs never touch it. */
     "CREATE INDEX jobs_waiting_idx ON jobs (priority DESC, scheduled_at, id)\n"
     "  WHERE status IN ('PENDING','SCHEDULED','RETRYING');\n"
     /* Leases to reap: running jobs only. */
     "CREATE INDEX jobs_running_idx ON jobs (locked_until) WHERE status = 'RUNNING';\n"
     "CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id);\n"},
    {2, "outbox, cancellation, notifications",
     "ALTER TABLE jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;\n"
     /* One row per job event to publish; deleted only after the broker confirmed it. */
     "CREATE TABLE outbox (\n"
     "  id bigserial PRIMARY KEY,\n"
     "  job_id uuid NOT NULL,\n"
     "  message_id uuid NOT NULL DEFAULT gen_random_uuid(),\n"
     "  event_type text NOT NULL,\n"
     "  routing_key text NOT NULL,\n"
     "  correlation_id text,\n"
     "  data jsonb NOT NULL,\n"
     "  created_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     /* Wake idle workers when jobs arrive, and the relay when events do. Channels carry the
      * schema so two jobbridge deployments on one database do not wake each other. */
     "CREATE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$\n"
     "BEGIN PERFORM pg_notify('jobbridge_jobs_' || TG_TABLE_SCHEMA, ''); RETURN NULL; END $$;\n"
     "CREATE TRIGGER jobs_notify AFTER INSERT ON jobs\n"
     "  FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();\n"
     "CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$\n"
     "BEGIN PERFORM pg_notify('jobbridge_outbox_' || TG_TABLE_SCHEMA, ''); RETURN NULL; END $$;\n"
     "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox\n"
     "  FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();\n"},
    /* Workers that serve some queues (workers.queues) claim through this one: without it a
     * claim reads every waiting job of every other queue before it finds none of its own. */
    {3, "waiting jobs by queue",
     "CREATE INDEX jobs_waiting_queue_idx ON jobs (queue_name, priority DESC, scheduled_at, id)\n"
     "  WHERE status IN ('PENDING','SCHEDULED','RETRYING');\n"},
    /* Every status change writes a new row version, and a version enters every index whose
     * predicate it meets: the UNIQUE constraint took an entry for every NULL dedupe key, at
     * every claim and every finish. The same uniqueness, for keys only. */
    {4, "dedupe keys indexed only where present",
     "CREATE UNIQUE INDEX jobs_dedupe_key_idx ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL;\n"
     "ALTER TABLE jobs DROP CONSTRAINT jobs_dedupe_key_key;\n"},
    /* Every half second each instance asks which of its running jobs were asked to cancel.
     * Through the running-jobs index that read every entry left by jobs that ran since the
     * last vacuum (4 ms after 30 s at 1,000 jobs/s); cancellations are rare, so this index is
     * nearly empty. */
    {5, "running jobs asked to cancel",
     "CREATE INDEX jobs_cancel_requested_idx ON jobs (locked_by)\n"
     "  WHERE cancel_requested AND status = 'RUNNING';\n"},
    /* The notifications move out of the data transactions: jobbridge sends them itself once
     * the data has committed (see ST_NOTIFY in pg.c). A NOTIFY inside a transaction holds a
     * database-wide lock through that transaction's commit flush, so every ingest and every
     * finish queued behind the others' fsyncs. */
    {6, "notifications sent after commit, not from triggers",
     "DROP TRIGGER jobs_notify ON jobs;\n"
     "DROP TRIGGER outbox_notify ON outbox;\n"
     "DROP FUNCTION notify_jobs();\n"
     "DROP FUNCTION notify_outbox();\n"},
    /* A job event the broker cannot take (a channel error its publish caused, or properties
     * that cannot be encoded) is set aside with its reason instead of blocking every event
     * after it; the relay's fetch skips it. Nullable columns without a default: no rewrite. */
    {7, "outbox rows set aside with their reason",
     "ALTER TABLE outbox ADD COLUMN failed_at timestamptz, ADD COLUMN failed_reason text;\n"},
    /* The ScheduleTrigger's last firing per schedule, for its misfire policy after a stop. One
     * small row per schedule name, updated at each firing. */
    {8, "schedule state",
     "CREATE TABLE schedule_state (\n"
     "  name text PRIMARY KEY,\n"
     "  last_fire timestamptz NOT NULL,\n"
     "  updated_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n"},
    /* What a running job last said of its progress, beside `progress` (0..100). Nullable, no
     * default: no rewrite. */
    {11, "progress messages", "ALTER TABLE jobs ADD COLUMN progress_message text;\n"},
    /* The dashboard's throughput chart counts jobs finished per minute over the last hour: this
     * index holds finished rows only (one entry per finish, none for waiting or running jobs),
     * so the count reads the hour's finishes and nothing else. */
    {12, "finished jobs by time",
     "CREATE INDEX jobs_finished_idx ON jobs (updated_at)\n"
     "  WHERE status IN ('COMPLETED', 'FAILED', 'DEAD_LETTER');\n"},
};

const int jb_migrations_len = (int)(sizeof jb_migrations / sizeof jb_migrations[0]);
