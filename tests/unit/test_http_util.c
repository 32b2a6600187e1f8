/* Issue 16, item 1: the http handler's pure parts: URL placeholders, the signature (checked
 * against an independent HMAC: openssl's command line), Retry-After, and what each status
 * class does to the job. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers/http_handler.h"

Test(http_util, url_placeholders_are_replaced_and_encoded) {
  char *u = jb_http_url_expand("http://h/x/{job_type}/{id}?again={id}", "abc-1", "a b/c");
  cr_expect_str_eq(u, "http://h/x/a%20b%2Fc/abc-1?again=abc-1");
  free(u);
  u = jb_http_url_expand("http://h/{idx}/{job_type", "1", "t");
  cr_expect_str_eq(u, "http://h/{idx}/{job_type", "only the exact placeholders");
  free(u);
}

Test(http_util, the_signature_is_hmac_sha256_of_t_dot_body) {
  const char *body = "{\"id\":\"x\",\"n\":1}";
  char sig[JB_HTTP_SIGNATURE_LEN];
  cr_assert(jb_http_sign("s3cret", 1700000000, body, strlen(body), sig, sizeof sig));
  /* An independent HMAC of the same message. */
  FILE *p = popen(
      "printf '%s' '1700000000.{\"id\":\"x\",\"n\":1}' | "
      "openssl dgst -sha256 -hmac s3cret -r | cut -d' ' -f1",
      "r");
  cr_assert_not_null(p);
  char hex[80] = "";
  cr_assert_not_null(fgets(hex, sizeof hex, p));
  pclose(p);
  hex[strcspn(hex, "\n")] = '\0';
  char want[128];
  snprintf(want, sizeof want, "t=1700000000,v1=%s", hex);
  cr_expect_str_eq(sig, want);
  cr_expect_eq(strlen(hex), 64);
}

Test(http_util, retry_after_seconds_dates_and_garbage) {
  time_t now = 1700000000; /* Tue, 14 Nov 2023 22:13:20 GMT */
  cr_expect_eq(jb_http_retry_after_ms("7", now), 7000);
  cr_expect_eq(jb_http_retry_after_ms(" 0 ", now), 0);
  cr_expect_eq(jb_http_retry_after_ms("Tue, 14 Nov 2023 22:13:50 GMT", now), 30000);
  cr_expect_eq(jb_http_retry_after_ms("Tue, 14 Nov 2023 22:00:00 GMT", now), 0, "past");
  cr_expect_eq(jb_http_retry_after_ms("soon", now), 0);
  cr_expect_eq(jb_http_retry_after_ms("-5", now), 0);
  cr_expect_eq(jb_http_retry_after_ms("12abc", now), 0);
  cr_expect_eq(jb_http_retry_after_ms(NULL, now), 0);
  cr_expect_eq(jb_http_retry_after_ms("999999999", now), 86400000, "at most a day");
}

Test(http_util, status_classes) {
  long ok[] = {200, 201, 204, 299};
  long retry[] = {408, 425, 429, 500, 502, 503, 504, 599};
  long final[] = {400, 401, 403, 404, 409, 410, 422, 302, 100};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    cr_expect_eq(jb_http_classify(ok[i]), JB_HTTP_SUCCESS, "%ld", ok[i]);
  for (size_t i = 0; i < sizeof retry / sizeof *retry; i++)
    cr_expect_eq(jb_http_classify(retry[i]), JB_HTTP_RETRIABLE, "%ld", retry[i]);
  for (size_t i = 0; i < sizeof final / sizeof *final; i++)
    cr_expect_eq(jb_http_classify(final[i]), JB_HTTP_FINAL, "%ld", final[i]);
}

Test(http_util, results_of_each_class) {
  jb_job_result r;
  memset(&r, 0, sizeof r);
  jb_http_result(200, "{\"a\":1}", 7, NULL, 0, &r);
  cr_expect(r.success);
  cr_expect_eq(json_integer_value(json_object_get(r.result_data, "a")), 1);
  jb_job_result_clear(&r);
  memset(&r, 0, sizeof r);
  jb_http_result(204, "[1]", 3, NULL, 0, &r);
  cr_expect(r.success && r.result_data == NULL, "not an object: no result");
  jb_job_result_clear(&r);
  memset(&r, 0, sizeof r);
  jb_http_result(503, "busy\nnow", 8, "12", 0, &r);
  cr_expect(!r.success && r.retriable);
  cr_expect_eq(r.retry_after_ms, 12000);
  cr_expect_str_eq(r.error_message, "HTTP 503: busy now");
  jb_job_result_clear(&r);
  memset(&r, 0, sizeof r);
  char big[1000];
  memset(big, 'x', sizeof big);
  jb_http_result(422, big, sizeof big, "12", 0, &r);
  cr_expect(!r.success && !r.retriable);
  cr_expect_eq(r.retry_after_ms, 0, "a final failure is not retried at all");
  cr_expect_eq(strlen(r.error_message), strlen("HTTP 422: ") + JB_HTTP_ERROR_BODY_BYTES);
  jb_job_result_clear(&r);
}
