#!/usr/bin/env python3
"""Issue 13 item 5: GET /metrics of a running jobbridge under load. A few thousand events are
published with pika (some duplicates, some bad), workers run the jobs, then a scrape taken with
python3-requests must pass `promtool check metrics` and its values must agree with what was
published and with the database.

usage: test_http_metrics.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import re
import subprocess
import sys
import time
import unittest

import requests

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def props(event_type, message_id):
    return jbtest.pika.BasicProperties(type=event_type, message_id=message_id)


def parse(text):
    """{(name, frozenset(labels)): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """Sum over every series of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class Metrics(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        mappings = [{"event_type": "m.a", "job_type": "noop", "queue": "qa"},
                    {"event_type": "m.b", "job_type": "noop", "queue": "qb"}]
        self.b = jbtest.Bridge(BIN, SRC, mappings, {"noop": {"handler": "noop"}},
                               http__listen="127.0.0.1:0")
        self.b.migrate()
        self.b.start()
        self.url = self.b.http_url() + "/metrics"

    def tearDown(self):
        self.b.close()

    def scrape(self):
        r = requests.get(self.url, timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return r.text

    def promtool(self, text):
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, f"promtool: {out.stdout}{out.stderr}")

    def test_scrape_under_load_agrees_with_what_was_published(self):
        n_a, n_b, dups, bad = 2000, 1000, 200, 7
        events = []
        for i in range(n_a):
            events.append((json.dumps({"id": f"a-{i}", "n": i}).encode(), "m.a",
                           props("m.a", f"a-{i}")))
        for i in range(n_b):
            events.append((json.dumps({"id": f"b-{i}"}).encode(), "m.b",
                           props("m.b", f"b-{i}")))
        for i in range(dups):  # the same ids again: deduplicated, no new jobs
            events.append((json.dumps({"id": f"a-{i}", "n": i}).encode(), "m.a",
                           props("m.a", f"a-{i}")))
        for i in range(bad - 2):
            events.append((b"{not json", "m.a", props("m.a", f"x{i}")))
        events.append((b'{"id": "u"}', "m.unmapped", props("m.unmapped", "u1")))
        events.append((b'{"id": "u"}', "m.unmapped", props("m.unmapped", "u2")))
        self.b.publish(events[:1500])
        # Scrapes while the load runs: every one of them must be valid exposition text.
        self.promtool(self.scrape())
        self.b.publish(events[1500:])
        self.promtool(self.scrape())
        jobs = n_a + n_b
        self.b.wait_count(jobs, 180, "status = 'COMPLETED'")
        # Settled events and run outcomes are counted before the scrape: wait until they show.
        deadline = time.time() + 60
        while True:
            s = parse(self.scrape())
            settled = total(s, "jobbridge_events_total", trigger="amqp")
            finished = total(s, "jobbridge_jobs_finished_total", job_type="noop")
            if (settled == len(events) and finished == jobs) or time.time() > deadline:
                break
            time.sleep(0.5)
        text = self.scrape()
        self.promtool(text)
        s = parse(text)
        completed = int(jbtest.psql(
            f"SELECT count(*) FROM {self.b.schema}.jobs WHERE status = 'COMPLETED'"))
        self.assertEqual(completed, jobs)
        self.assertEqual(value(s, "jobbridge_events_received_total", trigger="amqp"), len(events))
        self.assertEqual(value(s, "jobbridge_events_total", trigger="amqp", outcome="created"),
                         jobs)
        self.assertEqual(value(s, "jobbridge_events_total", trigger="amqp", outcome="duplicate"),
                         dups)
        self.assertEqual(
            value(s, "jobbridge_events_total", trigger="amqp", outcome="dead_lettered"), bad)
        self.assertEqual(value(s, "jobbridge_events_dead_lettered_total", trigger="amqp",
                               reason="malformed"), bad - 2)
        self.assertEqual(value(s, "jobbridge_events_dead_lettered_total", trigger="amqp",
                               reason="no_mapping"), 2)
        self.assertEqual(value(s, "jobbridge_jobs_created_total", job_type="noop", queue="qa"),
                         n_a)
        self.assertEqual(value(s, "jobbridge_jobs_created_total", job_type="noop", queue="qb"),
                         n_b)
        self.assertEqual(value(s, "jobbridge_jobs_finished_total", job_type="noop",
                               status="COMPLETED"), completed)
        for h in ("jobbridge_job_run_duration_seconds", "jobbridge_job_claim_to_start_seconds",
                  "jobbridge_job_create_to_start_seconds"):
            self.assertEqual(value(s, h + "_count", job_type="noop"), completed, h)
            self.assertEqual(value(s, h + "_bucket", job_type="noop", le="+Inf"), completed, h)
        # Every job event is published: the relay's count and lag histogram agree.
        deadline = time.time() + 60
        while value(s, "jobbridge_outbox_published_total") < completed and time.time() < deadline:
            time.sleep(0.5)
            s = parse(self.scrape())
        self.assertEqual(value(s, "jobbridge_outbox_published_total"), completed)
        self.assertGreaterEqual(value(s, "jobbridge_outbox_publish_lag_seconds_count"), completed)
        # Connections: the broker's and the database's are up; nothing waits.
        self.assertGreaterEqual(value(s, "jobbridge_amqp_connections"), 2)
        self.assertGreaterEqual(value(s, "jobbridge_amqp_connects_total", result="ok"), 2)
        self.assertGreaterEqual(value(s, "jobbridge_db_connections"), 3)
        self.assertEqual(value(s, "jobbridge_db_scrape_success"), 1)
        # The process figures.
        self.assertGreater(value(s, "process_resident_memory_bytes"), 1e6)
        self.assertGreater(value(s, "process_cpu_seconds_total"), 0)
        self.assertGreater(value(s, "process_open_fds"), 5)
        start = value(s, "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 600, start)
        # HTTP: the scrapes so far were counted under their route pattern and code.
        self.assertGreaterEqual(value(s, "jobbridge_http_requests_total", method="GET",
                                      route="/metrics", code="200"), 3)
        requests.get(self.url.replace("/metrics", "/nowhere"), timeout=30)
        s = parse(self.scrape())
        self.assertEqual(value(s, "jobbridge_http_requests_total", method="GET",
                               route="unmatched", code="404"), 1)

    def test_waiting_gauges_follow_the_table(self):
        # Jobs of a type no worker serves stay waiting: the cached gauges count them.
        jbtest.psql(f"INSERT INTO {self.b.schema}.jobs (id, job_type, queue_name, payload, "
                    f"status, scheduled_at) SELECT gen_random_uuid(), 'noop', 'later', '{{}}', "
                    f"'SCHEDULED', now() + interval '1 day' FROM generate_series(1, 37)")
        deadline = time.time() + 30
        while True:
            s = parse(self.scrape())
            got = value(s, "jobbridge_jobs_waiting", queue="later", status="SCHEDULED")
            if got == 37 or time.time() > deadline:
                break
            time.sleep(1)
        self.assertEqual(got, 37)
        self.assertEqual(value(s, "jobbridge_outbox_depth"), 0)
        self.promtool(self.scrape())


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
