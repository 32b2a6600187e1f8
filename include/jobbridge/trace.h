/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent a job carries from
 * the event that created it to its handler and its outbound events. Pure code. */
#ifndef JOBBRIDGE_TRACE_H
#define JOBBRIDGE_TRACE_H

#include <stdbool.h>
#include <stddef.h>

/* "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>": 55 characters. */
#define JB_TRACEPARENT_LEN 55
/* A tracestate longer than this is dropped (the spec's 32 members fit in 512). */
#define JB_TRACESTATE_MAX 512

/* Copies a valid traceparent into out (JB_TRACEPARENT_LEN + 1 bytes) and returns true: version
 * two lower-case hex digits other than "ff", trace id 32 and parent id 16 lower-case hex digits
 * not all zero, flags two hex digits; version 00 is exactly that long, a later version may go
 * on after a '-' (only the first 55 characters are kept, as the spec reads it). Surrounding
 * blanks are ignored. False (out untouched) for anything else, including NULL. */
bool jb_traceparent_parse(const char *s, char *out);

/* A new traceparent in out (JB_TRACEPARENT_LEN + 1 bytes): version 00, a random 16-byte trace
 * id, a random 8-byte parent id, flags 01 (sampled). */
void jb_traceparent_new(char *out);

/* True for a tracestate jobbridge passes on: non-empty, at most JB_TRACESTATE_MAX bytes of
 * printable ASCII (the header's alphabet). */
bool jb_tracestate_valid(const char *s);

/* The trace id of a valid traceparent (32 characters) into out (33 bytes); "" for "" or NULL. */
void jb_trace_id(const char *traceparent, char *out);

#endif
