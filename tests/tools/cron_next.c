/* Prints next fire times for the croniter comparison (tests/integration/test_cron_croniter.py).
 * Each stdin line: "<zone>\t<expression>\t<after, seconds since the epoch>"; each stdout line:
 * the next fire time in seconds, "none", or "error <position> <why>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/cron.h"

int main(void) {
  char line[1024], zone[128] = "";
  jb_tz *tz = NULL;
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (t2 == NULL) {
      printf("error 0 bad input line\n");
      continue;
    }
    *t1 = *t2 = '\0';
    if (tz == NULL || strcmp(zone, line) != 0) {
      jb_tz_free(tz);
      tz = NULL;
      jb_error e;
      if (jb_tz_load(line, &tz, &e) != JB_OK) {
        printf("error 0 %s\n", e.msg);
        continue;
      }
      snprintf(zone, sizeof zone, "%.120s", line);
    }
    jb_cron c;
    size_t pos = 0;
    char why[200];
    if (!jb_cron_parse(t1 + 1, &c, &pos, why, sizeof why)) {
      printf("error %zu %s\n", pos, why);
      continue;
    }
    int64_t next;
    if (jb_cron_next(&c, tz, strtoll(t2 + 1, NULL, 10), &next))
      printf("%lld\n", (long long)next);
    else
      printf("none\n");
    fflush(stdout);
  }
  jb_tz_free(tz);
  return 0;
}
