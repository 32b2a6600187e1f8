#!/usr/bin/env python3
"""Issue 11, review finding 4: a silent network cut between jobbridge and PostgreSQL (a failover,
a dropped route: no FIN or RST ever arrives) must be noticed within the documented bound, about
30 s, not when TCP gives up (about 15 minutes with Linux's defaults).

jobbridge talks to PostgreSQL through pgproxy.py. Its black hole silences every connection open
at that moment, in the kernel too (the packets are dropped, so nothing is acknowledged and no
keepalive answered); new connections go through. jobbridge's defaults are under test, so the
URL sets no keepalive or timeout option. Each test fails after about 90 s rather than hang on
code without the deadlines.

usage: test_silent_cut.py JOBBRIDGE_BINARY SOURCE_DIR [-k NAME]
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402
import pgproxy  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

DEAD_PEER_S = 30  # README: a dead peer is noticed within about 30 s
# Noticing, then reconnecting and running the jobs, on a loaded 2-core machine (measured: 36 s
# for the job inserted, 49 s for the event, whose consumer also lost its broker connection while
# its commit hung: it missed heartbeats).
SETTLE_S = DEAD_PEER_S + 60
GRACE_S = 2
# A worker reserved for a hand-over when the cut comes waits a third of its lease (5 s) for the
# insert's outcome, then claims, and that claim goes into the hole too: 5 + 30 s.
LEASE_S = 15


class SilentCut(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.proxy = pgproxy.Proxy(os.environ["JB_PG_PORT"])
        self.bridge = None
        self.hole = None

    def tearDown(self):
        if self.hole is not None:
            self.hole.lift()  # unblocks code that would wait for TCP to give up
        if self.bridge is not None:
            if self.bridge.proc is not None and self.bridge.proc.poll() is None:
                try:
                    self.bridge.stop(timeout=60)
                except Exception:
                    self.bridge.kill9()
            self.bridge.close()
        self.proxy.close()

    def start(self):
        b = jbtest.Bridge(BIN, SRC, [{"event_type": "t.cut", "job_type": "noop"}],
                          {"noop": {"handler": "noop", "max_retries": 3}},
                          workers__threads=1, workers__lease_s=LEASE_S,
                          workers__shutdown_grace_s=GRACE_S, retry__base_s=0.5, retry__max_s=1,
                          retry__jitter=0)
        self.bridge = b
        b.migrate()
        b.start(env={"JOBBRIDGE_DATABASE_URL": self.proxy.url(jbtest.DB_URL)})
        time.sleep(1)  # every connection open and idle, the worker waiting for work
        return b

    def cut(self):
        try:
            self.hole = self.proxy.black_hole()
        except pgproxy.BlackHoleUnavailable as exc:
            self.skipTest(f"cannot cut connections silently here: {exc}")
        return time.time()

    def test_work_goes_on_after_a_silent_cut(self):
        b = self.start()
        cut_at = self.cut()
        # A job for the worker (its claim goes into the hole) and an event for ingest (its
        # commit does); both written around jobbridge, which must notice and reconnect.
        b.insert_jobs(1, "noop")
        b.publish([(json.dumps({"event_type": "t.cut", "id": "cut-1"}), "t.cut", None)])
        deadline = cut_at + SETTLE_S
        while time.time() < deadline and b.count("status = 'COMPLETED'") < 2:
            time.sleep(0.5)
        took = time.time() - cut_at
        jobs = b.jobs()
        self.assertEqual(
            [j["status"] for j in jobs], ["COMPLETED", "COMPLETED"],
            f"jobs not COMPLETED {took:.0f}s after a silent cut (bound: {DEAD_PEER_S}s to "
            f"notice):\n{json.dumps(jobs, indent=1)}\n{b.logs()[-3000:]}")
        self.assertIn("database connection lost", b.logs())
        print(f"both jobs COMPLETED {took:.1f}s after the cut", file=sys.stderr)
        self.assertEqual(b.stop(), 0)

    def test_shutdown_during_a_silent_cut(self):
        b = self.start()
        self.cut()
        b.insert_jobs(1, "noop")  # the worker's next claim goes into the hole
        time.sleep(2)
        asked = time.time()
        b.proc.send_signal(15)
        bound = GRACE_S + DEAD_PEER_S + 25
        deadline = asked + bound
        while time.time() < deadline and b.proc.poll() is None:
            time.sleep(0.25)
        took = time.time() - asked
        self.assertIsNotNone(b.proc.poll(),
                             f"jobbridge still running {took:.0f}s after SIGTERM during a silent "
                             f"cut (bound {bound}s):\n{b.logs()[-3000:]}")
        print(f"jobbridge exited {took:.1f}s after SIGTERM", file=sys.stderr)
        self.assertEqual(b.stop(), 0, b.logs()[-3000:])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
