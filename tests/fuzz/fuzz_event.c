/* libFuzzer target for the event parser and the mapping: arbitrary bodies, content types and
 * headers must never crash, leak or trip a sanitizer; a body that parses writes back as text
 * that parses to the same tree. Input layout: byte 0 picks the content
 * type and whether a ce-type header is set; the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/event.h"
#include "jobbridge/json.h"

static jb_config *cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  jb_error e;
  const char *text =
      "{\"mappings\": [{\"event_type\": \"#\", \"job_type\": \"a\"},"
      " {\"event_type\": \"*.x.#\", \"job_type\": \"a\", \"payload\": \"/data/p\"},"
      " {\"event_type\": \"a.*\", \"job_type\": \"a\", \"payload\": \"/0\"}],"
      " \"job_types\": {\"a\": {\"handler\": \"noop\"}}}";
  if (jb_config_parse(text, "fuzz", &cfg, &e) != JB_OK) abort();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  uint8_t mode = data[0];
  jb_header headers[2] = {{"ce-type", "a.x.b"}, {"ce-id", "1"}};
  jb_delivery_facts f = {
      .body = (const char *)data + 1,
      .body_len = size - 1,
      .content_type = (mode & 1) ? "application/cloudevents+json" : "application/json",
      .type_property = (mode & 2) ? "a.b" : NULL,
      .message_id = (mode & 4) ? "m" : NULL,
      .headers = headers,
      .n_headers = (mode & 8) ? 2 : 0,
  };
  jb_event ev;
  jb_error e;
  /* The one JSON writer writes back what the parser read: same text read again, same tree. */
  json_t *v;
  if (jb_json_parse(f.body, f.body_len, &v, &e) == JB_OK) {
    size_t len;
    char *text = jb_json_dumps(v, JB_JSON_COMPACT, &len);
    json_t *again;
    if (text == NULL || jb_json_parse(text, len, &again, &e) != JB_OK) abort();
    if (!json_equal(v, again)) abort();
    json_decref(again);
    free(text);
    json_decref(v);
  }
  if (jb_event_parse(&f, 4096, (mode & 16) != 0, &ev, &e) == JB_OK) {
    jb_mapped m;
    if (jb_event_map(cfg, &ev, &f, &m, &e) == JB_OK) jb_mapped_clear(&m);
    jb_event_clear(&ev);
  }
  return 0;
}
