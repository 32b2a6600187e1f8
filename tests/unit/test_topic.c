/* Topic matching (issue 11, defect 15): linear whatever the pattern, the same answers as the
 * simple recursive definition, and the mapping index finds exactly what a scan of the table
 * finds, in table order. No server needed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobbridge/config.h"
#include "jobbridge/topic.h"

/* The reference: AMQP's definition written as directly as possible (exponential, small inputs
 * only). p and t point at a word or are NULL when none is left. */
static const char *next_w(const char *s) {
  const char *d = strchr(s, '.');
  return d ? d + 1 : NULL;
}

static bool word_eq(const char *a, const char *b) {
  size_t la = strcspn(a, "."), lb = strcspn(b, ".");
  return la == lb && strncmp(a, b, la) == 0;
}

static bool ref_match(const char *p, const char *t) {
  if (p == NULL) return t == NULL;
  if (word_eq(p, "#")) return ref_match(next_w(p), t) || (t != NULL && ref_match(p, next_w(t)));
  if (t == NULL) return false;
  if (!word_eq(p, "*") && !word_eq(p, t)) return false;
  return ref_match(next_w(p), next_w(t));
}

static void random_words(unsigned *seed, char *out, const char *const *alphabet, int nalpha,
                         int max_words) {
  int n = 1 + rand_r(seed) % max_words;
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i > 0) strcat(out, ".");
    strcat(out, alphabet[rand_r(seed) % nalpha]);
  }
}

Test(topic, matches_like_the_reference_definition) {
  static const char *const pw[] = {"a", "b", "*", "#", "ab"};
  static const char *const tw[] = {"a", "b", "ab", "", "c"};
  unsigned seed = 15;
  char p[64], t[64];
  for (int i = 0; i < 200000; i++) {
    random_words(&seed, p, pw, 5, 6);
    random_words(&seed, t, tw, 5, 7);
    cr_assert_eq(jb_topic_match(p, t), ref_match(p, t), "%s vs %s", p, t);
  }
}

Test(topic, known_cases) {
  struct {
    const char *p, *t;
    bool want;
  } cases[] = {
      {"#", "", true},
      {"#", "a.b", true},
      {"a.#", "a", true},
      {"#.a", "a", true},
      {"#.a.#", "x.a.y", true},
      {"*", "", true},
      {"*", "a.b", false},
      {"a.*.c", "a.b.c", true},
      {"a.*.c", "a.c", false},
      {"#.#.z", "z", true},
      {"#.b.#.b", "b.b", true},
      {"#.b.#.b", "b", false},
      {"a.#.b.#.c", "a.x.b.y.b.c", true},
      {"a", "a.", false},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    cr_expect_eq(jb_topic_match(cases[i].p, cases[i].t), cases[i].want, "%s vs %s", cases[i].p,
                 cases[i].t);
}

/* `#.#.#.#.z` against a 127-word type took 0.33 s per match with the recursive matcher, and a
 * pattern of more `#` words years: the criterion timeout fails the old code by orders of
 * magnitude; the linear matcher does these 2,000 matches in milliseconds. */
Test(topic, adversarial_patterns_finish_fast, .timeout = 20) {
  char topic[256] = "", pattern[256] = "";
  for (int i = 0; i < 127; i++) strcat(topic, i ? ".a" : "a");
  for (int i = 0; i < 126; i++) strcat(pattern, i ? ".#" : "#");
  strcat(pattern, ".z");
  cr_assert_leq(strlen(pattern), JB_TOPIC_MAX);
  for (int i = 0; i < 1000; i++) {
    cr_assert(!jb_topic_match("#.#.#.#.z", topic));
    cr_assert(!jb_topic_match(pattern, topic));
  }
  cr_assert(jb_topic_match(pattern, "a.z"));
}

Test(topic, patterns_are_checked_with_a_reason) {
  char why[200], long_pattern[300];
  memset(long_pattern, 'a', 256);
  long_pattern[256] = '\0';
  cr_expect(!jb_topic_pattern_check(long_pattern, why, sizeof why));
  cr_expect(strstr(why, "256 bytes") != NULL, "%s", why);
  long_pattern[255] = '\0';
  cr_expect(jb_topic_pattern_check(long_pattern, why, sizeof why));
  const char *bad[] = {"", "a..b", ".a", "a.", "a#", "#a.b", "a.*b", "**"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_expect(!jb_topic_pattern_check(bad[i], why, sizeof why), "\"%s\" is refused", bad[i]);
  cr_expect(!jb_topic_pattern_check("a..b", why, sizeof why));
  cr_expect(strstr(why, "word 2 is empty") != NULL, "%s", why);
  const char *good[] = {"a", "#", "*", "a.#.b", "#.#", "*.*.#"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
    cr_expect(jb_topic_pattern_check(good[i], why, sizeof why), "\"%s\": %s", good[i], why);
}

Test(topic, check_config_refuses_a_1000_word_pattern) {
  size_t n = 2000;
  char *pattern = malloc(n), *text = malloc(n + 200);
  for (size_t i = 0; i < n - 1; i++) pattern[i] = i % 2 ? '.' : '#';
  pattern[n - 1] = '\0';
  snprintf(text, n + 200,
           "{\"job_types\": {\"a\": {\"handler\": \"noop\"}}, \"mappings\": [{\"event_type\": "
           "\"%s\", \"job_type\": \"a\"}]}",
           pattern);
  jb_config *cfg = NULL;
  jb_error e;
  cr_expect_eq(jb_config_parse(text, "t.json", &cfg, &e), JB_ERR_CONFIG);
  cr_expect(strstr(e.msg, "mappings[0].event_type") != NULL, "%s", e.msg);
  cr_expect(strstr(e.msg, "over the 255 of an AMQP routing key") != NULL, "%s", e.msg);
  free(pattern);
  free(text);
}

Test(topic, the_index_finds_what_a_scan_finds_in_table_order) {
  static const char *const pw[] = {"order", "user", "created", "paid", "*", "#", "v1", "x"};
  static const char *const tw[] = {"order", "user", "created", "paid", "v1", "x", "y"};
  unsigned seed = 10000;
  enum { N = 10000 };
  static char pats[N][64];
  static const char *list[N];
  for (size_t i = 0; i < N; i++) {
    random_words(&seed, pats[i], pw, 8, 5);
    if (i % 3 == 0) snprintf(pats[i] + strlen(pats[i]), 16, ".k%zu", i % 97);
    list[i] = pats[i];
  }
  jb_topic_index *ix;
  jb_error e;
  cr_assert_eq(jb_topic_index_new(list, N, &ix, &e), JB_OK);
  size_t *scan = malloc(N * sizeof *scan), total = 0;
  for (int k = 0; k < 400; k++) {
    char t[64];
    random_words(&seed, t, tw, 7, 5);
    if (k % 4 == 0) snprintf(t + strlen(t), 16, ".k%d", k % 97);
    size_t ns = 0;
    for (size_t i = 0; i < N; i++)
      if (jb_topic_match(list[i], t)) scan[ns++] = i;
    size_t *got, ng;
    cr_assert_eq(jb_topic_index_match(ix, t, &got, &ng), JB_OK);
    cr_assert_eq(ng, ns, "%s: %zu matches from the index, %zu from a scan", t, ng, ns);
    for (size_t i = 0; i < ns; i++) cr_assert_eq(got[i], scan[i], "%s: match %zu", t, i);
    total += ns;
    free(got);
  }
  cr_expect_gt(total, 1000, "the test exercises real matches");
  free(scan);
  jb_topic_index_free(ix);
}
