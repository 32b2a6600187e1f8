#!/usr/bin/env python3
"""Issue 15 item 3: backpressure. With ingest.max_waiting 5,000 and no workers, a burst of
50,000 events leaves about 5,000 waiting jobs (over the mark by at most amqp.prefetch +
ingest.batch_max per consumer: the deliveries in hand when consuming paused) and the rest in
RabbitMQ; a jobbridge with workers then drains everything, resuming ingest below the low-water
mark; nothing is lost and no event becomes two jobs. Real RabbitMQ, PostgreSQL and pika.

usage: test_backpressure.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import sys
import time
import unittest

import pika
import requests

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
EVENTS = 50_000
MAX_WAITING = 5_000
PREFETCH = 500
CONSUMERS = 2
BATCH_MAX = 200


def publish_burst(bridge, n):
    """Publishes n persistent events as fast as pika goes (no per-message confirm wait), then
    waits until the queue holds all of them: the broker's own count is the proof of arrival."""
    conn = pika.BlockingConnection(jbtest.pika_params())
    ch = conn.channel()
    props = pika.BasicProperties(delivery_mode=2, content_type="application/json")
    for i in range(n):
        body = json.dumps({"event_type": "bp.burst", "id": f"bp-{i}", "payload": {"n": i}})
        ch.basic_publish(bridge.exchange, "bp.burst", body, props)
    conn.close()
    deadline = time.time() + 120
    while bridge.queue_depth() < n:
        assert time.time() < deadline, f"only {bridge.queue_depth()} of {n} events in the queue"
        time.sleep(0.5)


def settle(bridge, timeout):
    """Waits until the job count has not moved for 3 s; returns it."""
    deadline = time.time() + timeout
    last, since = -1, time.time()
    while time.time() < deadline:
        got = bridge.count()
        if got != last:
            last, since = got, time.time()
        elif time.time() - since >= 3:
            return got
        time.sleep(0.25)
    raise AssertionError(f"the job count kept moving for {timeout}s (last {last})")


class Backpressure(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridge = jbtest.Bridge(
            BIN, SRC, [{"event_type": "bp.#", "job_type": "bp", "queue": "bp"}],
            {"bp": {"handler": "noop"}}, amqp__prefetch=PREFETCH,
            ingest__consumers=CONSUMERS, ingest__batch_max=BATCH_MAX, ingest__max_waiting=MAX_WAITING,
            workers__enabled=False, http__listen="127.0.0.1:0")

    def tearDown(self):
        self.bridge.close()

    def test_burst_waits_in_the_broker_then_drains(self):
        b = self.bridge
        publish_burst(b, EVENTS)
        b.start()
        b.wait_log("pausing ingest", 120)
        waiting = settle(b, 120)
        depth = b.queue_depth()
        print(f"paused: {waiting} waiting jobs, {depth} events in RabbitMQ", file=sys.stderr)
        self.assertGreaterEqual(waiting, MAX_WAITING)
        # Over the mark by at most what each consumer had in hand when it paused: the batch that
        # crossed it (ingest.batch_max) and the deliveries unacked (amqp.prefetch).
        self.assertLessEqual(waiting, MAX_WAITING + (PREFETCH + BATCH_MAX) * CONSUMERS)
        # Everything received was stored and acked: the rest is in the queue, ready.
        self.assertEqual(waiting + depth, EVENTS)
        # Paused, not dead: still paused a few seconds on (heartbeats serviced, no reconnects).
        time.sleep(3)
        self.assertEqual(b.count(), waiting)
        self.assertNotIn("broker connection lost", b.logs())
        # Shown by /readyz (a note beside each consumer's check; still ready: the API and the
        # workers serve) and by the metrics.
        url = b.http_url()
        ready = requests.get(url + "/readyz", timeout=30)
        self.assertEqual(ready.status_code, 200, ready.text)
        notes = [c.get("note", "") for c in ready.json()["checks"]]
        self.assertEqual(sum("paused by backpressure" in n for n in notes), CONSUMERS, notes)
        metrics = requests.get(url + "/metrics", timeout=30).text
        self.assertIn("jobbridge_ingest_paused 1", metrics)
        self.assertIn("jobbridge_ingest_backpressure_pauses_total 1", metrics)
        b.stop()

        # A jobbridge with workers drains the table, resumes ingest, and so on to the end.
        cfg = dict(b.cfg)
        cfg["workers"] = {"enabled": True, "threads": 4, "poll_ms": 200}
        b.write_config(cfg)
        b.start()
        b.wait_count(EVENTS, 240, "status = 'COMPLETED'")
        self.assertIn("resuming ingest", b.logs())
        checks = requests.get(b.http_url() + "/readyz", timeout=30).json()["checks"]
        self.assertFalse(any("note" in c for c in checks), checks)
        self.assertEqual(b.queue_depth(), 0)
        total = b.count()
        distinct = int(jbtest.psql(f"SELECT count(DISTINCT dedupe_key) FROM {b.schema}.jobs"))
        pauses = b.logs().count("pausing ingest")
        print(f"drained: {total} jobs, {distinct} distinct events, {pauses} pauses in all",
              file=sys.stderr)
        self.assertEqual(total, EVENTS)
        self.assertEqual(distinct, EVENTS)
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
