/* The one-shot commands: migrate, check-config, jobs create|get|list|cancel|retry, stats.
 * Results go to stdout as JSON; errors to stderr, with the exit codes of app.h. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/app.h"
#include "app/args.h"
#include "jobbridge/job_service.h"
#include "jobbridge/json.h"
#include "jobbridge/log.h"
#include "postgres/pg.h"

#define NSPECS(s) (sizeof(s) / sizeof((s)[0]))

/* What every command that talks to the database needs; opened by open_env, closed by close_env. */
typedef struct env {
  jb_config *cfg;
  jb_pg *pg;
  jb_job_service svc;
} env;

static int open_env(const char *config_opt, bool need_db, env *v) {
  memset(v, 0, sizeof *v);
  jb_error e;
  jb_error_clear(&e);
  const char *path = jb_config_path(config_opt);
  if (jb_config_load(path, &v->cfg, &e) != JB_OK || jb_check_db_url(v->cfg, path, &e) != JB_OK) {
    fprintf(stderr, "jobbridge: %s\n", e.msg);
    jb_config_free(v->cfg);
    v->cfg = NULL;
    return JB_EXIT_USAGE; /* a missing or bad config file, or a URL that cannot be parsed */
  }
  if (!need_db) return JB_EXIT_OK;
  if (jb_pg_connect(v->cfg->database.url, v->cfg->database.schema, &v->pg, &e) != JB_OK) {
    jb_config_free(v->cfg);
    v->cfg = NULL;
    return jb_report(&e);
  }
  jb_job_service_init(&v->svc, jb_pg_store(v->pg), jb_pg_work_queue(v->pg), v->cfg);
  return JB_EXIT_OK;
}

static void close_env(env *v) {
  jb_pg_close(v->pg);
  jb_config_free(v->cfg);
}

/* How results are printed: --output json|table; by default a table when stdout is a terminal
 * and JSON otherwise (scripts and pipes get the JSON they always got). */
typedef enum { OUT_JSON, OUT_TABLE } out_format;

static int output_format(const char *opt, out_format *f) {
  if (opt == NULL) {
    *f = isatty(STDOUT_FILENO) ? OUT_TABLE : OUT_JSON;
    return -1;
  }
  if (strcmp(opt, "json") == 0 || strcmp(opt, "table") == 0) {
    *f = opt[0] == 'j' ? OUT_JSON : OUT_TABLE;
    return -1;
  }
  fprintf(stderr, "jobbridge: --output \"%s\" is not json or table\n", opt);
  return JB_EXIT_USAGE;
}

/* Prints a JSON value on stdout (pretty) and consumes it. */
int jb_print_json(json_t *v) {
  if (v == NULL) {
    fprintf(stderr, "jobbridge: out of memory\n");
    return JB_EXIT_FAILURE;
  }
  /* jobbridge's one writer: numbers exactly as stored (jobbridge/json.h). */
  size_t len;
  char *text = jb_json_dumps(v, JB_JSON_INDENT, &len);
  json_decref(v);
  if (text == NULL) {
    fprintf(stderr, "jobbridge: cannot write the result as JSON (out of memory)\n");
    return JB_EXIT_FAILURE;
  }
  fwrite(text, 1, len, stdout);
  fputc('\n', stdout);
  free(text);
  return JB_EXIT_OK;
}

/* A value as a table cell (owned by the caller): strings as they are, null as "-", anything
 * else as compact JSON. */
static char *cell(const json_t *v) {
  if (v == NULL || json_is_null(v)) return strdup("-");
  if (json_is_string(v)) return strdup(json_string_value(v));
  char *t = jb_json_dumps(v, JB_JSON_COMPACT, NULL);
  return t != NULL ? t : strdup("?");
}

/* Prints the objects of arr as a table of the given columns (headers upper-cased keys) and
 * consumes arr. */
static int print_table(json_t *arr, const char *const *cols, size_t ncols) {
  if (arr == NULL) {
    fprintf(stderr, "jobbridge: out of memory\n");
    return JB_EXIT_FAILURE;
  }
  size_t rows = json_array_size(arr), width[16] = {0};
  for (size_t c = 0; c < ncols && c < 16; c++) {
    width[c] = strlen(cols[c]);
    for (size_t r = 0; r < rows; r++) {
      char *t = cell(json_object_get(json_array_get(arr, r), cols[c]));
      if (t != NULL && strlen(t) > width[c]) width[c] = strlen(t);
      free(t);
    }
  }
  for (size_t c = 0; c < ncols && c < 16; c++) {
    for (const char *p = cols[c]; *p; p++) putchar(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    printf("%*s", c + 1 < ncols ? (int)(width[c] - strlen(cols[c]) + 2) : 0, "");
  }
  putchar('\n');
  for (size_t r = 0; r < rows; r++) {
    for (size_t c = 0; c < ncols && c < 16; c++) {
      char *t = cell(json_object_get(json_array_get(arr, r), cols[c]));
      printf("%-*s", c + 1 < ncols ? (int)width[c] + 2 : 0, t != NULL ? t : "?");
      free(t);
    }
    putchar('\n');
  }
  json_decref(arr);
  return JB_EXIT_OK;
}

/* One object as "field  value" lines, in its order; consumes it. */
static int print_record(json_t *obj) {
  if (obj == NULL) {
    fprintf(stderr, "jobbridge: out of memory\n");
    return JB_EXIT_FAILURE;
  }
  size_t w = 0;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) if (strlen(key) > w) w = strlen(key);
  json_object_foreach(obj, key, v) {
    char *t = cell(v);
    printf("%-*s  %s\n", (int)w, key, t != NULL ? t : "?");
    free(t);
  }
  json_decref(obj);
  return JB_EXIT_OK;
}

static const char *const job_cols[] = {"id",       "job_type",    "queue_name", "status",
                                       "priority", "retry_count", "created_at", "error_message"};
static const char *const stats_cols[] = {"queue_name",     "pending_count",     "scheduled_count",
                                         "retrying_count", "running_count",     "completed_count",
                                         "failed_count",   "dead_letter_count", "total_count"};

static int print_job(jb_job *job, out_format f) {
  json_t *doc = jb_job_to_json(job);
  int code = f == OUT_TABLE ? print_record(doc) : jb_print_json(doc);
  jb_job_clear(job);
  return code;
}

/* Parses args; prints help or an error. Returns -1 to go on, else the exit code. */
static int parse(int argc, char **argv, const jb_opt_spec *specs, size_t n, jb_args *a,
                 const char *help, int min_pos, int max_pos) {
  char err[256];
  if (!jb_args_parse(argc, argv, specs, n, a, err, sizeof err)) {
    fprintf(stderr, "jobbridge: %s\n\n%s", err, help);
    return JB_EXIT_USAGE;
  }
  if (jb_args_get(a, specs, n, "help") != NULL) {
    fputs(help, stdout);
    return JB_EXIT_OK;
  }
  if (a->npos < min_pos || a->npos > max_pos) {
    fprintf(stderr, "jobbridge: wrong number of arguments\n\n%s", help);
    return JB_EXIT_USAGE;
  }
  return -1;
}

static const jb_opt_spec common_specs[] = {{"config", true}, {"help", false}};

int jb_cmd_migrate(int argc, char **argv) {
  static const char help[] =
      "usage: jobbridge migrate [--config FILE]\n"
      "Applies the database migrations not yet applied (safe to run again).\n";
  jb_args a;
  int code = parse(argc, argv, common_specs, NSPECS(common_specs), &a, help, 0, 0);
  if (code >= 0) return code;
  env v;
  code = open_env(jb_args_get(&a, common_specs, 2, "config"), true, &v);
  if (code != JB_EXIT_OK) return code;
  jb_error e;
  int applied = 0;
  if (jb_pg_migrate(v.pg, &applied, &e) != JB_OK)
    code = jb_report(&e);
  else
    code = jb_print_json(
        json_pack("{s:i, s:s}", "applied", applied, "schema", v.cfg->database.schema));
  close_env(&v);
  return code;
}

int jb_cmd_check_config(int argc, char **argv) {
  static const char help[] =
      "usage: jobbridge check-config [--config FILE]\n"
      "Validates the config (exit 2 naming the key at fault) and prints the effective config\n"
      "with defaults filled in and passwords redacted.\n";
  jb_args a;
  int code = parse(argc, argv, common_specs, NSPECS(common_specs), &a, help, 0, 0);
  if (code >= 0) return code;
  env v;
  code = open_env(jb_args_get(&a, common_specs, 2, "config"), false, &v);
  if (code != JB_EXIT_OK) return code;
  code = jb_print_json(jb_config_to_json(v.cfg));
  close_env(&v);
  return code;
}

static const char jobs_help[] =
    "usage: jobbridge jobs create TYPE --payload JSON [--queue Q] [--priority N]\n"
    "                             [--scheduled-at TIME] [--max-retries N] [--metadata JSON]\n"
    "                             [--dedupe-key KEY] [--created-by UUID]\n"
    "       jobbridge jobs get ID\n"
    "       jobbridge jobs list [--status S] [--type T] [--queue Q] [--limit N] [--offset N]\n"
    "       jobbridge jobs cancel ID\n"
    "       jobbridge jobs retry ID\n"
    "All take --config FILE. TIME is RFC 3339 with a zone (2026-11-22T10:00:00Z, offsets within\n"
    "+-23:59) or whole epoch seconds, from year 1 to 9999. N: --priority -1000000..1000000,\n"
    "--max-retries 0..1000, --limit 1..10000 (default 100), --offset 0..9223372036854775807.\n"
    "Output (--output json|table): the job (a list for list) as JSON, or as a table; the\n"
    "default is a table when stdout is a terminal and JSON otherwise.\n";

static const jb_opt_spec jobs_specs[] = {
    {"config", true},     {"help", false},        {"payload", true},     {"queue", true},
    {"priority", true},   {"scheduled-at", true}, {"max-retries", true}, {"metadata", true},
    {"dedupe-key", true}, {"created-by", true},   {"status", true},      {"type", true},
    {"limit", true},      {"offset", true},       {"output", true},
};

#define OPT(name) jb_args_get(&a, jobs_specs, NSPECS(jobs_specs), name)

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("jobbridge: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return JB_EXIT_USAGE;
}

/* Parses a JSON option that must be an object. */
static int json_object_opt(const char *name, const char *text, json_t **out) {
  json_t *v;
  jb_error e;
  if (jb_json_parse(text, strlen(text), &v, &e) != JB_OK) {
    fprintf(stderr, "jobbridge: --%s is not valid JSON (%s)\n", name, e.msg);
    return JB_EXIT_USAGE;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    fprintf(stderr, "jobbridge: --%s must be a JSON object\n", name);
    return JB_EXIT_USAGE;
  }
  *out = v;
  return JB_EXIT_OK;
}

/* The numeric, time and status options of jobs create and list, read before anything connects
 * so that every input error exits 2 with its message, database up or not. */
typedef struct job_opts {
  int priority;
  int max_retries; /* -1: the job type's */
  jb_time scheduled_at;
  int status; /* -1: any */
  long limit, offset;
  out_format out;
} job_opts;

static int parse_job_opts(const jb_args *p, job_opts *o) {
  jb_args a = *p;
  *o = (job_opts){.max_retries = -1, .status = -1};
  int code = output_format(OPT("output"), &o->out);
  if (code >= 0) return code;
  char err[512];
  long num;
  if (OPT("priority")) {
    if (!jb_parse_long_opt("priority", OPT("priority"), -1000000, 1000000, &num, err, sizeof err))
      return usage_error("%s", err);
    o->priority = (int)num;
  }
  if (OPT("max-retries")) {
    if (!jb_parse_long_opt("max-retries", OPT("max-retries"), 0, 1000, &num, err, sizeof err))
      return usage_error("%s", err);
    o->max_retries = (int)num;
  }
  jb_error e;
  if (OPT("scheduled-at") && jb_time_parse_err(OPT("scheduled-at"), &o->scheduled_at, &e) != JB_OK)
    return usage_error("--scheduled-at \"%s\" %s", OPT("scheduled-at"), e.msg);
  if (OPT("status")) {
    jb_job_status st;
    if (jb_status_parse(OPT("status"), &st) != JB_OK)
      return usage_error(
          "--status \"%s\" is not one of PENDING SCHEDULED RUNNING COMPLETED "
          "FAILED RETRYING DEAD_LETTER",
          OPT("status"));
    o->status = (int)st;
  }
  if (OPT("limit") &&
      !jb_parse_long_opt("limit", OPT("limit"), 1, 10000, &o->limit, err, sizeof err))
    return usage_error("%s", err);
  if (OPT("offset") &&
      !jb_parse_long_opt("offset", OPT("offset"), 0, LONG_MAX, &o->offset, err, sizeof err))
    return usage_error("%s", err);
  return -1;
}

static int jobs_create(jb_args *p, const job_opts *o, env *v) {
  jb_args a = *p;
  const char *payload_text = OPT("payload");
  if (payload_text == NULL) return usage_error("%s", "jobs create: --payload is required");
  jb_job_request req = {.job_type = a.pos[1], .queue_name = OPT("queue")};
  req.opts.dedupe_key = OPT("dedupe-key");
  req.opts.created_by = OPT("created-by");
  req.priority = o->priority;
  req.opts.max_retries = o->max_retries;
  req.opts.scheduled_at = o->scheduled_at;
  int code = json_object_opt("payload", payload_text, &req.payload);
  if (code != JB_EXIT_OK) return code;
  if (OPT("metadata")) {
    code = json_object_opt("metadata", OPT("metadata"), &req.opts.metadata);
    if (code != JB_EXIT_OK) goto out;
  }
  jb_job_creator creator = jb_job_service_creator(&v->svc);
  jb_create_outcome oc;
  jb_error e;
  jb_job job;
  if (jb_create_job(&creator, &req, &oc, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  if (oc.status == JB_CREATE_DUPLICATE)
    jb_log(JB_LOG_INFO, "duplicate dedupe key: returning the existing job", "job_id", oc.id,
           "dedupe_key", req.opts.dedupe_key, JB_LOG_END);
  if (jb_job_service_get(&v->svc, oc.id, &job, &e) != JB_OK) {
    code = jb_report(&e);
    goto out;
  }
  code = print_job(&job, o->out);
out:
  json_decref(req.payload);
  json_decref(req.opts.metadata);
  return code;
}

static int jobs_list(jb_args *p, const job_opts *o, env *v) {
  jb_args a = *p;
  jb_job_filter f = {.status = o->status,
                     .job_type = OPT("type"),
                     .queue_name = OPT("queue"),
                     .limit = o->limit,
                     .offset = o->offset};
  jb_job *jobs = NULL;
  size_t n = 0;
  jb_error e;
  if (jb_job_service_list(&v->svc, &f, &jobs, &n, &e) != JB_OK) return jb_report(&e);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, jb_job_to_json(&jobs[i]));
  jb_jobs_free(jobs, n);
  return o->out == OUT_TABLE ? print_table(arr, job_cols, NSPECS(job_cols)) : jb_print_json(arr);
}

static const char *const attempt_cols[] = {"attempt",     "worker",  "started_at",
                                           "duration_ms", "outcome", "error"};

/* The job with its attempt history ("attempts": oldest first); as a table, the job's fields
 * then a table of its attempts. */
static int jobs_get(env *v, const char *id, out_format f) {
  jb_error e;
  jb_job job;
  if (jb_job_service_get(&v->svc, id, &job, &e) != JB_OK) return jb_report(&e);
  jb_job_attempt *at = NULL;
  size_t n = 0;
  json_t *o = jb_job_to_json(&job);
  jb_job_clear(&job);
  if (jb_job_service_attempts(&v->svc, id, &at, &n, &e) != JB_OK) {
    json_decref(o);
    return jb_report(&e);
  }
  json_t *list = jb_job_attempts_to_json(at, n);
  jb_job_attempts_free(at, n);
  if (f != OUT_TABLE) {
    if (o != NULL)
      json_object_set_new(o, "attempts", list);
    else
      json_decref(list);
    return jb_print_json(o);
  }
  int code = print_record(o);
  if (code != JB_EXIT_OK) {
    json_decref(list);
    return code;
  }
  if (list == NULL) return print_record(NULL); /* out of memory */
  printf("\nattempts: %zu\n", n);
  if (n > 0) return print_table(list, attempt_cols, NSPECS(attempt_cols));
  json_decref(list);
  return code;
}

int jb_cmd_jobs(int argc, char **argv) {
  jb_args a;
  int code = parse(argc, argv, jobs_specs, NSPECS(jobs_specs), &a, jobs_help, 0, 2);
  if (code >= 0) return code;
  if (a.npos == 0) {
    fprintf(stderr, "jobbridge: jobs needs a subcommand\n\n%s", jobs_help);
    return JB_EXIT_USAGE;
  }
  const char *sub = a.pos[0];
  bool one_arg = strcmp(sub, "create") == 0 || strcmp(sub, "get") == 0 ||
                 strcmp(sub, "cancel") == 0 || strcmp(sub, "retry") == 0;
  if (!one_arg && strcmp(sub, "list") != 0) {
    fprintf(stderr, "jobbridge: unknown jobs subcommand \"%s\"\n\n%s", sub, jobs_help);
    return JB_EXIT_USAGE;
  }
  if (one_arg != (a.npos == 2)) {
    fprintf(stderr, "jobbridge: jobs %s takes %s\n\n%s", sub,
            one_arg ? (strcmp(sub, "create") == 0 ? "a job type" : "a job id") : "no argument",
            jobs_help);
    return JB_EXIT_USAGE;
  }
  job_opts o;
  code = parse_job_opts(&a, &o);
  if (code >= 0) return code;
  env v;
  code = open_env(OPT("config"), true, &v);
  if (code != JB_EXIT_OK) return code;
  jb_error e;
  jb_job job;
  jb_err rc = JB_OK;
  if (strcmp(sub, "create") == 0) {
    code = jobs_create(&a, &o, &v);
  } else if (strcmp(sub, "list") == 0) {
    code = jobs_list(&a, &o, &v);
  } else {
    if (strcmp(sub, "get") == 0) {
      code = jobs_get(&v, a.pos[1], o.out);
      close_env(&v);
      return code;
    } else if (strcmp(sub, "cancel") == 0)
      rc = jb_job_service_cancel(&v.svc, a.pos[1], &job, &e);
    else
      rc = jb_job_service_retry(&v.svc, a.pos[1], &job, &e);
    code = rc == JB_OK ? print_job(&job, o.out) : jb_report(&e);
  }
  close_env(&v);
  return code;
}

int jb_cmd_stats(int argc, char **argv) {
  static const char help[] =
      "usage: jobbridge stats [--config FILE] [--output json|table]\n"
      "Prints a JSON array with one QueueStats object per queue: queue_name, pending_count,\n"
      "running_count, completed_count, failed_count, dead_letter_count, and beside them\n"
      "scheduled_count, retrying_count, total_count (each job counted once, by status); or,\n"
      "with --output table (the default when stdout is a terminal), the same as a table.\n";
  static const jb_opt_spec specs[] = {{"config", true}, {"help", false}, {"output", true}};
  jb_args a;
  int code = parse(argc, argv, specs, NSPECS(specs), &a, help, 0, 0);
  if (code >= 0) return code;
  out_format f;
  if ((code = output_format(jb_args_get(&a, specs, NSPECS(specs), "output"), &f)) >= 0) return code;
  env v;
  code = open_env(jb_args_get(&a, specs, NSPECS(specs), "config"), true, &v);
  if (code != JB_EXIT_OK) return code;
  jb_queue_stats *s = NULL;
  size_t n = 0;
  jb_error e;
  if (jb_job_service_stats(&v.svc, &s, &n, &e) != JB_OK) {
    code = jb_report(&e);
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, jb_queue_stats_to_json(&s[i]));
    free(s);
    code = f == OUT_TABLE ? print_table(arr, stats_cols, NSPECS(stats_cols)) : jb_print_json(arr);
  }
  close_env(&v);
  return code;
}
