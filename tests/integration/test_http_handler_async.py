#!/usr/bin/env python3
"""Issue 16, item 1: the http handler does not block workers. A local HTTP service (python's
http.server) has a path that sleeps 5 s and one that answers at once, and counts the requests
in flight. With workers.threads 4: 200 fast jobs of one type all complete while 200 slow jobs of
another are still in flight, more than 4 requests are in flight at once, cancellation and
SIGTERM with requests in flight lose nothing and double nothing, and a request longer than the
lease keeps its job (the lease is renewed, the reaper leaves it alone).

usage: test_http_handler_async.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import http.server
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
SLOW_S = 5


class Service:
    """POST /slow/<id> sleeps SLOW_S then answers 200; POST /fast/<id> answers at once. Counts
    requests per job id and the most slow requests in flight at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}  # job id -> number of requests
        self.slow_now = 0
        self.slow_peak = 0
        self.fast_done = 0
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                kind, job_id = self.path.strip("/").split("/")
                with svc.lock:
                    svc.calls[job_id] = svc.calls.get(job_id, 0) + 1
                    if kind == "slow":
                        svc.slow_now += 1
                        svc.slow_peak = max(svc.slow_peak, svc.slow_now)
                if kind == "slow":
                    time.sleep(SLOW_S)
                    with svc.lock:
                        svc.slow_now -= 1
                else:
                    with svc.lock:
                        svc.fast_done += 1
                body = b'{"ok": true}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # jobbridge gave up on it
                    pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 512
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def get(self, name):
        with self.lock:
            return getattr(self, name)

    def wait(self, what, timeout, pred):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class AsyncHttpHandler(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.svc = Service()
        base = f"http://127.0.0.1:{self.svc.port}"
        retry = {"base_s": 3600, "max_s": 7200, "jitter": 0}
        self.types = {
            "slow": {"handler": "http", "url": base + "/slow/{id}", "timeout_s": 60,
                     "retry": retry},
            "fast": {"handler": "http", "url": base + "/fast/{id}", "timeout_s": 60,
                     "retry": retry},
        }

    def bridge(self, **overrides):
        b = jbtest.Bridge(BIN, SRC, [], self.types, workers__threads=4, **overrides)
        self.addCleanup(b.close)
        b.migrate()
        return b

    def tearDown(self):
        self.svc.close()

    def test_a_slow_type_never_blocks_the_fast_one(self):
        b = self.bridge()
        b.insert_jobs(200, "slow")
        b.start()
        self.svc.wait("slow requests in flight", 60, lambda: self.svc.get("slow_now") >= 20)
        b.insert_jobs(200, "fast")
        b.wait_count(200, 60, "job_type = 'fast' AND status = 'COMPLETED'")
        slow_now = self.svc.get("slow_now")
        slow_done = b.count("job_type = 'slow' AND status = 'COMPLETED'")
        self.assertGreater(slow_now, 0, "the fast jobs finished while slow requests were in flight")
        self.assertLess(slow_done, 200, "the fast jobs did not wait for the slow ones")
        b.wait_count(200, 120, "job_type = 'slow' AND status = 'COMPLETED'")
        peak = self.svc.get("slow_peak")
        # Far more requests in flight than the 4 workers; job_types.slow.concurrency (100 by
        # default) is a soft cap: racing claims may pass it by at most one claim per worker.
        self.assertGreater(peak, 4 * 5, f"{peak} slow requests in flight at most")
        self.assertLessEqual(peak, 4 * 100, f"{peak} slow requests in flight at most")
        with self.svc.lock:
            self.assertEqual(len(self.svc.calls), 400)
            self.assertEqual(set(self.svc.calls.values()), {1}, "each job requested once")
        self.assertEqual(b.count("retry_count > 0 OR status <> 'COMPLETED'"), 0)

    def test_concurrency_caps_a_type_in_flight(self):
        self.types["slow"]["concurrency"] = 10
        b = self.bridge()
        b.insert_jobs(60, "slow")
        b.start()
        b.wait_count(60, 120, "status = 'COMPLETED'")
        peak = self.svc.get("slow_peak")
        self.assertGreater(peak, 4, f"{peak}: more in flight than workers")
        self.assertLessEqual(peak, 10 * 4, f"{peak}: the cap holds (soft: one claim per worker)")

    def test_cancel_and_sigterm_lose_nothing(self):
        b = self.bridge(workers__shutdown_grace_s=1)
        b.insert_jobs(30, "slow")
        b.start()
        self.svc.wait("30 slow requests in flight", 60, lambda: self.svc.get("slow_now") >= 30)
        ids = [j["id"] for j in b.jobs("job_type = 'slow' ORDER BY id LIMIT 5")]
        for job_id in ids:
            out = subprocess.run([BIN, "jobs", "cancel", job_id, "--config", b.config],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
        # Cancelled while their requests run: FAILED "Job cancelled" well before they answer.
        b.wait_count(5, SLOW_S - 1, "status = 'FAILED' AND error_message = 'Job cancelled'")
        self.assertEqual(b.stop(), 0, "a clean shutdown")
        jobs = b.jobs("true")
        self.assertEqual(len(jobs), 30)
        by_status = {}
        for j in jobs:
            by_status.setdefault(j["status"], []).append(j)
        self.assertEqual(sorted(by_status), ["FAILED", "RETRYING"], [j["status"] for j in jobs])
        self.assertEqual(sorted(j["id"] for j in by_status["FAILED"]), sorted(ids))
        for j in by_status["RETRYING"]:  # interrupted by the shutdown: no retry burnt
            self.assertEqual(j["retry_count"], 0, j)
            self.assertIsNone(j["locked_by"], j)
        with self.svc.lock:
            self.assertEqual(set(self.svc.calls.values()), {1}, "each job requested once")
        # Started again, the retried ones complete, each exactly once more.
        b.start()
        # Any still waiting for a retry delay is made due now (a job the shutdown interrupted
        # may also be due at once, and the new process may have claimed it already).
        jbtest.psql(f"UPDATE {b.schema}.jobs SET scheduled_at = now() WHERE status = 'RETRYING'")
        b.wait_count(25, 60, "status = 'COMPLETED'")
        with self.svc.lock:
            twice = [k for k, v in self.svc.calls.items() if v == 2]
            self.assertEqual(len(twice), 25)
            self.assertEqual(set(self.svc.calls.values()), {1, 2})

    def test_a_request_longer_than_the_lease_is_not_reaped(self):
        b = self.bridge(workers__lease_s=2)
        b.insert_jobs(8, "slow")
        b.start()
        b.wait_count(8, 60, "status = 'COMPLETED'")
        self.assertEqual(b.count("status = 'COMPLETED' AND retry_count = 0"), 8)
        with self.svc.lock:
            self.assertEqual(set(self.svc.calls.values()), {1}, "each job requested once")
        self.assertNotIn("reaped jobs", b.logs())


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
