#!/usr/bin/env python3
"""Issue 11, defect 1: a claim or an ingest hand-over that commits while its reply is lost leaves
a job RUNNING under this instance's name with no worker holding it. Such a job must fall to the
reaper when its lease expires and run again, not have its lease renewed forever.

jobbridge talks to PostgreSQL through pgproxy.py, which drops the reply of the trapped statement
after the server committed it and closes the connection.

usage: test_lost_replies.py JOBBRIDGE_BINARY SOURCE_DIR [-k NAME]
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

# A 3 s lease, renewed every second; the reaper runs every 5 s: a job left without a worker is
# retried about 8 s after its claim. Waits are generous for a loaded 2-core machine.
LEASE_S = 3
SETTLE_S = 60


class LostReplies(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.proxy = pgproxy.Proxy(os.environ["JB_PG_PORT"])
        self.bridge = None

    def tearDown(self):
        if self.bridge is not None:
            self.bridge.close()
        self.proxy.close()

    def start(self, mappings):
        b = jbtest.Bridge(BIN, SRC, mappings, {"noop": {"handler": "noop", "max_retries": 3}},
                          workers__threads=1, workers__lease_s=LEASE_S, retry__base_s=0.5,
                          retry__max_s=1, retry__jitter=0)
        self.bridge = b
        b.migrate()
        b.start(env={"JOBBRIDGE_DATABASE_URL": self.proxy.url(jbtest.DB_URL)})
        return b

    def wait_completed(self, b, want):
        """Waits until `want` jobs are COMPLETED; on failure shows the jobs (a job stuck RUNNING
        shows its locked_until moving on)."""
        deadline = time.time() + SETTLE_S
        while time.time() < deadline and b.count("status = 'COMPLETED'") < want:
            time.sleep(0.25)
        first = b.jobs("status <> 'COMPLETED'")
        time.sleep(2 if first else 0)
        later = b.jobs("status <> 'COMPLETED'")
        self.assertEqual(
            b.count("status = 'COMPLETED'"), want,
            f"jobs not COMPLETED {SETTLE_S}s after the lost reply (then, and 2 s later):\n"
            f"{json.dumps(first, indent=1)}\n{json.dumps(later, indent=1)}\n"
            f"{b.logs()[-3000:]}")

    def assert_retried_by_reaper(self, job):
        self.assertEqual(job["retry_count"], 1, job)
        self.assertIn("lease expired", job["error_message"] or "", job)

    def test_lost_claim_reply(self):
        b = self.start([])
        trap = self.proxy.trap("B", [b"jb_claim_any"], need_rows=True)
        b.insert_jobs(1, "noop")
        self.assertTrue(trap.fired.wait(30), "no claim of the job went through the proxy")
        self.wait_completed(b, 1)
        (job,) = b.jobs()
        self.assert_retried_by_reaper(job)
        self.assertIn("reaped jobs whose lease expired", b.logs())
        self.assertEqual(b.stop(), 0)

    def test_lost_ingest_hand_over_reply(self):
        b = self.start([{"event_type": "t.lost", "job_type": "noop"}])
        # Only an insert that hands its job to worker w0 (its locked_by is in the Bind).
        trap = self.proxy.trap("B", [b"jb_enqueue", b"/w0"], need_rows=True)
        sent = 0
        deadline = time.time() + 60
        while not trap.fired.is_set() and time.time() < deadline:
            # The worker is idle between claims: most events go straight to it.
            time.sleep(0.3)
            b.publish([(json.dumps({"event_type": "t.lost", "id": f"lost-{sent}"}), "t.lost",
                        None)])
            sent += 1
            trap.fired.wait(2)
        self.assertTrue(trap.fired.is_set(), "no event was handed to an idle worker")
        self.wait_completed(b, sent)
        jobs = b.jobs()
        self.assertEqual(len(jobs), sent, "one job per event, the redelivered one deduplicated")
        retried = [j for j in jobs if j["retry_count"] > 0]
        self.assertEqual(len(retried), 1, json.dumps(jobs, indent=1))
        self.assert_retried_by_reaper(retried[0])
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v", *sys.argv[3:]])
