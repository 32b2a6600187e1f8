#!/usr/bin/env python3
"""Issue 11, review finding 5: a job handed over from the ingest transaction must never start with
a lease that runs out before the maintenance thread's next renewal (a third of the lease plus
half a second away); otherwise another instance's reaper may retry it while it runs, and it runs
twice.

jobbridge talks to PostgreSQL through pgproxy.py, which delivers the reply of the insert that
hands a job to worker w0 five seconds late (a slow network, a stalled server), with a 6 s lease.
The handler records how much of its job's lease is left when it starts (the database's own
clock). A worker that waits for the whole lease takes the late hand-over with about 1 s left;
one that waits a third of it gives up, and the reaper retries the job with a whole lease.

usage: test_late_hand_over.py JOBBRIDGE_BINARY SOURCE_DIR [-k NAME]
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

LEASE_S = 6
DELAY_S = 5  # the reply of the handing insert: late, but within the lease
RENEW_GAP_S = LEASE_S / 3 + 0.5  # the longest time from a hand-over to the next renewal
SETTLE_S = 60


class LateHandOver(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.proxy = pgproxy.Proxy(os.environ["JB_PG_PORT"])
        self.bridge = None

    def tearDown(self):
        if self.bridge is not None:
            self.bridge.close()
        self.proxy.close()

    def test_late_hand_over_never_runs_on_an_expiring_lease(self):
        runs = os.path.join(jbtest.STATE_DIR, f"late-hand-over-{os.getpid()}.txt")
        tag = None
        probe = ('echo "$JOBBRIDGE_JOB_ID $(psql "$DB" -AtXq -c "SELECT extract(epoch FROM '
                 'locked_until - clock_timestamp()) FROM $SCHEMA.jobs WHERE id = '
                 '\'$JOBBRIDGE_JOB_ID\'")" >> "$OUT"')
        b = jbtest.Bridge(BIN, SRC, [{"event_type": "t.late", "job_type": "probe"}], {},
                          workers__threads=1, workers__lease_s=LEASE_S, retry__base_s=0.5,
                          retry__max_s=1, retry__jitter=0)
        self.bridge = b
        tag = b.schema
        b.cfg["job_types"] = {"probe": {
            "handler": "exec", "command": ["/bin/sh", "-c", probe], "timeout_s": 30,
            "max_retries": 3, "env": {"DB": jbtest.DB_URL, "SCHEMA": tag, "OUT": runs}}}
        b.write_config(b.cfg)
        b.migrate()
        # Only an insert that hands its job to worker w0 (its locked_by is in the Bind).
        trap = self.proxy.trap("B", [b"jb_enqueue", b"/w0"], need_rows=True, delay_s=DELAY_S)
        b.start(env={"JOBBRIDGE_DATABASE_URL": self.proxy.url(jbtest.DB_URL)})
        sent = 0
        deadline = time.time() + 60
        while not trap.fired.is_set() and time.time() < deadline:
            time.sleep(0.5)  # the worker is idle between jobs: the event goes straight to it
            b.publish([(json.dumps({"event_type": "t.late", "id": f"late-{sent}"}), "t.late",
                        None)])
            sent += 1
            trap.fired.wait(2)
        self.assertTrue(trap.fired.is_set(), "no event was handed to an idle worker")
        deadline = time.time() + SETTLE_S
        while time.time() < deadline and b.count("status = 'COMPLETED'") < sent:
            time.sleep(0.25)
        jobs = b.jobs()
        self.assertEqual(b.count("status = 'COMPLETED'"), sent,
                         f"{json.dumps(jobs, indent=1)}\n{b.logs()[-3000:]}")
        with open(runs) as f:
            lines = [line.split() for line in f.read().splitlines() if line]
        os.unlink(runs)
        self.assertEqual(sorted(job_id for job_id, _ in lines), sorted(j["id"] for j in jobs),
                         f"each job runs once: {lines}")
        short = [(job_id, left) for job_id, left in lines if float(left) < RENEW_GAP_S]
        self.assertEqual(short, [], f"jobs started with less than {RENEW_GAP_S:.1f}s of their "
                         f"{LEASE_S}s lease left (job, seconds left), before any renewal could "
                         f"reach them:\n{lines}\n{b.logs()[-3000:]}")
        self.assertIn("gave up waiting for a job handed over", b.logs())
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
