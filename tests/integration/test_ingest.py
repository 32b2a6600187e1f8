#!/usr/bin/env python3
"""Issue 3's acceptance tests: AMQP events become jobs exactly once, nothing lost, against the
real RabbitMQ and PostgreSQL of tests/run.sh, with events published by pika.

usage: test_ingest.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import signal
import sys
import time
import unittest

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

MAPPINGS = [
    {"event_type": "order.created", "job_type": "receipt", "queue": "email", "priority": 5,
     "payload": "/payload/order", "metadata": {"team": "billing"}},
    {"event_type": "order.#", "job_type": "audit", "queue": "audit", "delay_s": 60,
     "max_retries": 7},
    {"event_type": "user.*.updated", "job_type": "sync", "queue": "users"},
    {"event_type": "invoice.paid", "job_type": "billing", "queue": "money", "priority": 9},
    {"event_type": "legacy.#", "job_type": "legacy", "priority": -1},
]
JOB_TYPES = {name: {"handler": "noop"} for name in ("receipt", "audit", "sync", "billing", "legacy")}
JOBS_PER_FORMAT = [2, 1, 1, 1, 1, 1]  # order.created fans out to receipt + audit


def event(i):
    """Event i of the mixed stream: (body, routing key, properties, expected job types)."""
    fmt = i % 6
    mid = f"m-{i}" if i % 2 == 0 else None
    if fmt == 0:
        body = {"event_type": "order.created", "id": f"o-{i}",
                "payload": {"order": {"n": i}, "x": i}}
        return json.dumps(body), "order.created", pika.BasicProperties(
            content_type="application/json", message_id=mid, correlation_id=f"c-{i}"), \
            ["receipt", "audit"]
    if fmt == 1:
        body = {"event_type": f"user.{i}.updated", "event_id": i, "data": {"u": i}}
        return json.dumps(body), "user.updated", pika.BasicProperties(message_id=mid), ["sync"]
    if fmt == 2:
        body = {"specversion": "1.0", "type": "order.shipped", "id": f"s-{i}", "source": "/shop",
                "data": {"shipped": i}}
        return json.dumps(body), "order.shipped", pika.BasicProperties(
            content_type="application/cloudevents+json", message_id=mid), ["audit"]
    if fmt in (3, 4):
        header = "ce-type" if fmt == 3 else "cloudEvents:type"
        headers = {header: "invoice.paid", "ce-id": f"b-{i}", "ce-source": "/billing"}
        return json.dumps({"amount": i}), "invoice.paid", pika.BasicProperties(
            headers=headers, message_id=mid), ["billing"]
    body = {"id": f"t-{i}", "payload": {"p": i}}
    return json.dumps(body), "legacy", pika.BasicProperties(type="legacy.ping", message_id=mid), \
        ["legacy"]


def expected_jobs(n):
    return sum(JOBS_PER_FORMAT[i % 6] for i in range(n))


class Ingest(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []

    def tearDown(self):
        for b in self.bridges:
            b.close()

    def bridge(self, **overrides):
        b = jbtest.Bridge(BIN, SRC, MAPPINGS, JOB_TYPES, **overrides)
        self.bridges.append(b)
        return b

    def assert_exactly_once(self, b, n_events):
        want = expected_jobs(n_events)
        b.wait_count(want, 180)
        time.sleep(0.5)  # anything extra would show up now
        self.assertEqual(b.count(), want)
        distinct = int(jbtest.psql(f"SELECT count(DISTINCT dedupe_key) FROM {b.schema}.jobs"))
        self.assertEqual(distinct, want, "every job has its own dedupe key: none twice")

    def test_10k_mixed_formats_field_by_field(self):
        b = self.bridge()
        n = 10000
        events = [event(i) for i in range(n)]
        b.publish([(body, rk, props) for body, rk, props, _ in events])
        t0 = time.time()
        b.start()
        self.assert_exactly_once(b, n)
        print(f"\n  10k mixed events ingested in {time.time() - t0:.1f}s", file=sys.stderr)
        by_type = dict(l.split("|") for l in jbtest.psql(
            f"SELECT job_type || '|' || count(*) FROM {b.schema}.jobs GROUP BY job_type").splitlines())
        want = {"receipt": 0, "audit": 0, "sync": 0, "billing": 0, "legacy": 0}
        for i in range(n):
            for jt in events[i][3]:
                want[jt] += 1
        self.assertEqual({k: int(v) for k, v in by_type.items()}, want)
        # A sample, field by field.
        for i in (0, 1, 2, 3, 4, 5, 6, 9997, 9998, 9999):
            body, rk, props, types = events[i]
            base = props.message_id or {0: f"o-{i}", 1: str(i), 2: f"/shop/s-{i}",
                                        3: f"/billing/b-{i}", 4: f"/billing/b-{i}",
                                        5: f"t-{i}"}[i % 6]
            for jt in types:
                rows = b.jobs(f"dedupe_key = '{base}|{jt}'")
                self.assertEqual(len(rows), 1, f"event {i} -> {jt}")
                job = rows[0]
                md = job["metadata"]
                self.assertEqual(md["exchange"], b.exchange)
                self.assertEqual(md["routing_key"], rk)
                self.assertIn("received_at", md)
                self.assertEqual(job["job_type"], jt)
                if jt == "receipt":
                    self.assertEqual((job["queue_name"], job["priority"]), ("email", 5))
                    self.assertEqual(job["payload"], {"n": i})
                    self.assertEqual(md["team"], "billing")
                    self.assertEqual(md["event_type"], "order.created")
                    self.assertEqual(md["event_id"], f"o-{i}")
                    self.assertEqual(md["correlation_id"], f"c-{i}")
                    # The workers may already have run it: ingest made it, that is what counts.
                    self.assertIn(job["status"], ("PENDING", "RUNNING", "COMPLETED"))
                elif jt == "audit":
                    self.assertEqual((job["queue_name"], job["max_retries"]), ("audit", 7))
                    self.assertEqual(job["status"], "SCHEDULED", "delay_s 60")
                    delay = int(jbtest.psql(
                        f"SELECT extract(epoch FROM scheduled_at - (metadata->>'received_at')"
                        f"::timestamptz)::int FROM {b.schema}.jobs WHERE id = '{job['id']}'"))
                    self.assertEqual(delay, 60)
                elif jt == "sync":
                    self.assertEqual(job["queue_name"], "users")
                    self.assertEqual(job["payload"], {"u": i})
                    self.assertEqual(md["event_type"], f"user.{i}.updated")
                elif jt == "billing":
                    self.assertEqual((job["queue_name"], job["priority"]), ("money", 9))
                    self.assertEqual(job["payload"], {"amount": i})
                    self.assertEqual(md["source"], "/billing")
                elif jt == "legacy":
                    self.assertEqual((job["queue_name"], job["priority"]), ("default", -1))
                    self.assertEqual(job["payload"], {"p": i})
                    self.assertEqual(md["event_type"], "legacy.ping")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.queue_depth(), 0, "every delivery acked")

    def test_every_event_twice_gives_one_job_per_mapping(self):
        b = self.bridge()
        n = 1200
        events = []
        for i in range(n):
            body, rk, props, _ = event(i)
            props.message_id = f"dup-{i}"
            events.append((body, rk, props))
        b.start()
        b.publish(events)
        b.publish(events)  # the same message ids again
        self.assert_exactly_once(b, n)
        self.assertEqual(b.stop(), 0)
        totals = [json.loads(l) for l in b.logs().splitlines() if '"ingest totals"' in l][-1]
        self.assertEqual(int(totals["received"]), 2 * n)
        self.assertEqual(int(totals["jobs_created"]), expected_jobs(n))
        self.assertEqual(int(totals["duplicates"]), expected_jobs(n))

    def test_kill9_mid_run_then_restart(self):
        b = self.bridge()
        n = 20000
        b.publish([event(i)[:3] for i in range(n)])
        b.start()
        b.wait_count(3000, 120)
        b.kill9()
        done_at_kill = b.count()
        self.assertLess(done_at_kill, expected_jobs(n), "killed mid-run")
        b.start()
        self.assert_exactly_once(b, n)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.queue_depth(), 0)

    def test_broker_restart_and_database_outage_mid_run(self):
        b = self.bridge()
        n1, n2 = 10000, 4000
        b.publish([event(i)[:3] for i in range(n1)])
        b.start()
        # The broker restarts while the backlog is being consumed.
        b.wait_count(2000, 120)
        self.assertLess(b.count(), expected_jobs(n1), "restart happens mid-run")
        jbtest.servers("jb_rabbit_stop", jbtest.STATE_DIR)
        time.sleep(2)
        jbtest.servers("jb_rabbit_start", jbtest.STATE_DIR, os.environ["JB_AMQP_PORT"])
        b.wait_log('"consuming"', 120, count=2)
        b.wait_count(expected_jobs(n1), 120)
        # PostgreSQL stops for 10 s while events keep arriving: they must wait in the broker.
        jbtest.servers("jb_pg_stop", jbtest.STATE_DIR)
        b.publish([event(i)[:3] for i in range(n1, n1 + n2)])
        time.sleep(10)
        os.environ["JB_PG_FSYNC"] = "off"
        jbtest.servers("jb_pg_start", jbtest.STATE_DIR, os.environ["JB_PG_PORT"])
        self.assert_exactly_once(b, n1 + n2)
        logs = b.logs()
        self.assertIn("broker connection lost", logs)
        self.assertIn("cannot store jobs; holding deliveries unacked", logs)
        self.assertEqual(b.stop(), 0, "no crash")
        self.assertEqual(b.queue_depth(), 0)

    def test_bad_input_is_dead_lettered_with_a_reason(self):
        b = self.bridge(ingest__max_body_bytes=2048)
        good = lambda i: (json.dumps({"event_type": "invoice.paid", "id": f"g-{i}"}), "invoice.paid",
                          None)
        bad = [
            (b'{"event_type": ', "bad.malformed", "malformed JSON"),
            (b'[1, 2, 3]', "bad.array", "not an object"),
            (b'{"event_type": "invoice.paid", "id": "u", "x": "\xff"}', "bad.utf8", "not valid UTF-8"),
            (json.dumps({"event_type": "invoice.paid", "pad": "x" * 4096}), "bad.big",
             "exceeds ingest.max_body_bytes (2048)"),
            (b'{"id": "n", "payload": {}}', "bad.notype", "no event type"),
            (b'{"event_type": "nobody.cares", "id": "z"}', "bad.unmapped",
             'no mapping matches event type "nobody.cares"'),
            (b'{"event_type": "order.created", "id": "p", "payload": {}}', "bad.pointer",
             'payload pointer "/payload/order" finds nothing'),
        ]
        events = [good(0)]
        for body, rk, _ in bad:
            events += [(body, rk, None), good(len(events))]
        b.start()
        b.publish(events)
        b.wait_count(len(bad) + 1, 60)
        letters = {rk: (props, body) for rk, props, body in b.dead_letters(len(bad))}
        for body, rk, reason in bad:
            self.assertIn(rk, letters, f"{rk} reached the dead-letter exchange")
            props, got = letters[rk]
            self.assertIn(reason, props.headers["x-jobbridge-error"], rk)
            self.assertEqual(got, body if isinstance(body, bytes) else body.encode(), "body kept")
        self.assertEqual(b.count(), len(bad) + 1, "the good events around them became jobs")
        time.sleep(1)
        self.assertEqual(b.dead_letters(1, timeout=1), [], "nothing dead-lettered twice")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(b.queue_depth(), 0, "nothing requeued")
        self.assertIn('"dead_lettered":7,', b.logs())

    def test_sighup_reloads_mappings_and_refuses_a_bad_table(self):
        b = self.bridge()
        b.start()
        b.publish([(json.dumps({"event_type": "brand.new", "id": "x1"}), "brand.new", None)])
        self.assertEqual(len(b.dead_letters(1)), 1, "unmapped before the reload")
        cfg = dict(b.cfg)
        cfg["mappings"] = MAPPINGS + [{"event_type": "brand.new", "job_type": "legacy"}]
        b.write_config(cfg)
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log("mapping table reloaded", 10)
        b.publish([(json.dumps({"event_type": "brand.new", "id": "x2"}), "brand.new", None)])
        b.wait_count(1, 30)
        with open(b.config, "w") as f:
            f.write('{"mappings": [}')
        b.proc.send_signal(signal.SIGHUP)
        b.wait_log("reload refused", 10)
        b.publish([(json.dumps({"event_type": "brand.new", "id": "x3"}), "brand.new", None)])
        b.wait_count(2, 30)
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
