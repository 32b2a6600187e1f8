/* What the JSON parser (json.c) and writer (json_write.c) share; private to src/core. */
#ifndef JB_CORE_JSON_IMPL_H
#define JB_CORE_JSON_IMPL_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the shortest text that reads back as v (see jb_json_write); returns its length. The
 * parser keeps a real as a double only when this gives back the text it read. */
size_t jb_json_format_real(double v, char out[40]);

/* True if the n bytes at s are exactly one JSON number (RFC 8259 grammar). */
bool jb_json_number_syntax(const char *s, size_t n);

#endif
