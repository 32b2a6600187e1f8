/* The http handler's pure parts (private to src/handlers): the request body, the URL of a job,
 * the signature, and what a response means. http_handler.c does the I/O (libcurl). */
#ifndef JOBBRIDGE_HANDLERS_HTTP_HANDLER_H
#define JOBBRIDGE_HANDLERS_HTTP_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "jobbridge/job.h"

/* url with every "{id}" replaced by id and every "{job_type}" by job_type (percent-encoded
 * except for unreserved characters). A new string the caller frees; NULL when out of memory. */
char *jb_http_url_expand(const char *url, const char *id, const char *job_type);

/* The Jobbridge-Signature header value: "t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by
 * secret>" into out (>= JB_HTTP_SIGNATURE_LEN bytes). False when GnuTLS fails. */
#define JB_HTTP_SIGNATURE_LEN 96
bool jb_http_sign(const char *secret, time_t t, const char *body, size_t body_len, char *out,
                  size_t len);

/* A Retry-After value (delta-seconds or an HTTP-date, read against now) in ms; 0 when absent,
 * malformed or in the past. At most a day. */
int64_t jb_http_retry_after_ms(const char *value, time_t now);

/* What an HTTP status means for the job: 2xx success; 408, 425, 429 and 5xx retriable; any
 * other status a final failure. */
typedef enum { JB_HTTP_SUCCESS, JB_HTTP_RETRIABLE, JB_HTTP_FINAL } jb_http_class;
jb_http_class jb_http_classify(long status);

/* Fills r from a finished response: status, body (body_len bytes, need not be NUL-terminated),
 * and the Retry-After header's value (NULL if none). 2xx: success, with a JSON object body as
 * result_data (any other body is ignored); otherwise the error "HTTP <status>: <first bytes of
 * the body>" and retriable by jb_http_classify, retry_after_ms from Retry-After. */
void jb_http_result(long status, const char *body, size_t body_len, const char *retry_after,
                    time_t now, jb_job_result *r);

/* How many bytes of a failed response's body reach error_message. */
#define JB_HTTP_ERROR_BODY_BYTES 200

#endif
