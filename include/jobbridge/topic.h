/* AMQP topic patterns: matching an event type against a pattern (`*` one word, `#` zero or
 * more, words separated by '.'), checking a pattern, and an index that finds the patterns of a
 * whole mapping table that match a type without testing them all. Pure code. */
#ifndef JOBBRIDGE_TOPIC_H
#define JOBBRIDGE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#include "jobbridge/err.h"

/* Like an AMQP routing key: a pattern (and an event type) is at most this many bytes. */
#define JB_TOPIC_MAX 255

/* Whether topic matches pattern. Linear: at most (pattern words + 1) x (topic words + 1) word
 * comparisons, whatever the pattern (no backtracking beyond the last `#`). */
bool jb_topic_match(const char *pattern, const char *topic);

/* Checks a pattern: at most JB_TOPIC_MAX bytes, non-empty words, `*` and `#` only as whole
 * words. On failure writes why (a sentence fragment) into why[len] and returns false. */
bool jb_topic_pattern_check(const char *pattern, char *why, size_t len);

/* The patterns of a table compiled into a trie over their leading literal words: an event type
 * only tests the patterns whose literal prefix is a prefix of its words. */
typedef struct jb_topic_index jb_topic_index;

/* Builds the index of n patterns. The patterns are borrowed: they must outlive the index. */
jb_err jb_topic_index_new(const char *const *patterns, size_t n, jb_topic_index **out,
                          jb_error *e) JB_MUST_CHECK;
void jb_topic_index_free(jb_topic_index *ix);

/* The indices of the patterns that match topic, ascending (the table's order). *out is a new
 * array the caller frees (NULL when *n is 0). JB_ERR_NOMEM only. */
jb_err jb_topic_index_match(const jb_topic_index *ix, const char *topic, size_t **out,
                            size_t *n) JB_MUST_CHECK;

#endif
