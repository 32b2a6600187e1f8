/* Which jobs emit the opt-in lifecycle events (jobbridge/lifecycle.h). */
#include "jobbridge/lifecycle.h"

#include <stdlib.h>
#include <string.h>

static unsigned bits(char **names, size_t n) {
  unsigned b = 0;
  for (size_t i = 0; i < n; i++)
    b |= strcmp(names[i], "created") == 0   ? JB_EVENT_CREATED
         : strcmp(names[i], "started") == 0 ? JB_EVENT_STARTED
                                            : 0;
  return b;
}

unsigned jb_lifecycle_events(const jb_config *cfg, const char *job_type) {
  unsigned b = bits(cfg->events.lifecycle, cfg->events.lifecycle_len);
  const jb_job_type_cfg *jt = job_type != NULL ? jb_config_job_type(cfg, job_type) : NULL;
  if (jt != NULL) b |= bits(jt->events, jt->events_len);
  return b;
}

void jb_lifecycle_started_types(const jb_config *cfg, bool *all, const char ***types, size_t *n) {
  *all = (bits(cfg->events.lifecycle, cfg->events.lifecycle_len) & JB_EVENT_STARTED) != 0;
  *n = 0;
  *types = calloc(cfg->job_types_len + 1, sizeof **types);
  if (*all || *types == NULL) return;
  for (size_t i = 0; i < cfg->job_types_len; i++)
    if (bits(cfg->job_types[i].events, cfg->job_types[i].events_len) & JB_EVENT_STARTED)
      (*types)[(*n)++] = cfg->job_types[i].name;
}
