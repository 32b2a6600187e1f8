/* Topic matching and the mapping table's index: see jobbridge/topic.h. */
#include "jobbridge/topic.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The word after the one at s, or NULL when s holds the last word. */
static const char *next_word(const char *s) {
  const char *dot = strchr(s, '.');
  return dot ? dot + 1 : NULL;
}

static size_t word_len(const char *s) {
  return strcspn(s, ".");
}

static bool is_hash(const char *p) {
  return p[0] == '#' && (p[1] == '.' || p[1] == '\0');
}

/* Whether the pattern word at p matches the topic word at t (`*` matches any one word). */
static bool word_matches(const char *p, const char *t) {
  size_t lp = word_len(p);
  if (lp == 1 && p[0] == '*') return true;
  return lp == word_len(t) && memcmp(p, t, lp) == 0;
}

/* The classic wildcard algorithm over words: `#` first takes no word; on a mismatch, the most
 * recent `#` takes one more word and matching resumes after it. Going back only to the most
 * recent `#` is enough (an earlier one can only take fewer words than the later one could
 * absorb), so each topic word is retried at most once per pattern word: linear, where the
 * recursive matcher it replaces was exponential in the number of `#`. p and t point at the start
 * of a word, or are NULL when no words are left. */
bool jb_topic_match(const char *pattern, const char *topic) {
  if (pattern == NULL || topic == NULL) return false;
  const char *p = pattern, *t = topic, *hash_p = NULL, *hash_t = NULL;
  while (t != NULL) {
    if (p != NULL && is_hash(p)) {
      hash_p = p;
      hash_t = t;
      p = next_word(p);
    } else if (p != NULL && word_matches(p, t)) {
      p = next_word(p);
      t = next_word(t);
    } else if (hash_p != NULL) {
      p = next_word(hash_p);
      hash_t = next_word(hash_t);
      t = hash_t;
    } else {
      return false;
    }
  }
  while (p != NULL && is_hash(p)) p = next_word(p);
  return p == NULL;
}

bool jb_topic_pattern_check(const char *pattern, char *why, size_t len) {
  size_t n = strlen(pattern);
  if (n > JB_TOPIC_MAX) {
    snprintf(why, len, "it is %zu bytes long, over the %d of an AMQP routing key", n, JB_TOPIC_MAX);
    return false;
  }
  size_t index = 0;
  for (const char *w = pattern; w != NULL; w = next_word(w), index++) {
    size_t wl = word_len(w);
    if (wl == 0) {
      snprintf(why, len, "word %zu is empty (words are separated by single dots)", index + 1);
      return false;
    }
    if (wl > 1 && (memchr(w, '*', wl) || memchr(w, '#', wl))) {
      snprintf(why, len,
               "word %zu (\"%.*s\") mixes `*` or `#` with other characters; they "
               "only stand as whole words",
               index + 1, wl > 40 ? 40 : (int)wl, w);
      return false;
    }
  }
  return true;
}

/* ---- the index ----
 * A trie over the literal words a pattern starts with (those before its first `*` or `#`),
 * its edges in one open-addressing hash table keyed by (parent node, word). Each node lists the
 * patterns whose literal prefix ends there, in table order. A topic walks the trie along its
 * words; the patterns listed on the way are the only ones that can match, and are then tested
 * with jb_topic_match. */

typedef struct edge {
  const char *word; /* borrowed from a pattern; NULL: an empty slot */
  uint32_t len, parent, child;
  uint64_t hash;
} edge;

struct jb_topic_index {
  const char *const *patterns; /* borrowed */
  size_t n;
  edge *edges;
  size_t cap; /* a power of two, at least twice the edges */
  uint32_t n_nodes;
  uint32_t *start; /* node i's patterns: cands[start[i] .. start[i + 1]) */
  size_t *cands;
};

static uint64_t edge_hash(uint32_t parent, const char *w, size_t len) {
  uint64_t h = 1469598103934665603ull ^ parent;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)w[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

/* The slot of edge (parent, word), found or empty. */
static edge *edge_slot(const jb_topic_index *ix, uint32_t parent, const char *w, size_t len,
                       uint64_t h) {
  for (size_t i = h & (ix->cap - 1);; i = (i + 1) & (ix->cap - 1)) {
    edge *s = &ix->edges[i];
    if (s->word == NULL ||
        (s->hash == h && s->parent == parent && s->len == len && memcmp(s->word, w, len) == 0))
      return s;
  }
}

/* Walks (and grows) the trie along pattern's literal prefix; returns the node it ends at. */
static uint32_t insert_prefix(jb_topic_index *ix, const char *pattern) {
  uint32_t node = 0;
  for (const char *w = pattern; w != NULL; w = next_word(w)) {
    size_t len = word_len(w);
    if ((len == 1 && (w[0] == '*' || w[0] == '#'))) break;
    uint64_t h = edge_hash(node, w, len);
    edge *s = edge_slot(ix, node, w, len, h);
    if (s->word == NULL) *s = (edge){w, (uint32_t)len, node, ix->n_nodes++, h};
    node = s->child;
  }
  return node;
}

jb_err jb_topic_index_new(const char *const *patterns, size_t n, jb_topic_index **out,
                          jb_error *e) {
  *out = NULL;
  size_t words = 0;
  for (size_t i = 0; i < n; i++)
    for (const char *w = patterns[i]; w != NULL; w = next_word(w)) words++;
  jb_topic_index *ix = calloc(1, sizeof *ix);
  uint32_t *node_of = calloc(n ? n : 1, sizeof *node_of);
  if (ix == NULL || node_of == NULL) goto nomem;
  ix->patterns = patterns;
  ix->n = n;
  ix->cap = 16;
  while (ix->cap < 2 * words + 2) ix->cap *= 2;
  ix->edges = calloc(ix->cap, sizeof *ix->edges);
  if (ix->edges == NULL) goto nomem;
  ix->n_nodes = 1; /* the root */
  for (size_t i = 0; i < n; i++) node_of[i] = insert_prefix(ix, patterns[i]);
  /* Counting sort of the patterns by node: stable, so each node's list is in table order. */
  ix->start = calloc((size_t)ix->n_nodes + 1, sizeof *ix->start);
  ix->cands = calloc(n ? n : 1, sizeof *ix->cands);
  if (ix->start == NULL || ix->cands == NULL) goto nomem;
  for (size_t i = 0; i < n; i++) ix->start[node_of[i] + 1]++;
  for (uint32_t k = 0; k < ix->n_nodes; k++) ix->start[k + 1] += ix->start[k];
  uint32_t *next = malloc(((size_t)ix->n_nodes + 1) * sizeof *next);
  if (next == NULL) goto nomem;
  memcpy(next, ix->start, ((size_t)ix->n_nodes + 1) * sizeof *next);
  for (size_t i = 0; i < n; i++) ix->cands[next[node_of[i]]++] = i;
  free(next);
  free(node_of);
  *out = ix;
  return JB_OK;
nomem:
  free(node_of);
  jb_topic_index_free(ix);
  return jb_fail(e, JB_ERR_NOMEM, "out of memory building the mapping index");
}

void jb_topic_index_free(jb_topic_index *ix) {
  if (ix == NULL) return;
  free(ix->edges);
  free(ix->start);
  free(ix->cands);
  free(ix);
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

jb_err jb_topic_index_match(const jb_topic_index *ix, const char *topic, size_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  if (topic == NULL || ix->n == 0) return JB_OK;
  /* The nodes on the topic's path: at most one per word, plus the root. */
  uint32_t path[JB_TOPIC_MAX + 2];
  size_t depth = 0, total = 0;
  uint32_t node = 0;
  path[depth++] = 0;
  total += ix->start[1] - ix->start[0];
  for (const char *w = topic; w != NULL && depth < sizeof path / sizeof path[0]; w = next_word(w)) {
    size_t len = word_len(w);
    edge *s = edge_slot(ix, node, w, len, edge_hash(node, w, len));
    if (s->word == NULL) break;
    node = path[depth++] = s->child;
    total += ix->start[node + 1] - ix->start[node];
  }
  if (total == 0) return JB_OK;
  size_t *m = malloc(total * sizeof *m);
  if (m == NULL) return JB_ERR_NOMEM;
  size_t k = 0, lists = 0;
  for (size_t d = 0; d < depth; d++) {
    uint32_t a = ix->start[path[d]], b = ix->start[path[d] + 1];
    if (a < b) lists++;
    for (uint32_t i = a; i < b; i++)
      if (jb_topic_match(ix->patterns[ix->cands[i]], topic)) m[k++] = ix->cands[i];
  }
  if (lists > 1) qsort(m, k, sizeof *m, cmp_size); /* the table's order across nodes */
  if (k == 0) {
    free(m);
    m = NULL;
  }
  *out = m;
  *n = k;
  return JB_OK;
}
