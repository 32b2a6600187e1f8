#!/usr/bin/env python3
"""Issue 11's ingest faults (defects 2, 3, 5 and the dead-letter headers of 17), against the real
RabbitMQ and PostgreSQL of tests/run.sh, with events published by pika:

- a transient database error (statement timeout under a table lock) holds the batch unacked and
  retries it; only an error about the row itself dead-letters it;
- the dead-letter path survives an idle longer than the heartbeat timeout, never acks a tag it
  did not settle, and never loses the x-jobbridge-error reason;
- a NUL byte in an AMQP string jobbridge uses as a key, id or fact is refused with a reason;
- a dead letter keeps every original header.

usage: test_ingest_faults.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args, e.g. -k nul]
"""
import json
import os
import subprocess
import sys
import time
import unittest
import urllib.parse

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

MAPPINGS = [{"event_type": "thing.#", "job_type": "thing", "queue": "things"}]
JOB_TYPES = {"thing": {"handler": "noop"}}


def good(n, with_id=True):
    body = {"event_type": "thing.made", "payload": {"n": n}}
    if with_id:
        body["id"] = f"ev-{n}"
    return json.dumps(body), "thing.made", None


def unmapped(tag):
    return json.dumps({"event_type": "nobody.wants", "id": tag}), "nobody.wants", None


def reason(props):
    return (props.headers or {}).get("x-jobbridge-error")


class IngestFaults(unittest.TestCase):
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

    def assert_no_channel_error(self, b):
        logs = b.logs()
        for needle in ("closed the channel", "unknown delivery tag", "PRECONDITION_FAILED"):
            self.assertNotIn(needle, logs)

    # --- defect 2: transient database errors are retried, not dead-lettered ---

    def test_statement_timeout_under_lock_holds_events_and_retries(self):
        b = self.bridge()
        b.migrate()
        sep = "&" if "?" in jbtest.DB_URL else "?"
        url = jbtest.DB_URL + sep + "options=" + urllib.parse.quote("-c statement_timeout=500")
        b.start(env={"JOBBRIDGE_DATABASE_URL": url})
        # Hold an ACCESS EXCLUSIVE lock on the jobs table for 6 s: every insert times out.
        locker = subprocess.Popen(
            ["psql", jbtest.DB_URL, "-AtXq", "-v", "ON_ERROR_STOP=1", "-c",
             f"BEGIN; LOCK TABLE {b.schema}.jobs IN ACCESS EXCLUSIVE MODE; "
             "SELECT pg_sleep(6); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                held = jbtest.psql(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'jobs' "
                    f"AND n.nspname = '{b.schema}' AND l.mode = 'AccessExclusiveLock' "
                    "AND l.granted")
                if int(held) > 0:
                    break
                time.sleep(0.05)
            else:
                self.fail("the test could not take the table lock")
            b.publish([good(i) for i in range(20)])
            b.wait_log("holding deliveries unacked", 30)
        finally:
            _, err = locker.communicate(timeout=60)
        self.assertEqual(locker.returncode, 0, err)
        b.wait_count(20, 120)
        self.assertEqual(b.dead_letters(1, timeout=2), [], "no good event is dead-lettered")
        time.sleep(1)
        self.assertEqual(b.count(), 20)
        self.assertIn("SQLSTATE 57014", b.logs())
        self.assertEqual(b.stop(), 0)

    def test_a_row_the_database_refuses_is_still_dead_lettered(self):
        b = self.bridge()
        b.migrate()
        # PostgreSQL itself refuses these rows: a failed cast (class 22) and a failed CHECK
        # (class 23). The good events of the same batches still become jobs.
        jbtest.psql(f"ALTER TABLE {b.schema}.jobs ADD CONSTRAINT n_small CHECK "
                    "(payload->>'n' IS NULL OR (payload->>'n')::int < 1000)")
        b.start()
        cast = json.dumps({"event_type": "thing.made", "id": "bad-cast",
                           "payload": {"n": "not a number"}}), "thing.made", None
        check = json.dumps({"event_type": "thing.made", "id": "bad-check",
                            "payload": {"n": 5000}}), "thing.made", None
        b.publish([good(1), cast, good(2), check, good(3)])
        dead = b.dead_letters(2, timeout=60)
        self.assertEqual(len(dead), 2, b.logs()[-3000:])
        reasons = sorted(reason(p) for _, p, _ in dead)
        self.assertTrue(any("22P02" in r for r in reasons), reasons)
        self.assertTrue(any("23514" in r for r in reasons), reasons)
        b.wait_count(3, 60)
        self.assertEqual(b.count(), 3)
        self.assertEqual(b.stop(), 0)

    def test_cli_exit_codes_tell_refused_data_from_a_database_fault(self):
        b = self.bridge()
        b.migrate()
        jbtest.psql(f"ALTER TABLE {b.schema}.jobs ADD CONSTRAINT n_small CHECK "
                    "(payload->>'n' IS NULL OR (payload->>'n')::int < 1000)")

        def create(payload, env=None):
            return subprocess.run([b.binary, "jobs", "create", "thing", "--payload", payload,
                                   "--config", b.config], capture_output=True, text=True,
                                  timeout=60, env=dict(os.environ, **(env or {})))

        out = create('{"n": 5000}')
        self.assertEqual(out.returncode, 2, out.stderr)  # the input's fault
        self.assertIn("refused", out.stderr)
        self.assertIn("23514", out.stderr)
        sep = "&" if "?" in jbtest.DB_URL else "?"
        url = jbtest.DB_URL + sep + "options=" + urllib.parse.quote("-c statement_timeout=300")
        locker = subprocess.Popen(
            ["psql", jbtest.DB_URL, "-AtXq", "-c",
             f"BEGIN; LOCK TABLE {b.schema}.jobs; SELECT pg_sleep(3); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            out = create('{"n": 1}', env={"JOBBRIDGE_DATABASE_URL": url})
        finally:
            locker.wait(timeout=60)
        self.assertEqual(out.returncode, 1, out.stderr)  # a database fault, not the input's
        self.assertIn("57014", out.stderr)
        self.assertEqual(create('{"n": 1}').returncode, 0)

    # --- defect 3: the dead-letter path after an idle longer than the heartbeat timeout ---

    def test_dead_letter_after_idle_keeps_reason_and_channel(self):
        b = self.bridge(amqp__heartbeat_s=2, ingest__consumers=1)  # one dead-letter connection
        b.start()
        b.publish([unmapped("first-bad")])
        dead = b.dead_letters(1, timeout=60)
        self.assertEqual(len(dead), 1)
        self.assertIn("no mapping", reason(dead[0][1]) or "")
        time.sleep(8)  # idle for four heartbeat intervals
        events = [good(i, with_id=False) for i in range(3)] + [unmapped("second-bad")] + \
            [good(i, with_id=False) for i in range(3, 6)]
        b.publish(events)
        dead = b.dead_letters(1, timeout=60)
        self.assertEqual(len(dead), 1, b.logs()[-3000:])
        self.assertIn("no mapping", reason(dead[0][1]) or "", "the reason header is kept")
        self.assertEqual(json.loads(dead[0][2])["id"], "second-bad")
        b.wait_count(6, 60)
        time.sleep(3)  # a redelivery would make more
        ns = sorted(j["payload"]["n"] for j in b.jobs())
        self.assertEqual(ns, list(range(6)), "every good event is exactly one job")
        self.assertEqual(b.dead_letters(1, timeout=1), [], "nothing dead-lettered twice")
        self.assert_no_channel_error(b)
        self.assertNotIn("reconnecting once", b.logs(), "the idle connection was kept alive")
        self.assertEqual(b.stop(), 0)

    def test_dead_letter_that_cannot_be_published_is_held_not_rejected(self):
        b = self.bridge(ingest__consumers=1)
        b.start()
        # Nothing bound to the dead-letter exchange: a dead letter comes back unroutable, and
        # the queue's own x-dead-letter-exchange (the same exchange) would drop it as well.
        conn = pika.BlockingConnection(jbtest.pika_params())
        ch = conn.channel()
        ch.queue_delete(b.dlx)
        ch.queue_delete(b.dlx + ".watch")
        conn.close()
        b.publish([good(1, with_id=False), unmapped("held-bad"), good(2, with_id=False)])
        b.wait_count(2, 60)  # the good event after the bad one is not held back
        time.sleep(1)
        conn = pika.BlockingConnection(jbtest.pika_params())
        ch = conn.channel()
        ch.queue_declare(b.dlx + ".watch", durable=True)
        ch.queue_bind(b.dlx + ".watch", b.dlx, "#")
        conn.close()
        dead = b.dead_letters(1, timeout=90)
        self.assertEqual(len(dead), 1, b.logs()[-3000:])
        self.assertIn("no mapping", reason(dead[0][1]) or "", "the reason header is kept")
        self.assertIn("cannot dead-letter; holding the events unacked", b.logs())
        time.sleep(2)
        self.assertEqual(sorted(j["payload"]["n"] for j in b.jobs()), [1, 2])
        self.assert_no_channel_error(b)
        self.assertEqual(b.stop(), 0)

    # --- defect 5: NUL bytes in keys, ids and facts ---

    def test_nul_in_amqp_strings_is_refused_with_the_field_named(self):
        b = self.bridge()
        b.start()
        p = pika.BasicProperties
        b.publish([
            (good(1)[0], "thing.made", p(message_id="a\x00b")),
            (good(2)[0], "thing.made", p(message_id="a\x00c")),
            (good(3)[0], "thing.made", p(correlation_id="c\x00d")),
            (good(4)[0], "thing.made", p(type="t\x00u")),
            (good(5)[0], "thing.made\x00x", None),
            (json.dumps({"n": 6}), "thing.made",
             p(headers={"ce-type": "thing.made", "ce-source": "/s", "ce-id": "i\x00j"})),
            (good(7)[0], "thing.made", p(message_id="fine-7")),
        ])
        dead = b.dead_letters(6, timeout=60)
        self.assertEqual(len(dead), 6, b.logs()[-3000:])
        reasons = [reason(props) or "" for _, props, _ in dead]
        for field in ("message_id", "correlation_id", "type property", "routing key", "\"ce-id\""):
            self.assertTrue(any(field in r and "NUL" in r for r in reasons), (field, reasons))
        self.assertEqual(sum("message_id" in r for r in reasons), 2, reasons)
        b.wait_count(1, 60)
        time.sleep(1)
        self.assertEqual([j["payload"]["n"] for j in b.jobs()], [7])
        self.assertEqual(b.stop(), 0)

    # --- defect 17 (headers): a dead letter keeps every original header ---

    def test_dead_letter_keeps_every_header(self):
        b = self.bridge()
        b.start()
        headers = {f"h-{i:03d}": f"value {i}" for i in range(95)}
        headers.update({"an-int": 42, "a-bool": True, "a-table": {"k": "v"},
                        "a-list": ["x", 1], "x-jobbridge-error": "a stale reason"})
        self.assertEqual(len(headers), 100)
        b.publish([(unmapped("many-headers")[0], "nobody.wants", pika.BasicProperties(
            headers=headers, message_id="mh-1", correlation_id="corr-1"))])
        dead = b.dead_letters(1, timeout=60)
        self.assertEqual(len(dead), 1, b.logs()[-3000:])
        _, props, body = dead[0]
        got = dict(props.headers)
        self.assertIn("no mapping", got.pop("x-jobbridge-error"), "the reason replaces the old")
        want = dict(headers)
        del want["x-jobbridge-error"]
        self.assertEqual(len(got), 99)
        for k, v in want.items():
            gv = got[k]
            if isinstance(gv, bytes):
                gv = gv.decode()
            if isinstance(gv, list):
                gv = [x.decode() if isinstance(x, bytes) else x for x in gv]
            if isinstance(gv, dict):
                gv = {kk: vv.decode() if isinstance(vv, bytes) else vv for kk, vv in gv.items()}
            self.assertEqual(gv, v, k)
        self.assertEqual(props.message_id, "mh-1")
        self.assertEqual(props.correlation_id, "corr-1")
        self.assertEqual(json.loads(body)["id"], "many-headers")
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
