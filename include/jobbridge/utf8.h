/* UTF-8 as RFC 3629 defines it (shortest forms only, no surrogates, nothing above U+10FFFF):
 * one definition for every place that checks it (event facts, the JSON parser and writer, log
 * fields). Inline: the JSON parser calls it for every character that is not ASCII. */
#ifndef JOBBRIDGE_UTF8_H
#define JOBBRIDGE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length of the valid UTF-8 sequence at s, which has n >= 1 bytes left, or 0 when the bytes
 * at s do not start one. */
static inline size_t jb_utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

/* The offset of the first byte of s[0..n) that is not valid UTF-8, or -1 when all of it is. */
static inline long jb_utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t len = s[i] < 0x80 ? 1 : jb_utf8_seq(s + i, n - i);
    if (len == 0) return (long)i;
    i += len;
  }
  return -1;
}

#endif
