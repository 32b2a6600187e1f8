/* The exec handler's environment rule and program lookup (private to src/handlers). */
#ifndef JOBBRIDGE_HANDLERS_EXEC_ENV_H
#define JOBBRIDGE_HANDLERS_EXEC_ENV_H

#include <stdbool.h>

/* NULL if name may name an environment variable (non-empty, no '='), else what is wrong with it
 * (static text). */
const char *jb_env_name_problem(const char *name);

/* A child's whole environment, nothing else: JOBBRIDGE_JOB_ID and JOBBRIDGE_JOB_TYPE (and
 * TRACEPARENT, TRACESTATE: the job's trace context, when not NULL or empty), then
 * `fixed` ("NAME=value" entries), then each name of `passthrough` set in jobbridge's environment,
 * then PATH, HOME, LANG and TZ when set there; the first entry of a name wins. The result is one
 * allocation the caller frees with free(); its entries borrow from fixed and from environ.
 * NULL when out of memory. */
char **jb_exec_env_build(char *const *fixed, char *const *passthrough, const char *job_id,
                         const char *job_type, const char *traceparent, const char *tracestate);

/* The file to execute for prog: prog itself when it holds a '/', else the first executable
 * regular file in the PATH of envp (the child's PATH, /bin:/usr/bin if none). Returns 0 and a
 * new string in *out (the caller frees it), or ENOENT, EACCES or ENOMEM. */
int jb_exec_resolve(const char *prog, char *const *envp, char **out);

struct jb_job;
/* The job as exec and process handlers' programs read it (and the http handler's body): one
 * line of compact JSON with id, job_type, queue_name, payload, metadata, retry_count,
 * max_retries, and traceparent (tracestate) when the job has one (a new string, free(); NULL
 * when out of memory). */
char *jb_exec_job_input(const struct jb_job *job);

#endif
