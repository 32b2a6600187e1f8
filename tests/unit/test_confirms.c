/* The publisher-confirm tracker (jb_confirms): every tag settled by its own confirm, whatever
 * the order; `multiple` covers the outstanding tags up to its own; nacks are told apart. */
#include <criterion/criterion.h>

#include "amqp/amqp_conn.h"

static jb_confirms track(size_t cap) {
  jb_confirms t;
  jb_error e;
  jb_error_clear(&e);
  cr_assert_eq(jb_confirms_init(&t, cap, 1, &e), JB_OK);
  return t;
}

static void publish_n(jb_confirms *t, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) (void)jb_confirms_publish(t);
}

Test(confirms, tags_are_numbered_from_the_first) {
  jb_confirms t = track(8);
  cr_assert_eq(jb_confirms_publish(&t), 1);
  cr_assert_eq(jb_confirms_publish(&t), 2);
  cr_assert_eq(t.pending, 2);
  jb_confirms_free(&t);
}

/* The defect: a single ack of tag 3 was taken as confirming 1 and 2. */
Test(confirms, a_single_ack_out_of_order_settles_only_its_own_tag) {
  jb_confirms t = track(8);
  publish_n(&t, 4);
  jb_confirms_settle(&t, 3, false, true);
  cr_assert_eq(t.pending, 3);
  cr_assert_eq(jb_confirms_take(&t, 1), JB_CONFIRM_PENDING);
  cr_assert_eq(jb_confirms_take(&t, 2), JB_CONFIRM_PENDING);
  cr_assert_eq(jb_confirms_take(&t, 4), JB_CONFIRM_PENDING);
  cr_assert_eq(jb_confirms_take(&t, 3), JB_CONFIRM_ACKED);
  cr_assert_eq(jb_confirms_take(&t, 3), JB_CONFIRM_UNKNOWN, "taken once");
  jb_confirms_settle(&t, 1, false, true);
  jb_confirms_settle(&t, 4, false, true);
  jb_confirms_settle(&t, 2, false, true);
  cr_assert_eq(t.pending, 0);
  cr_assert_eq(t.acked, 3);
  for (uint64_t tag = 1; tag <= 4; tag++)
    if (tag != 3) cr_assert_eq(jb_confirms_take(&t, tag), JB_CONFIRM_ACKED);
  cr_assert_eq(t.acked, 0);
  cr_assert_eq(t.low, 5, "every slot free again");
  jb_confirms_free(&t);
}

Test(confirms, a_multiple_ack_covers_the_outstanding_tags_up_to_its_own) {
  jb_confirms t = track(16);
  publish_n(&t, 6);
  jb_confirms_settle(&t, 2, false, false); /* 2 nacked first */
  jb_confirms_settle(&t, 4, true, true);   /* then 1, 3, 4 acked; 2 stays nacked */
  cr_assert_eq(t.pending, 2);
  cr_assert_eq(jb_confirms_take(&t, 1), JB_CONFIRM_ACKED);
  cr_assert_eq(jb_confirms_take(&t, 2), JB_CONFIRM_NACKED);
  cr_assert_eq(jb_confirms_take(&t, 3), JB_CONFIRM_ACKED);
  cr_assert_eq(jb_confirms_take(&t, 4), JB_CONFIRM_ACKED);
  cr_assert_eq(jb_confirms_take(&t, 5), JB_CONFIRM_PENDING);
  cr_assert_eq(jb_confirms_take(&t, 6), JB_CONFIRM_PENDING);
  jb_confirms_free(&t);
}

Test(confirms, a_multiple_nack_marks_every_outstanding_tag_up_to_its_own_for_republish) {
  jb_confirms t = track(16);
  publish_n(&t, 5);
  jb_confirms_settle(&t, 5, false, true);
  jb_confirms_settle(&t, 3, true, false);
  cr_assert_eq(t.nacked, 3);
  cr_assert_eq(t.acked, 1);
  cr_assert_eq(t.pending, 1);
  cr_assert_eq(jb_confirms_take(&t, 1), JB_CONFIRM_NACKED);
  cr_assert_eq(jb_confirms_take(&t, 3), JB_CONFIRM_NACKED);
  cr_assert_eq(jb_confirms_take(&t, 4), JB_CONFIRM_PENDING);
  cr_assert_eq(jb_confirms_take(&t, 5), JB_CONFIRM_ACKED);
  jb_confirms_free(&t);
}

Test(confirms, stray_and_repeated_confirms_change_nothing) {
  jb_confirms t = track(8);
  publish_n(&t, 2);
  jb_confirms_settle(&t, 7, false, true); /* never published */
  jb_confirms_settle(&t, 9, true, true);
  jb_confirms_settle(&t, 1, false, true);
  jb_confirms_settle(&t, 1, false, false); /* a nack after its ack: ignored */
  cr_assert_eq(t.stray, 3);
  cr_assert_eq(t.pending, 1);
  cr_assert_eq(jb_confirms_take(&t, 1), JB_CONFIRM_ACKED);
  cr_assert_eq(jb_confirms_take(&t, 2), JB_CONFIRM_PENDING);
  jb_confirms_free(&t);
}

Test(confirms, the_ring_is_full_until_the_oldest_outcome_is_taken) {
  jb_confirms t = track(4);
  publish_n(&t, 4);
  cr_assert(jb_confirms_full(&t));
  jb_confirms_settle(&t, 4, false, true);
  cr_assert_eq(jb_confirms_take(&t, 4), JB_CONFIRM_ACKED);
  cr_assert(jb_confirms_full(&t), "tag 1 still holds the oldest slot");
  jb_confirms_settle(&t, 1, false, true);
  cr_assert_eq(jb_confirms_take(&t, 1), JB_CONFIRM_ACKED);
  cr_assert_not(jb_confirms_full(&t));
  cr_assert_eq(jb_confirms_publish(&t), 5);
  cr_assert_eq(jb_confirms_take(&t, 5), JB_CONFIRM_PENDING, "slot of tag 1 reused, pending");
  jb_confirms_settle(&t, 5, true, true); /* covers 2, 3 and 5 */
  cr_assert_eq(t.pending, 0);
  cr_assert_eq(jb_confirms_take(&t, 2), JB_CONFIRM_ACKED);
  jb_confirms_free(&t);
}

/* Long runs through a small ring, confirms shuffled within the window: every tag ends acked
 * exactly once, whatever the order. */
Test(confirms, shuffled_confirms_through_many_laps_of_the_ring) {
  enum { CAP = 64, TOTAL = 100000 };
  jb_confirms t = track(CAP);
  unsigned seed = 12345;
  uint64_t taken = 0, window[CAP];
  size_t n = 0;
  for (uint64_t sent = 0; taken < TOTAL;) {
    while (sent < TOTAL && !jb_confirms_full(&t)) {
      window[n++] = jb_confirms_publish(&t);
      sent++;
    }
    seed = seed * 1103515245u + 12345u;
    size_t i = (seed >> 8) % n;
    bool multiple = ((seed >> 20) & 7) == 0;
    jb_confirms_settle(&t, window[i], multiple, true);
    for (size_t j = 0; j < n;) {
      jb_confirm_state st = jb_confirms_take(&t, window[j]);
      if (st == JB_CONFIRM_PENDING) {
        j++;
        continue;
      }
      cr_assert_eq(st, JB_CONFIRM_ACKED);
      cr_assert(!multiple ? window[j] == window[i] : window[j] <= window[i]);
      window[j] = window[--n];
      taken++;
    }
  }
  cr_assert_eq(t.pending, 0);
  cr_assert_eq(t.stray, 0);
  jb_confirms_free(&t);
}

Test(confirms, short_strings_fit_and_long_ones_are_cut_at_a_character_with_a_hash) {
  char buf[JB_AMQP_SHORT_MAX + 1], buf2[JB_AMQP_SHORT_MAX + 1];
  const char *s = "order-42";
  cr_assert_eq(jb_amqp_short(s, buf), s, "a string that fits is used as it is");
  char exact[256];
  memset(exact, 'a', 255);
  exact[255] = '\0';
  cr_assert_eq(jb_amqp_short(exact, buf), exact);
  /* 300 bytes of 2-byte characters (é), so byte 238 is in a character's middle. */
  char longs[301], other[301];
  for (int i = 0; i < 300; i += 2) {
    longs[i] = (char)0xC3;
    longs[i + 1] = (char)0xA9;
  }
  longs[300] = '\0';
  memcpy(other, longs, sizeof other);
  other[298] = 'x';
  other[299] = 'y';
  const char *a = jb_amqp_short(longs, buf);
  const char *b = jb_amqp_short(other, buf2);
  cr_assert_eq(a, buf);
  cr_assert_leq(strlen(a), 255);
  size_t cut = strlen(a) - 17;
  cr_assert_eq(cut % 2, 0, "cut at a character boundary (%zu)", cut);
  cr_assert_eq(memcmp(a, longs, cut), 0, "a prefix of the whole");
  cr_assert_eq(a[cut], '~');
  cr_assert_str_neq(a, b, "different long values stay different");
  cr_assert_str_eq(jb_amqp_short(longs, buf2), a, "the same value, the same bounded form");
}
