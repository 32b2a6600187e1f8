/* The exec handler's environment and program lookup: what a child may see, built per run. */
#include "handlers/exec_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* Passed on from jobbridge's environment when set there, unless the job type says otherwise. */
static const char *const BASE_NAMES[] = {"PATH", "HOME", "LANG", "TZ", NULL};

/* execvp's search path when PATH is unset (confstr(_CS_PATH) on glibc). */
#define DEFAULT_PATH "/bin:/usr/bin"

const char *jb_env_name_problem(const char *name) {
  if (name == NULL || *name == '\0') return "an environment variable name must not be empty";
  if (strchr(name, '=') != NULL) return "an environment variable name must not contain '='";
  return NULL;
}

/* The "NAME=value" entry of jobbridge's environment for name, or NULL (borrowed). The
 * environment is not changed while jobbridge runs, so reading it from workers is safe. */
static char *env_entry(const char *name) {
  size_t n = strlen(name);
  for (char **e = environ; e && *e; e++)
    if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') return *e;
  return NULL;
}

static bool has_name(char *const *envp, size_t k, const char *entry) {
  size_t n = strcspn(entry, "=");
  for (size_t i = 0; i < k; i++)
    if (strncmp(envp[i], entry, n) == 0 && envp[i][n] == '=') return true;
  return false;
}

char **jb_exec_env_build(char *const *fixed, char *const *passthrough, const char *job_id,
                         const char *job_type, const char *traceparent, const char *tracestate) {
  size_t nf = 0, np = 0;
  while (fixed && fixed[nf]) nf++;
  while (passthrough && passthrough[np]) np++;
  if (traceparent != NULL && *traceparent == '\0') traceparent = NULL;
  if (traceparent == NULL || (tracestate != NULL && *tracestate == '\0')) tracestate = NULL;
  /* One block: the pointer array, then the job variables' text. */
  size_t nptr = nf + np + 4 + 4 + 1;
  size_t id_len = strlen("JOBBRIDGE_JOB_ID=") + strlen(job_id) + 1;
  size_t type_len = strlen("JOBBRIDGE_JOB_TYPE=") + strlen(job_type) + 1;
  size_t tp_len = traceparent ? strlen("TRACEPARENT=") + strlen(traceparent) + 1 : 0;
  size_t ts_len = tracestate ? strlen("TRACESTATE=") + strlen(tracestate) + 1 : 0;
  char **envp = malloc(nptr * sizeof *envp + id_len + type_len + tp_len + ts_len);
  if (envp == NULL) return NULL;
  char *id_var = (char *)(envp + nptr), *type_var = id_var + id_len;
  char *tp_var = type_var + type_len, *ts_var = tp_var + tp_len;
  snprintf(id_var, id_len, "JOBBRIDGE_JOB_ID=%s", job_id);
  snprintf(type_var, type_len, "JOBBRIDGE_JOB_TYPE=%s", job_type);
  size_t k = 0;
  /* In order of precedence: the job's own, the job type's fixed values, the names it passes
   * through, then the base names; a later entry of a name already there is skipped. */
  envp[k++] = id_var;
  envp[k++] = type_var;
  if (traceparent != NULL) {
    snprintf(tp_var, tp_len, "TRACEPARENT=%s", traceparent);
    envp[k++] = tp_var;
  }
  if (tracestate != NULL) {
    snprintf(ts_var, ts_len, "TRACESTATE=%s", tracestate);
    envp[k++] = ts_var;
  }
  for (size_t i = 0; i < nf; i++)
    if (!has_name(envp, k, fixed[i])) envp[k++] = fixed[i];
  for (size_t i = 0; i < np; i++) {
    char *e = env_entry(passthrough[i]);
    if (e != NULL && !has_name(envp, k, e)) envp[k++] = e;
  }
  for (size_t i = 0; BASE_NAMES[i]; i++) {
    char *e = env_entry(BASE_NAMES[i]);
    if (e != NULL && !has_name(envp, k, e)) envp[k++] = e;
  }
  envp[k] = NULL;
  return envp;
}

static bool executable_file(const char *path) {
  struct stat st;
  return access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int jb_exec_resolve(const char *prog, char *const *envp, char **out) {
  *out = NULL;
  if (strchr(prog, '/') != NULL) {
    *out = strdup(prog);
    return *out ? 0 : ENOMEM;
  }
  const char *path = DEFAULT_PATH;
  for (size_t i = 0; envp[i]; i++)
    if (strncmp(envp[i], "PATH=", 5) == 0) path = envp[i] + 5;
  size_t plen = strlen(prog);
  int err = ENOENT;
  for (const char *dir = path;; dir++) {
    size_t dlen = strcspn(dir, ":");
    char *cand = malloc(dlen + plen + 3);
    if (cand == NULL) return ENOMEM;
    /* An empty entry is the current directory, as execvp takes it. */
    snprintf(cand, dlen + plen + 3, "%.*s%s%s", (int)(dlen ? dlen : 1), dlen ? dir : ".", "/",
             prog);
    if (executable_file(cand)) {
      *out = cand;
      return 0;
    }
    if (errno == EACCES) err = EACCES;
    free(cand);
    dir += dlen;
    if (*dir == '\0') break;
  }
  return err;
}
