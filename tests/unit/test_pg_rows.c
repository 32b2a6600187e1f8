/* Issue 12, item 9: reading a job row (jb_pg_row_to_job) keeps nothing when it refuses the row.
 * The row is built client-side (PQmakeEmptyPGresult, PQsetvalue): no server. A leak shows as
 * memory still in use after many refused rows (and as a LeakSanitizer report under ASan, where
 * mallinfo2 says nothing). */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "postgres/pg_internal.h"

#define NCOLS 22

/* A one-row result with the job columns (all text), status `status`. */
static PGresult *job_row(const char *status) {
  PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
  cr_assert_not_null(res);
  PGresAttDesc attrs[NCOLS];
  char names[NCOLS][8];
  memset(attrs, 0, sizeof attrs);
  for (int i = 0; i < NCOLS; i++) {
    snprintf(names[i], sizeof names[i], "c%d", i);
    attrs[i].name = names[i];
    attrs[i].typid = 25; /* text */
    attrs[i].typlen = -1;
    attrs[i].atttypmod = -1;
  }
  cr_assert(PQsetResultAttrs(res, NCOLS, attrs));
  const char *v[NCOLS] = {"0190a0b0-0000-7000-8000-000000000001",
                          "a_queue_name_long_enough_to_show",
                          "a_job_type_long_enough_to_show",
                          "{\"payload\": [1, 2, 3, \"some text\"]}",
                          "0",
                          "3",
                          "0",
                          "1",
                          NULL,
                          NULL,
                          NULL,
                          "1",
                          "1",
                          status,
                          "an error message",
                          NULL,
                          "{\"m\": 1}",
                          NULL,
                          "0",
                          "a-dedupe-key",
                          "host:1:abcd/w0",
                          "1"};
  for (int i = 0; i < NCOLS; i++)
    cr_assert(PQsetvalue(res, 0, i, (char *)v[i], v[i] ? (int)strlen(v[i]) : -1));
  return res;
}

Test(pg_rows, a_good_row_reads_and_clears) {
  PGresult *res = job_row("PENDING");
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_pg_row_to_job(res, 0, &job, &e), JB_OK, "%s", e.msg);
  cr_expect_str_eq(job.queue_name, "a_queue_name_long_enough_to_show");
  cr_expect_str_eq(job.dedupe_key, "a-dedupe-key");
  cr_expect_eq(job.status, JB_STATUS_PENDING);
  jb_job_clear(&job);
  PQclear(res);
}

Test(pg_rows, a_row_with_an_unknown_status_is_refused_and_keeps_nothing) {
  PGresult *res = job_row("SLEEPING");
  jb_job job;
  jb_error e;
  cr_assert_eq(jb_pg_row_to_job(res, 0, &job, &e), JB_ERR_DB);
  cr_expect(strstr(e.msg, "unknown status SLEEPING") != NULL, "%s", e.msg);
  cr_expect_null(job.queue_name, "the refused job holds nothing");
  cr_expect_null(job.payload);
  size_t before = mallinfo2().uordblks;
  for (int i = 0; i < 1000; i++) cr_assert_eq(jb_pg_row_to_job(res, 0, &job, &e), JB_ERR_DB);
  size_t after = mallinfo2().uordblks;
  /* Each refused row leaked its strings and payload (over 100 bytes): 1,000 leak > 100 kB. */
  cr_expect_lt(after, before + 4096, "memory in use grew by %zu bytes over 1,000 refused rows",
               after - before);
  PQclear(res);
}
