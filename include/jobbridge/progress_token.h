/* Progress tokens: what lets a service a job was handed to report that job's progress over HTTP
 * (POST /v1/jobs/{id}/progress) without a bearer token of its own. A token is the hex
 * HMAC-SHA256 of the job id under a secret: it is good for that one job only, and only while it
 * runs (the endpoint takes progress of RUNNING jobs only). The secret is http.progress_key
 * when set (every instance sharing it accepts the others' tokens), else 32 random bytes drawn
 * once per process (a token is then good only on the instance that issued it). */
#ifndef JOBBRIDGE_PROGRESS_TOKEN_H
#define JOBBRIDGE_PROGRESS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/err.h"

/* 64 hex digits and the NUL. */
#define JB_PROGRESS_TOKEN_LEN 65

/* Sets the secret (copied; NULL or "" keeps the random one). Call before any thread issues or
 * checks a token (serve.c, at start-up). */
jb_err jb_progress_token_set_secret(const char *secret, jb_error *e) JB_MUST_CHECK;

/* The token of a job (any thread): out gets 64 lower-case hex digits. */
jb_err jb_progress_token(const char *job_id, char out[JB_PROGRESS_TOKEN_LEN],
                         jb_error *e) JB_MUST_CHECK;

/* The request header a handler sends the token in, and the whole header line for libcurl's
 * header list: "Jobbridge-Progress-Token: <token>" (out holds JB_PROGRESS_HEADER_LEN bytes). */
#define JB_PROGRESS_TOKEN_HEADER "Jobbridge-Progress-Token"
#define JB_PROGRESS_HEADER_LEN (sizeof JB_PROGRESS_TOKEN_HEADER + 2 + JB_PROGRESS_TOKEN_LEN)
jb_err jb_progress_token_header(const char *job_id, char *out, jb_error *e) JB_MUST_CHECK;

/* Whether token is the job's token, compared in constant time (any thread). */
bool jb_progress_token_check(const char *job_id, const char *token);

#endif
