#!/usr/bin/env python3
"""The metrics of issue 14's parts on a live scrape of a running `jobbridge run`: a schedule
firing every second, retention of a few seconds, and job.created / job.started lifecycle events
for every job type. Jobs are created over the Jobs API (python3-requests) and run by the
workers; the scrape must pass `promtool check metrics`, and its figures must agree with the
database (schedule jobs, pruned jobs and their attempts) and with the job metrics (every created
job wrote job.created, every started one job.started). /healthz stays 200 throughout.

usage: test_metrics_more.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import os
import subprocess
import sys
import time
import unittest

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jbtest  # noqa: E402
from test_http_metrics import parse, total, value  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
JOBS = 40


class MetricsMore(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        # Workers serve the default queue only: the schedule's jobs wait in "parked", so the
        # only jobs that run (and are pruned) are the API's.
        self.b = jbtest.Bridge(
            BIN, SRC, [], {"noop": {"handler": "noop"}, "tick": {"handler": "noop"}},
            http__listen="127.0.0.1:0", workers__threads=2, workers__queues=["default"],
            events__lifecycle=["created", "started"],
            retention={"completed": "2s", "interval_s": 1},
            schedules=[{"name": "tick", "cron": "* * * * * *", "job_type": "tick",
                        "queue": "parked"}])
        self.b.migrate()
        self.b.start()
        self.url = self.b.http_url()

    def tearDown(self):
        self.b.close()

    def scrape(self):
        r = requests.get(self.url + "/metrics", timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        out = subprocess.run(["promtool", "check", "metrics"], input=r.text, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, f"promtool: {out.stdout}{out.stderr}")
        return parse(r.text)

    def until(self, what, check, timeout=90):
        """Scrapes until check(samples) holds (counters read in one scrape may be a firing
        apart); fails with the last scrape's figures."""
        deadline = time.time() + timeout
        while True:
            s = self.scrape()
            got = check(s)
            if got is True:
                return s
            if time.time() > deadline:
                self.fail(f"{what}: {got}")
            time.sleep(0.5)

    def test_schedule_retention_and_lifecycle_figures(self):
        ids = []
        for i in range(JOBS):
            r = requests.post(self.url + "/v1/jobs", json={"job_type": "noop", "payload": {"i": i}},
                              timeout=30)
            self.assertEqual(r.status_code, 202, r.text)
            ids.append(r.json()["id"])
        # Retention: every API job ran once and is pruned 2 s after it completed, with its one
        # attempt. The schedule's jobs wait, so are never pruned.
        s = self.until("the API's jobs pruned", lambda s: value(
            s, "jobbridge_retention_pruned_jobs_total", status="COMPLETED") == JOBS or
            f"pruned {value(s, 'jobbridge_retention_pruned_jobs_total', status='COMPLETED')}")
        self.assertEqual(self.b.count("job_type = 'noop'"), 0, "the table agrees")
        self.assertEqual(value(s, "jobbridge_retention_pruned_attempts_total"), JOBS)
        self.assertEqual(value(s, "jobbridge_retention_pruned_jobs_total", status="FAILED"), 0)
        self.assertEqual(value(s, "jobbridge_retention_pruned_jobs_total", status="DEAD_LETTER"), 0)
        self.assertEqual(value(s, "jobbridge_retention_pruned_outbox_total"), 0)
        self.assertGreaterEqual(value(s, "jobbridge_retention_runs_total"), 1)
        self.assertEqual(value(s, "jobbridge_retention_errors_total"), 0)
        self.assertEqual(value(s, "jobbridge_retention_leader"), 1)

        # Schedules: by now it fired a few times; each firing's job is in the table (one
        # instance: every one created here), and the gauge is the latest fire time.
        def schedule_agrees(s):
            made = self.b.count("dedupe_key LIKE 'schedule:tick:%'")
            created = value(s, "jobbridge_schedule_jobs_created_total", schedule="tick")
            fired = value(s, "jobbridge_schedule_firings_total", schedule="tick", kind="on_time")
            last = value(s, "jobbridge_schedule_last_fire_timestamp_seconds", schedule="tick")
            newest = jbtest.psql(
                f"SELECT coalesce(max(extract(epoch FROM (metadata->>'fire_time')::timestamptz)), 0)"
                f" FROM {self.b.schema}.jobs WHERE job_type = 'tick'")
            ok = made >= 3 and created == made and fired == made and last == float(newest)
            return ok or f"jobs {made}, created {created}, firings {fired}, last {last} vs {newest}"
        s = self.until("the schedule's figures", schedule_agrees)
        self.assertLess(abs(value(s, "jobbridge_schedule_last_fire_timestamp_seconds",
                                  schedule="tick") - time.time()), 30)
        self.assertEqual(value(s, "jobbridge_schedule_misfires_total", schedule="tick"), 0)
        self.assertEqual(value(s, "jobbridge_schedule_firings_total", schedule="tick",
                               kind="catch_up"), 0)
        self.assertEqual(total(s, "jobbridge_schedule_errors_total"), 0)

        # Lifecycle events: every job created wrote job.created (API and schedule jobs alike),
        # every job started wrote job.started (the API's, by claim or by hand-over).
        def lifecycle_agrees(s):
            created = value(s, "jobbridge_lifecycle_events_total", event="job.created")
            started = value(s, "jobbridge_lifecycle_events_total", event="job.started")
            jobs = total(s, "jobbridge_jobs_created_total")
            ran = total(s, "jobbridge_jobs_finished_total")
            ok = created == jobs and started == ran == JOBS
            return ok or f"job.created {created} of {jobs} jobs, job.started {started} of {ran}"
        self.until("the lifecycle events", lifecycle_agrees)

        health = requests.get(self.url + "/healthz", timeout=30)
        self.assertEqual(health.status_code, 200, health.text)
        self.assertEqual(health.json()["status"], "ok")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
