#!/usr/bin/env python3
"""Issue 4's acceptance tests: the worker pool, handlers, retries, dead letters, the reaper and
job events published through the outbox, against the real servers of tests/run.sh, with events
read by pika.

usage: test_workers.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import collections
import json
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
BEHAVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handlers", "behave.sh")


def exec_type(*args, timeout_s=30, max_retries=3):
    # The handler's environment is an allowlist: the test's state directory is passed by name.
    return {"handler": "exec", "command": [BEHAVE, *args], "timeout_s": timeout_s,
            "max_retries": max_retries, "env_passthrough": ["JB_TEST_STATE"]}


class Workers(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []
        self.state = tempfile.TemporaryDirectory()
        self.env = {"JB_TEST_STATE": self.state.name}

    def tearDown(self):
        for b in self.bridges:
            b.close()
        self.state.cleanup()

    def bridge(self, job_types, mappings=None, **overrides):
        overrides.setdefault("retry__jitter", 0)
        b = jbtest.Bridge(BIN, SRC, mappings or [], job_types, **overrides)
        self.bridges.append(b)
        b.migrate()
        return b

    def ran(self):
        path = os.path.join(self.state.name, "ran")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [line.split() for line in f if line.strip()]

    def test_5000_noop_jobs_with_events_and_correlation_ids(self):
        mappings = [{"event_type": f"p.{name}", "job_type": "noop", "queue": q, "priority": pr}
                    for name, q, pr in (("low", "q1", 0), ("mid", "q2", 5), ("high", "q1", 10))]
        b = self.bridge({"noop": {"handler": "noop"}}, mappings)
        n = 5000
        names = ("low", "mid", "high")
        b.publish([(json.dumps({"event_type": f"p.{names[i % 3]}", "id": f"e-{i}"}),
                    f"p.{names[i % 3]}", None) for i in range(n)])
        t0 = time.time()
        b.start(env=self.env)
        b.wait_count(n, 120, "status = 'COMPLETED'")
        events = b.events(n, timeout=120)
        print(f"\n  5000 events -> jobs -> job.completed in {time.time() - t0:.1f}s",
              file=sys.stderr)
        self.assertEqual(len(events), n)
        jobs = {j["id"]: j for j in b.jobs()}
        seen = set()
        for rk, props, body in events:
            self.assertEqual(rk, "job.completed.noop")
            self.assertEqual(props.content_type, "application/cloudevents+json")
            self.assertEqual(body["specversion"], "1.0")
            self.assertEqual(body["type"], "job.completed")
            self.assertEqual(props.message_id, body["id"])
            self.assertTrue(body["source"].startswith("jobbridge/"))
            job = jobs[body["subject"]]
            self.assertEqual(body["data"]["id"], job["id"])
            self.assertEqual(body["data"]["status"], "COMPLETED")
            self.assertEqual(body["data"]["job_type"], "noop")
            self.assertEqual(body["data"]["queue_name"], job["queue_name"])
            self.assertEqual(props.correlation_id, job["metadata"]["event_id"])
            seen.add(body["subject"])
        self.assertEqual(len(seen), n, "one event per job")
        self.assertEqual(b.count("status <> 'COMPLETED'"), 0)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(int(jbtest.psql(f"SELECT count(*) FROM {b.schema}.outbox")), 0)

    def test_single_worker_runs_higher_priority_first(self):
        b = self.bridge({"noop": {"handler": "noop"}}, workers__threads=1)
        for pr in (0, 10, 5):
            b.insert_jobs(300, "noop", priority=pr, tag=f"p{pr}")
        b.start(env=self.env)
        b.wait_count(900, 60, "status = 'COMPLETED'")
        rows = jbtest.psql(f"SELECT priority FROM {b.schema}.jobs ORDER BY started_at, priority DESC")
        order = [int(x) for x in rows.split()]
        self.assertEqual(order, sorted(order, reverse=True), "started in priority order")
        self.assertEqual(b.stop(), 0)

    def test_exec_retries_with_growing_delays_then_completes(self):
        b = self.bridge({"flaky": exec_type("flaky", "3", max_retries=3)},
                        retry__base_s=1, retry__max_s=10)
        b.create_job("flaky")
        b.start(env=self.env)
        b.wait_count(1, 60, "status = 'COMPLETED'")
        job = b.jobs()[0]
        self.assertEqual(job["retry_count"], 2)
        self.assertEqual(job["result"], {"attempts": 3, "type": "flaky"})
        events = b.events(3, timeout=30)
        self.assertEqual([e[0] for e in events],
                         ["job.retrying.flaky", "job.retrying.flaky", "job.completed.flaky"])
        self.assertIn("attempt 1 failed", events[0][2]["data"]["error_message"])
        # Delays grow: base_s * 2^retry_count, so 1 s, then 2 s (each gap also holds up to
        # ~0.2 s of polling and the handler's run, hence a difference, not a ratio).
        times = [time.mktime(time.strptime(e[2]["time"][:19], "%Y-%m-%dT%H:%M:%S")) +
                 float("0." + e[2]["time"][20:26]) for e in events]
        gap1, gap2 = times[1] - times[0], times[2] - times[1]
        self.assertGreater(gap1, 0.95, "first retry after base_s")
        self.assertGreater(gap2 - gap1, 0.5, f"gaps {gap1:.2f}s then {gap2:.2f}s")
        for _, props, body in events:
            self.assertEqual(props.correlation_id, "ev-1")
        self.assertEqual(b.stop(), 0)

    def test_exec_always_failing_is_dead_lettered_after_max_retries_plus_one(self):
        b = self.bridge({"doomed": exec_type("fail", max_retries=2)}, retry__base_s=0.1,
                        retry__max_s=0.2)
        self.assertEqual(b.create_job("doomed")["max_retries"], 2)
        b.start(env=self.env)
        b.wait_count(1, 60, "status = 'DEAD_LETTER'")
        job = b.jobs()[0]
        self.assertEqual(len(self.ran()), 3, "max_retries + 1 attempts")
        self.assertEqual(job["retry_count"], 2)
        self.assertIn("always failing (attempt 3)", job["error_message"])
        self.assertIn("exit status 1", job["error_message"])
        self.assertIsNotNone(job["failed_at"])
        types = [e[0] for e in b.events(3, timeout=30)]
        self.assertEqual(types, ["job.retrying.doomed", "job.retrying.doomed",
                                 "job.dead_letter.doomed"])
        self.assertEqual(b.stop(), 0)

    def test_exec_exit_65_fails_at_once(self):
        b = self.bridge({"bad": exec_type("bad")})
        b.insert_jobs(1, "bad")
        b.start(env=self.env)
        b.wait_count(1, 60, "status = 'FAILED'")
        time.sleep(1)
        self.assertEqual(len(self.ran()), 1, "no retry")
        job = b.jobs()[0]
        self.assertIn("exit status 65", job["error_message"])
        self.assertIn("the payload is unusable", job["error_message"])
        self.assertEqual(b.events(1)[0][0], "job.failed.bad")
        self.assertEqual(b.stop(), 0)

    def test_exec_over_its_timeout_is_killed_and_retried(self):
        b = self.bridge({"slow": exec_type("sleep", "30", timeout_s=1, max_retries=1)},
                        retry__base_s=0.1)
        b.create_job("slow")
        t0 = time.time()
        b.start(env=self.env)
        b.wait_count(1, 60, "status = 'DEAD_LETTER'")
        self.assertLess(time.time() - t0, 25, "killed, not waited for")
        job = b.jobs()[0]
        self.assertIn("timed out after 1s", job["error_message"])
        self.assertEqual(len(self.ran()), 2, "retried once after the timeout")
        self.assertEqual(b.stop(), 0)

    def test_scheduled_jobs_do_not_run_early(self):
        b = self.bridge({"noop": {"handler": "noop"}})
        b.start(env=self.env)
        jbtest.psql(f"INSERT INTO {b.schema}.jobs (id, job_type, payload, status, scheduled_at) "
                    f"VALUES (gen_random_uuid(), 'noop', '{{}}', 'SCHEDULED', now() + interval '3 s')")
        time.sleep(1.5)
        self.assertEqual(b.count("status = 'SCHEDULED'"), 1, "not yet")
        b.wait_count(1, 30, "status = 'COMPLETED'")
        self.assertEqual(b.count("started_at >= scheduled_at"), 1)
        self.assertEqual(b.stop(), 0)

    def test_kill9_while_jobs_run_then_the_reaper_retries_them(self):
        b = self.bridge({"slow": exec_type("sleep", "2", max_retries=3)}, workers__lease_s=3,
                        workers__threads=2, retry__base_s=0.1)
        b.insert_jobs(6, "slow")
        b.start(env=self.env)
        b.wait_count(2, 30, "status = 'RUNNING'")
        b.kill9()
        running = b.count("status = 'RUNNING'")
        self.assertGreater(running, 0, "jobs were running when the process died")
        b.start(env=self.env)
        b.wait_count(6, 120, "status = 'COMPLETED'")
        self.assertEqual(b.count("status = 'RUNNING'"), 0, "none stuck RUNNING")
        self.assertIn("reaped jobs whose lease expired", b.logs())
        completed = collections.Counter()
        for rk, _, body in b.events(100, timeout=5):
            if rk.startswith("job.completed"):
                completed[body["subject"]] += 1
        self.assertEqual(len(completed), 6)
        self.assertTrue(all(c == 1 for c in completed.values()), "no job COMPLETED twice")
        self.assertGreaterEqual(b.count("retry_count >= 1"), running, "the reaped ones retried")
        self.assertEqual(b.stop(), 0)

    def test_broker_down_while_jobs_complete_events_wait_in_the_outbox(self):
        b = self.bridge({"noop": {"handler": "noop"}})
        b.start(env=self.env)
        jbtest.servers("jb_rabbit_stop", jbtest.STATE_DIR)
        try:
            b.insert_jobs(1000, "noop")
            b.wait_count(1000, 60, "status = 'COMPLETED'")
            waiting = int(jbtest.psql(f"SELECT count(*) FROM {b.schema}.outbox"))
            self.assertEqual(waiting, 1000, "every event waits in the outbox")
        finally:
            jbtest.servers("jb_rabbit_start", jbtest.STATE_DIR, os.environ["JB_AMQP_PORT"])
        events = b.events(1000, timeout=120)
        ids = {body["subject"] for _, _, body in events}
        self.assertEqual(len(ids), 1000, "every event arrived")
        self.assertEqual(len(events), 1000, "no duplicates")
        self.assertEqual(b.stop(), 0)

    def test_two_instances_share_the_work_and_run_each_job_once(self):
        b = self.bridge({"work": exec_type("sleep", "0.01")}, workers__threads=2)
        other = jbtest.Bridge.__new__(jbtest.Bridge)
        other.__dict__.update(b.__dict__)
        other.proc = None
        other.log_path = b.log_path + ".2"
        b.insert_jobs(300, "work")
        b.start(env=self.env, wait_consuming=False)
        other.start(env=self.env, wait_consuming=False)
        try:
            b.wait_count(300, 180, "status = 'COMPLETED'")
        finally:
            self.assertEqual(other.stop(), 0)
        ran = self.ran()
        ids = collections.Counter(job for job, _ in ran)
        self.assertEqual(len(ids), 300)
        self.assertEqual(max(ids.values()), 1, "every job ran once")
        pids = collections.Counter(pid for _, pid in ran)
        self.assertEqual(len(pids), 2, f"both instances worked: {pids}")
        self.assertEqual(b.stop(), 0)

    def slow_job_running(self):
        """A bridge with a 1 s shutdown grace, running one job that would take 30 s."""
        b = self.bridge({"slow": exec_type("sleep", "30", max_retries=3)},
                        workers__shutdown_grace_s=1)
        b.insert_jobs(1, "slow")
        b.start(env=self.env)
        b.wait_count(1, 30, "status = 'RUNNING'")
        return b

    def test_sigterm_returns_running_jobs_without_burning_a_retry(self):
        b = self.slow_job_running()
        t0 = time.time()
        self.assertEqual(b.stop(), 0)
        self.assertLess(time.time() - t0, 15)
        job = b.jobs()[0]
        self.assertEqual(job["status"], "RETRYING")
        self.assertEqual(job["retry_count"], 0, "no retry burnt")

    def test_database_down_at_shutdown_does_not_hold_the_exit(self):
        b = self.slow_job_running()
        jbtest.servers("jb_pg_stop", jbtest.STATE_DIR)
        try:
            t0 = time.time()
            code = b.stop()
            took = time.time() - t0
        finally:
            jbtest.servers("jb_pg_start", jbtest.STATE_DIR, os.environ["JB_PG_PORT"])
        self.assertEqual(code, 0, b.logs()[-3000:])
        self.assertLess(took, 20, "the grace period, then the outcome is given up")
        self.assertIn("shutting down without recording job outcomes", b.logs())
        job = b.jobs()[0]
        self.assertEqual(job["status"], "RUNNING", "left to the reaper, whose lease covers it")

    def test_cancel_of_a_running_job_stops_its_handler(self):
        b = self.bridge({"slow": exec_type("sleep", "60")})
        b.insert_jobs(1, "slow")
        b.start(env=self.env)
        b.wait_count(1, 30, "status = 'RUNNING'")
        job_id = b.jobs()[0]["id"]
        t0 = time.time()
        out = jbtest.subprocess.run([BIN, "jobs", "cancel", job_id, "--config", b.config],
                                    capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        job = json.loads(out.stdout)
        self.assertEqual(job["status"], "FAILED")
        self.assertEqual(job["error_message"], "Job cancelled")
        self.assertLess(time.time() - t0, 15, "the handler was stopped, not waited for")
        self.assertEqual(b.events(1)[0][0], "job.failed.slow")
        self.assertEqual(b.stop(), 0)

    def test_workers_serve_only_their_queues_and_can_be_disabled(self):
        b = self.bridge({"noop": {"handler": "noop"}}, workers__queues=["a"])
        b.insert_jobs(20, "noop", queue="a")
        b.insert_jobs(20, "noop", queue="b", tag="b")
        b.start(env=self.env)
        b.wait_count(20, 30, "status = 'COMPLETED'")
        time.sleep(1)
        self.assertEqual(b.count("queue_name = 'b' AND status = 'PENDING'"), 20, "b is not ours")
        self.assertEqual(b.stop(), 0)
        # An ingest-only instance (workers.enabled false) creates jobs and runs none.
        cfg = dict(b.cfg, mappings=[{"event_type": "x", "job_type": "noop", "queue": "a"}],
                   workers={"enabled": False})
        b.write_config(cfg)
        b.start(env=self.env)
        b.publish([(json.dumps({"event_type": "x", "id": "only-ingest"}), "x", None)])
        b.wait_count(21, 30, "queue_name = 'a'")
        time.sleep(1)
        self.assertEqual(b.count("queue_name = 'a' AND status = 'PENDING'"), 1)
        self.assertEqual(b.stop(), 0)
        self.assertIn("workers are disabled in this instance", b.logs())

    def test_queue_stats_stay_true(self):
        b = self.bridge({"noop": {"handler": "noop"}, "bad": exec_type("bad")})
        b.insert_jobs(50, "noop", queue="a")
        b.insert_jobs(5, "bad", queue="b")
        b.start(env=self.env)
        b.wait_count(55, 60, "status IN ('COMPLETED', 'FAILED')")
        out = jbtest.subprocess.run([BIN, "stats", "--config", b.config], capture_output=True,
                                    text=True, timeout=30)
        stats = {s["queue_name"]: s for s in json.loads(out.stdout)}
        self.assertEqual((stats["a"]["completed_count"], stats["a"]["total_count"]), (50, 50))
        self.assertEqual((stats["b"]["failed_count"], stats["b"]["running_count"]), (5, 0))
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
