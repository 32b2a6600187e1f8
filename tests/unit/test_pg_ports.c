/* The PostgreSQL adapter's ports (no server): each of JobStore, WorkQueue and Outbox is one
 * constant ops table with every operation set, whatever connection it is bound to. A port
 * operation added to a header but left out of the adapter's table would be a NULL call at run
 * time; this catches it at test time. */
#include <criterion/criterion.h>

#include "postgres/pg.h"

/* Every function pointer of an ops table (a struct of nothing else) is set. */
static void assert_all_set(const void *ops, size_t size, const char *port) {
  size_t n = size / sizeof(void (*)(void));
  for (size_t i = 0; i < n; i++) {
    void (*f)(void);
    memcpy(&f, (const char *)ops + i * sizeof f, sizeof f);
    cr_assert(f != NULL, "%s: operation %zu of %zu is not implemented", port, i + 1, n);
  }
}

Test(pg_ports, every_operation_of_every_port_is_implemented) {
  jb_pg *a = (jb_pg *)(uintptr_t)0x10, *b = (jb_pg *)(uintptr_t)0x20; /* never dereferenced */
  jb_job_store s1 = jb_pg_store(a), s2 = jb_pg_store(b);
  jb_work_queue w1 = jb_pg_work_queue(a), w2 = jb_pg_work_queue(b);
  jb_outbox o1 = jb_pg_outbox(a), o2 = jb_pg_outbox(b);
  assert_all_set(s1.ops, sizeof *s1.ops, "JobStore");
  assert_all_set(w1.ops, sizeof *w1.ops, "WorkQueue");
  assert_all_set(o1.ops, sizeof *o1.ops, "Outbox");
  /* One table per port, shared by every connection; each port borrows its connection. */
  cr_assert(s1.ops == s2.ops && w1.ops == w2.ops && o1.ops == o2.ops);
  cr_assert(s1.self == a && s2.self == b && w1.self == a && w2.self == b && o1.self == a);
}
