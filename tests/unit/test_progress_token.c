/* Progress tokens (progress_token.h): the HMAC-SHA256 a service can check against any other
 * implementation (the value below is Python's hmac module's), the constant-time check refusing
 * anything else, the key's length rule, and the key kept out of the config dump. */
#include <criterion/criterion.h>
#include <string.h>

#include "jobbridge/config.h"
#include "jobbridge/progress_token.h"

#define JOB "01a22eea-d285-7e62-a2bb-efd980f6d2dc"
#define KEY "0123456789abcdef-key"
/* python3 -c 'import hmac,hashlib; print(hmac.new(b"0123456789abcdef-key",
 *   b"01a22eea-d285-7e62-a2bb-efd980f6d2dc", hashlib.sha256).hexdigest())' */
#define WANT "9bf758aa0af392f165251a37d42e96519b9d342a01b66acdfeeab86051b30ace"

Test(progress_token, random_key_then_configured_key) {
  char a[JB_PROGRESS_TOKEN_LEN], b[JB_PROGRESS_TOKEN_LEN];
  jb_error e;
  /* Before a key is set: a random per-process one, the same for every call. */
  cr_assert_eq(jb_progress_token(JOB, a, &e), JB_OK);
  cr_assert_eq(jb_progress_token(JOB, b, &e), JB_OK);
  cr_expect_str_eq(a, b);
  cr_expect_str_neq(a, WANT);
  cr_expect(jb_progress_token_check(JOB, a));
  /* Too short or too long a key is refused, naming the key; the old one stays. */
  cr_expect_eq(jb_progress_token_set_secret("short", &e), JB_ERR_CONFIG);
  cr_expect(strstr(e.msg, "http.progress_key") != NULL, "%s", e.msg);
  char long_key[300];
  memset(long_key, 'k', sizeof long_key - 1);
  long_key[sizeof long_key - 1] = '\0';
  cr_expect_eq(jb_progress_token_set_secret(long_key, &e), JB_ERR_CONFIG);
  cr_expect(jb_progress_token_check(JOB, a));
  /* NULL and "" keep the current key. */
  cr_expect_eq(jb_progress_token_set_secret(NULL, &e), JB_OK);
  cr_expect_eq(jb_progress_token_set_secret("", &e), JB_OK);
  cr_expect(jb_progress_token_check(JOB, a));
  /* A configured key: the standard HMAC-SHA256, in lower-case hex. */
  cr_assert_eq(jb_progress_token_set_secret(KEY, &e), JB_OK);
  cr_assert_eq(jb_progress_token(JOB, b, &e), JB_OK);
  cr_expect_str_eq(b, WANT);
  cr_expect(jb_progress_token_check(JOB, WANT));
  cr_expect_not(jb_progress_token_check(JOB, a));
  char h[JB_PROGRESS_HEADER_LEN];
  cr_assert_eq(jb_progress_token_header(JOB, h, &e), JB_OK);
  cr_expect_str_eq(h, "Jobbridge-Progress-Token: " WANT);
}

Test(progress_token, check_refuses_near_misses) {
  jb_error e;
  cr_assert_eq(jb_progress_token_set_secret(KEY, &e), JB_OK);
  char t[JB_PROGRESS_TOKEN_LEN];
  memcpy(t, WANT, sizeof t);
  cr_expect(jb_progress_token_check(JOB, t));
  t[63] = t[63] == '0' ? '1' : '0'; /* the last digit */
  cr_expect_not(jb_progress_token_check(JOB, t));
  cr_expect_not(jb_progress_token_check(JOB, "9bf758aa")); /* a prefix */
  cr_expect_not(jb_progress_token_check(JOB, WANT "0"));   /* longer */
  cr_expect_not(jb_progress_token_check(JOB, ""));         /* empty */
  cr_expect_not(jb_progress_token_check(JOB, NULL));       /* absent */
  cr_expect_not(jb_progress_token_check("01a22eea-d285-7e62-a2bb-efd980f6d2dd", WANT));
}

Test(progress_token, key_is_not_in_the_config_dump) {
  jb_config *cfg = NULL;
  jb_error e;
  cr_assert_eq(jb_config_parse("{\"http\": {\"progress_key\": \"do-not-show-this-key\"}}", "t.json",
                               &cfg, &e),
               JB_OK, "%s", e.msg);
  cr_expect_str_eq(cfg->http.progress_key, "do-not-show-this-key");
  json_t *dump = jb_config_to_json(cfg);
  char *text = json_dumps(dump, 0);
  cr_expect(strstr(text, "do-not-show-this-key") == NULL, "%s", text);
  cr_expect(strstr(text, "\"progress_key\": \"***\"") != NULL, "%s", text);
  free(text);
  json_decref(dump);
  jb_config_free(cfg);
}
