#!/usr/bin/env python3
"""Issue 16's process handler and progress, against the real servers: the example Python and
Node.js workers (tests/integration/workers/) serve 10,000 jobs each; a worker killed with
SIGKILL mid-job, one that exits mid-job and one that prints garbage all end in one retry and
exactly one result; an exec handler's progress lines reach the jobs table and the job.progress
events (read with pika).

usage: test_process_handler.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import collections
import json
import os
import signal
import sys
import tempfile
import time
import unittest

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
PY_WORKER = [os.path.join(HERE, "workers", "worker.py")]
NODE_WORKER = ["node", os.path.join(HERE, "workers", "worker.js")]


def process_type(command, processes=2, timeout_s=30):
    return {"handler": "process", "command": command, "processes": processes,
            "timeout_s": timeout_s, "max_retries": 3}


def all_events(b, expected, timeout=180):
    """Every job event in the output watch queue once `expected` are there (a consumer, not one
    basic_get per message); more than expected are read too (a duplicate must show)."""
    conn = pika.BlockingConnection(jbtest.pika_params())
    ch = conn.channel()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ch.queue_declare(b.out + ".watch", passive=True).method.message_count >= expected:
            break
        time.sleep(0.5)
    time.sleep(1.5)  # anything published after the expected ones (a duplicate) arrives too
    got = []
    ch.basic_qos(prefetch_count=1000)
    for method, props, body in ch.consume(b.out + ".watch", auto_ack=True, inactivity_timeout=2):
        if method is None:
            break
        got.append((method.routing_key, json.loads(body)["data"]))  # the job snapshot
    ch.cancel()
    conn.close()
    return got


class ProcessHandler(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []

    def tearDown(self):
        for b in self.bridges:
            b.close()

    def bridge(self, job_types, **overrides):
        overrides.setdefault("retry__jitter", 0)
        overrides.setdefault("retry__base_s", 0.1)
        overrides.setdefault("http__listen", "127.0.0.1:0")  # null is refused on main today
        b = jbtest.Bridge(BIN, SRC, [], job_types, **overrides)
        self.bridges.append(b)
        b.migrate()
        return b

    def test_python_and_node_workers_serve_10000_jobs_each_once(self):
        b = self.bridge({"py": process_type(PY_WORKER), "js": process_type(NODE_WORKER)},
                        workers__threads=4)
        n = 10000
        b.insert_jobs(n, "py", tag="py")
        b.insert_jobs(n, "js", tag="js")
        b.start()
        b.wait_count(2 * n, 240, "status = 'COMPLETED'")
        rows = b.jobs()
        self.assertEqual(len(rows), 2 * n)
        for r in rows:
            self.assertEqual(r["status"], "COMPLETED", r)
            self.assertEqual(r["retry_count"], 0, r)
            lang = "python" if r["job_type"] == "py" else "node"
            self.assertEqual(r["result"], {"n": r["payload"]["n"], "lang": lang}, r)
        events = all_events(b, 2 * n)
        per_job = collections.Counter(e["id"] for rk, e in events)
        self.assertEqual(len(events), 2 * n, "one event per job, no more")
        self.assertEqual(set(per_job.values()), {1})
        self.assertEqual({rk.split(".")[1] for rk, e in events}, {"completed"})
        b.stop()

    def test_killed_exited_and_garbage_workers_retry_once(self):
        pidfile = os.path.join(tempfile.mkdtemp(), "pid")
        b = self.bridge({"py": process_type(PY_WORKER, processes=1),
                         "js": process_type(NODE_WORKER, processes=1)})
        b.start()
        payloads = [("py", {"n": 1, "hang_once": pidfile}), ("py", {"n": 2, "garbage_once": 1}),
                    ("js", {"n": 3, "garbage_once": 1}), ("js", {"n": 4, "crash_once": 1}),
                    ("py", {"n": 5, "crash_once": 1})]
        for jt, p in payloads:
            b.create_job(jt, "--payload", json.dumps(p))
        deadline = time.time() + 60
        pid = ""
        while not pid:
            self.assertLess(time.time(), deadline, "the hanging job never started")
            time.sleep(0.1)
            if os.path.exists(pidfile):
                with open(pidfile) as f:
                    pid = f.read()
        os.kill(int(pid), signal.SIGKILL)  # the worker process itself, mid-job
        b.wait_count(len(payloads), 120, "status = 'COMPLETED'")
        rows = {r["payload"]["n"]: r for r in b.jobs()}
        for n, r in rows.items():
            self.assertEqual(r["retry_count"], 1, r)
            self.assertEqual(r["result"]["n"], n, r)
        events = all_events(b, 2 * len(payloads))
        kinds = collections.Counter((e["id"], rk.split(".")[1]) for rk, e in events)
        for r in rows.values():
            self.assertEqual(kinds[(r["id"], "retrying")], 1, kinds)
            self.assertEqual(kinds[(r["id"], "completed")], 1, kinds)
        self.assertEqual(len(events), 2 * len(payloads))
        logs = b.logs()
        self.assertIn("killed by signal 9", logs)
        self.assertIn("wrote garbage", logs)
        self.assertIn("exited with status 3", logs)
        b.stop()

    def test_exec_progress_lines_reach_the_job_and_its_events(self):
        script = os.path.join(tempfile.mkdtemp(), "slow.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\n"
                    'echo "progress 40 loading rows" >&"$JOBBRIDGE_PROGRESS_FD"\n'
                    "sleep 3\n"
                    'echo "progress 80" >&"$JOBBRIDGE_PROGRESS_FD"\n'
                    "sleep 3\n")
        os.chmod(script, 0o755)
        b = self.bridge({"slow": {"handler": "exec", "command": [script], "timeout_s": 60,
                                  "progress_events": True},
                         "quiet": {"handler": "exec", "command": [script], "timeout_s": 60}})
        b.start()
        job = b.create_job("slow")
        quiet = b.create_job("quiet")
        b.wait_count(1, 30, f"id = '{job['id']}' AND progress = 40 AND status = 'RUNNING' "
                     "AND progress_message = 'loading rows'")
        b.wait_count(1, 30, f"id = '{job['id']}' AND progress = 80 AND status = 'RUNNING' "
                     "AND progress_message IS NULL")
        b.wait_count(2, 60, "status = 'COMPLETED' AND progress = 100")
        shown = json.loads(jbtest.subprocess.run(
            [BIN, "jobs", "get", job["id"], "--config", b.config], capture_output=True,
            text=True, timeout=60).stdout)
        self.assertEqual(shown["progress"], 100)
        self.assertIn("progress_message", shown)
        events = all_events(b, 4)
        progress = [e for rk, e in events if rk == "job.progress.slow"]
        self.assertEqual([(e["progress"], e["progress_message"]) for e in progress],
                         [(40, "loading rows"), (80, None)])
        self.assertEqual({e["id"] for e in progress}, {job["id"]})
        self.assertFalse([rk for rk, e in events if rk.startswith("job.progress.quiet")])
        self.assertEqual(b.count(f"id = '{quiet['id']}' AND progress = 100"), 1)
        b.stop()


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
