#!/usr/bin/env python3
"""Issue 11's relay faults (defects 4 and 8), against the real servers of tests/run.sh: a long
event id or routing key, and a row the broker refuses, never block the job events after them;
unroutable events are counted and logged, and kept when an alternate exchange is configured.

usage: test_relay_faults.py JOBBRIDGE_BINARY SOURCE_DIR [unittest arguments, e.g. -k long]
"""
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

import pika  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
NOOP = {"noop": {"handler": "noop"}}


def totals(logs):
    """The relay's totals line at shutdown, as a dict (its counts, JSON numbers, as strings)."""
    for line in reversed(logs.splitlines()):
        if '"outbox relay totals"' in line:
            return {k: str(v) for k, v in json.loads(line).items()}
    raise AssertionError("no 'outbox relay totals' line:\n" + logs[-4000:])


class RelayFaults(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []
        self.extra = []  # (kind, name) to delete on the broker

    def tearDown(self):
        for b in self.bridges:
            b.close()
        conn = pika.BlockingConnection(jbtest.pika_params())
        ch = conn.channel()
        for kind, name in self.extra:
            if kind == "queue":
                ch.queue_delete(name)
            else:
                ch.exchange_delete(name)
        conn.close()

    def bridge(self, **overrides):
        b = jbtest.Bridge(BIN, SRC, [], NOOP, **overrides)
        self.bridges.append(b)
        b.migrate()
        self.extra.append(("exchange", b.out))
        return b

    def outbox(self, b, where="true"):
        return int(jbtest.psql(f"SELECT count(*) FROM {b.schema}.outbox WHERE {where}"))

    def test_long_event_id_and_routing_key_do_not_block_later_events(self):
        b = self.bridge()
        long_id = "évènement-" + "x" * 150 + "é" * 100  # 420 bytes, multi-byte at the cut
        self.assertGreater(len(long_id.encode()), 300)
        jbtest.psql(f"INSERT INTO {b.schema}.jobs (id, job_type, payload, status, metadata) "
                    f"VALUES (gen_random_uuid(), 'noop', '{{}}', 'PENDING', "
                    f"jsonb_build_object('event_id', '{long_id}'))")
        # A routing key and type over 255 bytes (a long job type name), written as the workers
        # write events.
        long_key = "job.completed." + "t" * 300
        jbtest.psql(f"INSERT INTO {b.schema}.outbox (job_id, event_type, routing_key, data) "
                    f"VALUES (gen_random_uuid(), 'job.' || repeat('y', 300), '{long_key}', "
                    f"'{{\"job_type\": \"long\"}}')")
        b.start()
        b.wait_count(1, 60, "status = 'COMPLETED'")
        b.insert_jobs(50, "noop", tag="later")
        b.wait_count(51, 60, "status = 'COMPLETED'")
        events = b.events(52, timeout=60)
        self.assertEqual(len(events), 52, "every event is published, none blocked:\n"
                         + b.logs()[-3000:])
        by_corr = {props.correlation_id: (rk, props, body) for rk, props, body in events}
        for i in range(1, 51):
            self.assertIn(f"later-{i}", by_corr)
        longs = [e for e in events if e[2]["data"].get("metadata", {}).get("event_id") == long_id]
        self.assertEqual(len(longs), 1)
        corr = longs[0][1].correlation_id
        self.assertLessEqual(len(corr.encode()), 255)
        self.assertRegex(corr, r"~[0-9a-f]{16}$")
        self.assertTrue(long_id.startswith(corr[:-17]), "a prefix of the whole id")
        keyed = [e for e in events if e[2]["data"].get("job_type") == "long"]
        self.assertEqual(len(keyed), 1)
        rk, props, body = keyed[0]
        self.assertLessEqual(len(rk), 255)
        self.assertTrue(rk.startswith("job.completed.ttt"))
        self.assertLessEqual(len(props.type), 255)
        self.assertEqual(body["type"], "job." + "y" * 300, "the whole type stays in the body")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.outbox(b), 0)

    def test_returned_events_are_counted_and_logged(self):
        b = self.bridge()
        conn = pika.BlockingConnection(jbtest.pika_params())
        conn.channel().queue_unbind(b.out + ".watch", b.out, "#")  # nothing bound: unroutable
        conn.close()
        b.insert_jobs(30, "noop")
        b.start()
        b.wait_count(30, 60, "status = 'COMPLETED'")
        b.wait_log("job event returned unroutable", 60)
        deadline = time.time() + 60
        while self.outbox(b) > 0 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(b.stop(), 0)
        logs = b.logs()
        self.assertEqual(logs.count("job event returned unroutable"), 1,
                         "logged once per routing key, not once per event")
        self.assertIn('"routing_key":"job.completed.noop"', logs.replace(" ", ""))
        self.assertEqual(totals(logs)["returned"], "30", "every return counted")
        self.assertRegex(logs, r'"count": ?(29|30)\b')

    def test_alternate_exchange_keeps_unroutable_events(self):
        ae = "ae." + os.urandom(4).hex()
        b = self.bridge(amqp__output__alternate_exchange=ae)
        self.extra += [("queue", ae), ("exchange", ae)]
        # The output exchange exists without the argument: RabbitMQ refuses to change it, and
        # the relay says so.
        b.insert_jobs(5, "noop", tag="first")
        b.start()
        b.wait_log("cannot change the type or arguments of an existing exchange", 60)
        # The relay's refusal can come before the workers have run all five jobs: the events
        # are in the outbox once the jobs are done.
        b.wait_count(5, 60, "status = 'COMPLETED'")
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.outbox(b), 5, "the events wait in the outbox")
        conn = pika.BlockingConnection(jbtest.pika_params())
        conn.channel().exchange_delete(b.out)
        conn.close()
        b.start()
        got = b.drain(ae, 5, 60, json.loads)
        self.assertEqual(len(got), 5, "unroutable events land in the alternate queue:\n"
                         + b.logs()[-3000:])
        self.assertEqual(sorted(p.correlation_id for _, p, _ in got),
                         sorted(f"first-{i}" for i in range(1, 6)))
        self.assertEqual(b.stop(), 0)
        self.assertEqual(totals(b.logs())["returned"], "0", "routed to the alternate exchange")

    def test_a_row_the_broker_refuses_is_set_aside_and_the_rest_go_out(self):
        b = self.bridge()
        big = "jsonb_build_object('event_id', 'big-' || g, 'pad', repeat('x', 1500000))"
        jbtest.servers("jb_rabbitmqctl", jbtest.STATE_DIR, "eval",
                       "application:set_env(rabbit, max_message_size, 1048576).")
        try:
            # Alone in flight: that publish closed the channel, so the row is set aside.
            jbtest.psql(f"INSERT INTO {b.schema}.jobs (id, job_type, payload, status, metadata) "
                        f"SELECT gen_random_uuid(), 'noop', '{{}}', 'PENDING', {big} "
                        f"FROM generate_series(1, 1) g")
            b.start()
            b.wait_count(1, 60, "status = 'COMPLETED'")
            b.insert_jobs(20, "noop", tag="after")
            # Among many in flight: found by publishing them again one at a time.
            jbtest.psql(f"INSERT INTO {b.schema}.jobs (id, job_type, payload, status, metadata) "
                        f"SELECT gen_random_uuid(), 'noop', '{{}}', 'PENDING', "
                        f"CASE WHEN g = 15 THEN {big} ELSE jsonb_build_object('event_id', "
                        f"'mix-' || g) END FROM generate_series(1, 30) g")
            b.wait_count(51, 90, "status = 'COMPLETED'")
            want = {f"after-{i}" for i in range(1, 21)} | {f"mix-{i}" for i in range(1, 31)
                                                            if i != 15}
            corr = set()  # events in flight at a channel error may come twice: read until all
            deadline = time.time() + 90
            while want - corr and time.time() < deadline:
                corr |= {p.correlation_id for _, p, _ in b.events(100, timeout=2)}
            self.assertEqual(want - corr, set(), "later events are not blocked:\n"
                             + b.logs()[-3000:])
            deadline = time.time() + 60
            while self.outbox(b, "failed_at IS NULL") > 0 and time.time() < deadline:
                time.sleep(0.2)
            aside = jbtest.psql(f"SELECT data->'metadata'->>'event_id', failed_reason FROM "
                                f"{b.schema}.outbox WHERE failed_at IS NOT NULL ORDER BY 1")
            rows = [line.split("|", 1) for line in aside.splitlines() if line]
            self.assertEqual([r[0] for r in rows], ["big-1", "big-15"], aside)
            for r in rows:
                self.assertRegex(r[1], r"406|PRECONDITION_FAILED|max size")
            self.assertEqual(self.outbox(b), 2, "only the set-aside rows are left")
            self.assertEqual(b.stop(), 0)
            self.assertEqual(totals(b.logs())["set_aside"], "2")
            self.assertIn("job event set aside", b.logs())
        finally:
            jbtest.servers("jb_rabbitmqctl", jbtest.STATE_DIR, "eval",
                           "application:set_env(rabbit, max_message_size, 134217728).")


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
