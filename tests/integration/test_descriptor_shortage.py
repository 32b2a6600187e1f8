#!/usr/bin/env python3
"""Issue 11, defect 13: running out of descriptors must not burn retries. The real jobbridge
binary runs under a low RLIMIT_NOFILE (lowered once it runs, as `ulimit -n` would before), with
room for what it holds but not for every worker's exec run at once, so runs fail with EMFILE. Each
such job must go back without a retry and complete later; the shortage must be logged at error
level. Before the fix, most jobs ended DEAD_LETTER ("cannot prepare the process").

usage: test_descriptor_shortage.py JOBBRIDGE_BINARY SOURCE_DIR [-k name]
       JB_SHORTAGE_ROOM=N overrides the descriptors left free (to explore other values).
"""
import json
import os
import resource
import sys
import time
import unittest
from datetime import datetime

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
JOBS = 100
WORKERS = 8
# An exec run holds 4 descriptors while it runs and 8 while it starts (four pipes); its shepherd,
# a fork holding the same table, needs 4 more while it places the pipes on 0-3. With 12 free,
# one run can start at a time, so most of the 8 workers' starts fail with EMFILE, while enough
# runs succeed to finish in time.
ROOM = int(os.environ.get("JB_SHORTAGE_ROOM", "12"))
REQUEUE_LOG = "jobbridge is short of a resource: the job goes back without burning a retry"


class DescriptorShortage(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridge = None

    def tearDown(self):
        if self.bridge is not None:
            self.bridge.close()

    def limit_descriptors(self, b):
        """Lowers the running jobbridge's descriptor limit (soft and hard, so it cannot raise it
        again) to what it holds now plus ROOM: one exec run can start at a time, and workers
        starting runs at once get EMFILE. Relative to what jobbridge holds, so the test does
        not depend on how many connections it keeps. Returns (held, limit)."""
        time.sleep(1)  # past start-up: only the descriptors it keeps
        held = len(os.listdir(f"/proc/{b.proc.pid}/fd"))
        limit = held + ROOM
        resource.prlimit(b.proc.pid, resource.RLIMIT_NOFILE, (limit, limit))
        return held, limit

    def wait_settled(self, b, timeout):
        """Waits until every job is in a final state (or the timeout passes)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if b.count("status IN ('COMPLETED', 'FAILED', 'DEAD_LETTER', 'CANCELLED')") >= JOBS:
                return
            if b.proc.poll() is not None:
                raise AssertionError(f"jobbridge exited {b.proc.returncode}:\n{b.logs()[-4000:]}")
            time.sleep(0.5)

    def test_exec_jobs_complete_without_burning_retries_when_descriptors_run_out(self):
        # /bin/cat echoes the job it is given on stdin: its result proves the program ran.
        job_types = {"echo": {"handler": "exec", "command": ["/bin/cat"], "timeout_s": 60,
                              "max_retries": 0}}
        mappings = [{"event_type": "fd.test", "job_type": "echo", "max_retries": 0}]
        b = self.bridge = jbtest.Bridge(BIN, SRC, mappings, job_types, workers__threads=WORKERS,
                                        workers__poll_ms=200, retry__jitter=0)
        b.migrate()
        b.start()
        held, limit = self.limit_descriptors(b)
        b.publish([(json.dumps({"event_type": "fd.test", "id": f"fd-{i}", "data": {"n": i}}),
                    "fd.test", None) for i in range(JOBS)])
        b.wait_count(JOBS, 60)
        self.wait_settled(b, 75)
        jobs = b.jobs()
        code = b.stop()
        logs = b.logs()

        by_status = {}
        for j in jobs:
            by_status.setdefault(j["status"], []).append(j)
        summary = {s: len(js) for s, js in by_status.items()}
        requeues = [json.loads(line) for line in logs.splitlines()
                    if line.startswith("{") and REQUEUE_LOG in line]
        print(f"\n{held} descriptors held, limit {limit}: {summary}, {len(requeues)} shortages "
              "logged", file=sys.stderr)
        self.assertEqual(len(jobs), JOBS, f"{summary}\n{logs[-4000:]}")
        # Nothing was the job's fault: none failed, none was dead-lettered, no retry was burnt.
        self.assertEqual(summary, {"COMPLETED": JOBS},
                         "every job completes: " + "; ".join(
                             f"{j['status']}: {j['error_message']}"
                             for s, js in by_status.items() if s != "COMPLETED" for j in js[:3]))
        self.assertEqual([j["id"] for j in jobs if j["retry_count"] != 0], [],
                         "a shortage of jobbridge's own burns no retry")
        for j in jobs:  # the program really ran, with this job on stdin
            self.assertEqual((j["result"] or {}).get("id"), j["id"])
        # The condition really happened, and each time it was logged at error level, naming the
        # job and the shortage.
        self.assertGreater(len(requeues), 0,
                           f"no shortage was logged; ROOM {ROOM} too large?\n{logs[-4000:]}")
        ids = {j["id"] for j in jobs}
        for r in requeues:
            self.assertEqual(r["level"], "error", r)
            self.assertIn(r["job_id"], ids, r)
            self.assertIn("Too many open files", r["reason"], r)
            self.assertTrue(1000 <= int(r["pause_ms"]) <= 30000, r)
        # The worker backed off: its next run (and so its next shortage) came only after the
        # pause it logged. A lower bound only, so a loaded machine cannot make it fail.
        by_worker = {}
        for r in requeues:
            by_worker.setdefault(r["worker"], []).append(r)
        for rs in by_worker.values():
            for a, c in zip(rs, rs[1:]):
                gap = (datetime.fromisoformat(c["ts"]) - datetime.fromisoformat(a["ts"]))
                self.assertGreaterEqual(gap.total_seconds() * 1000, int(a["pause_ms"]) - 10,
                                        (a, c))
        print("shortages per worker:", sorted(len(rs) for rs in by_worker.values()),
              file=sys.stderr)
        self.assertEqual(code, 0, logs[-4000:])


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])
