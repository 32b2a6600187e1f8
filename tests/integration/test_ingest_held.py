#!/usr/bin/env python3
"""Held dead letters never hold back good events (review of issue 11, finding 3), against the
real RabbitMQ and PostgreSQL of tests/run.sh: while the dead-letter path fails (nothing bound to
the dead-letter exchange, so every dead letter comes back unroutable), bad events stay unacked
with their reasons, and good events published after them, even with more held events than
ingest.batch_max at the front, become jobs promptly, not after the dead-letter backoff (up to
30 s) or once the path is back. When the path is restored, every held event arrives with its
x-jobbridge-error reason.

usage: test_ingest_held.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args]
"""
import json
import os
import sys
import time
import unittest

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

MAPPINGS = [{"event_type": "thing.#", "job_type": "thing", "queue": "things"}]
JOB_TYPES = {"thing": {"handler": "noop"}}


def good(n):
    return json.dumps({"event_type": "thing.made", "id": f"ev-{n}", "payload": {"n": n}}), \
        "thing.made", None


def unmapped(tag):
    return json.dumps({"event_type": "nobody.wants", "id": tag}), "nobody.wants", None


class HeldDeadLetters(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.b = None

    def tearDown(self):
        if self.b:
            self.b.close()

    def test_held_dead_letters_do_not_hold_back_good_events(self):
        b = self.b = jbtest.Bridge(BIN, SRC, MAPPINGS, JOB_TYPES, ingest__consumers=1,
                                   ingest__batch_max=2)
        b.start()
        conn = pika.BlockingConnection(jbtest.pika_params())
        ch = conn.channel()
        ch.queue_delete(b.dlx)
        ch.queue_delete(b.dlx + ".watch")
        conn.close()
        # More bad events than batch_max, at the front; then let the dead-letter backoff grow
        # past a few seconds.
        b.publish([unmapped(f"bad-{i}") for i in range(3)])
        b.wait_log("cannot dead-letter; holding the events unacked", 30, count=3)
        # Good events after them, in two waves: each becomes a job well within the backoff.
        b.publish([good(n) for n in range(1, 6)])
        b.wait_count(5, 8)
        b.publish([good(n) for n in range(6, 9)])
        b.wait_count(8, 8)
        self.assertEqual(sorted(j["payload"]["n"] for j in b.jobs()), list(range(1, 9)))
        # The dead-letter path back: the held events arrive, each with its reason.
        conn = pika.BlockingConnection(jbtest.pika_params())
        ch = conn.channel()
        ch.queue_declare(b.dlx + ".watch", durable=True)
        ch.queue_bind(b.dlx + ".watch", b.dlx, "#")
        conn.close()
        dead = b.dead_letters(3, timeout=90)
        self.assertEqual(len(dead), 3, b.logs()[-3000:])
        self.assertEqual(sorted(json.loads(d[2])["id"] for d in dead), ["bad-0", "bad-1", "bad-2"])
        for d in dead:
            self.assertIn("no mapping", (d[1].headers or {}).get("x-jobbridge-error", ""))
        time.sleep(1)
        self.assertEqual(b.queue_depth(), 0, "every delivery is acked in the end")
        self.assertEqual(b.count(), 8, "no job twice")
        logs = b.logs()
        for needle in ("closed the channel", "unknown delivery tag", "PRECONDITION_FAILED"):
            self.assertNotIn(needle, logs)
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
