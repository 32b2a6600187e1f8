/* The ScheduleTrigger: a JobTrigger that creates a job at each firing of the schedules[] of the
 * config (cron expressions in a time zone, jobbridge/cron.h). Every instance runs every schedule;
 * each firing's job carries the dedupe key "schedule:<name>:<fire time, RFC 3339 UTC>", so any
 * number of instances create exactly one job per firing. The last firing of each schedule is
 * recorded (a ScheduleStore) so that firings missed while no instance ran follow the schedule's
 * misfire policy on the next start. */
#ifndef JOBBRIDGE_SCHEDULE_H
#define JOBBRIDGE_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "jobbridge/config.h"
#include "jobbridge/cron.h"
#include "jobbridge/job_creator.h"
#include "jobbridge/job_trigger.h"

/* The ScheduleStore port: the last fire time recorded per schedule name (seconds since the
 * epoch). Used by one thread at a time. */
typedef struct jb_schedule_store_ops {
  /* *found false when the schedule never fired. */
  jb_err (*last_fire)(void *self, const char *name, int64_t *out, bool *found, jb_error *e);
  /* Records fire as the last firing unless a later one is recorded already. */
  jb_err (*record_fire)(void *self, const char *name, int64_t fire, jb_error *e);
} jb_schedule_store_ops;

typedef struct jb_schedule_store {
  const jb_schedule_store_ops *ops;
  void *self;
} jb_schedule_store;

/* Checks schedules[] of a loaded config: unique names of [A-Za-z0-9_.-], expressions that parse
 * (the message names the key path and the position in the expression), zones that exist, job
 * types registered, misfire skip|once|all. JB_ERR_CONFIG naming `file`. */
jb_err jb_schedules_check(const char *file, const jb_config *cfg, jb_error *e) JB_MUST_CHECK;

/* Compiles one entry's expression and zone (*tz owned by the caller). */
jb_err jb_schedule_compile(const jb_schedule_cfg *s, jb_cron *cron, jb_tz **tz,
                           jb_error *e) JB_MUST_CHECK;

/* The dedupe key of a firing: "schedule:<name>:2026-03-29T01:00:00Z". */
void jb_schedule_dedupe_key(const char *name, int64_t fire, char *buf, size_t len);

/* How a job of a schedule comes to be, recorded in its metadata. */
typedef enum {
  JB_FIRE_ON_TIME = 0,
  JB_FIRE_CATCH_UP, /* a missed firing, created by the misfire policy: metadata misfire */
  JB_FIRE_MANUAL,   /* `schedules run NAME`: no dedupe key, metadata manual: true */
} jb_fire_kind;

/* Creates the job of firing `fire` of s through c. jitter in [0, 1): the fraction of s->jitter_s
 * the job waits after its fire time. Metadata: s->metadata plus schedule, fire_time. */
jb_err jb_schedule_fire(const jb_schedule_cfg *s, const jb_job_creator *c, int64_t fire,
                        jb_fire_kind kind, double jitter, jb_create_outcome *out,
                        jb_error *e) JB_MUST_CHECK;

typedef struct jb_schedule_trigger jb_schedule_trigger;

/* A trigger over cfg's schedules (copied), creating jobs through creator and recording firings
 * in store; both are borrowed, used by the trigger's thread only, and must outlive it. cfg is
 * borrowed too: reloads are checked against its registered job types. */
jb_err jb_schedule_trigger_new(const jb_config *cfg, jb_job_creator creator,
                               jb_schedule_store store, jb_schedule_trigger **out,
                               jb_error *e) JB_MUST_CHECK;

jb_job_trigger jb_schedule_trigger_port(jb_schedule_trigger *t);

/* Replaces the schedules with next's (copied; next stays the caller's), from any thread: added
 * ones start at their next firing, changed ones (expression or zone) from now, removed ones
 * stop. Refused (logged, the old ones stay) when an entry names a job type the running config
 * does not register. */
jb_err jb_schedule_trigger_reload(jb_schedule_trigger *t, const jb_config *next,
                                  jb_error *e) JB_MUST_CHECK;

/* Stops it if running, then frees it. NULL-safe. */
void jb_schedule_trigger_free(jb_schedule_trigger *t);

#endif
