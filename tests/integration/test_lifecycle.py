"""Lifecycle events with real servers, read by a pika consumer: job.created (events.lifecycle,
every type) and job.started (job_types.a.events only), through the outbox with the outcome
events' routing-key scheme and CloudEvents shape, in order per job; none when not asked for;
jobs created through the CLI, inserted waiting and claimed, and ingested from AMQP events and
handed straight to idle workers (stored RUNNING) alike."""
import json
import os
import sys
import time
import unittest
from collections import defaultdict

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]


class Lifecycle(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []

    def tearDown(self):
        for b in self.bridges:
            b.close()

    def bridge(self, **over):
        b = jbtest.Bridge(BINARY, SOURCE,
                          [{"event_type": "x.a", "job_type": "a"},
                           {"event_type": "x.b", "job_type": "b"}],
                          {"a": {"handler": "noop", "events": ["started"]},
                           "b": {"handler": "noop"}}, **over)
        self.bridges.append(b)
        return b

    def by_job(self, events):
        got = defaultdict(list)
        for rk, props, body in events:
            got[body["subject"]].append((rk, props, body))
        return got

    def check_event(self, rk, props, body, kind, job):
        self.assertEqual(rk, f"job.{kind}.{job['job_type']}")
        self.assertEqual(props.content_type, "application/cloudevents+json")
        self.assertEqual(props.delivery_mode, 2)
        self.assertEqual(props.message_id, body["id"])
        self.assertEqual(body["specversion"], "1.0")
        self.assertEqual(body["type"], f"job.{kind}")
        self.assertTrue(body["source"].startswith("jobbridge/"))
        self.assertEqual(body["subject"], job["id"])
        d = body["data"]
        for k in ("id", "job_type", "queue_name", "priority", "max_retries", "metadata"):
            self.assertEqual(d[k], job[k], k)
        self.assertEqual(props.correlation_id, job["metadata"].get("event_id"))
        want_status = {"created": ("PENDING", "RUNNING"), "started": ("RUNNING",),
                       "completed": ("COMPLETED",)}[kind]
        self.assertIn(d["status"], want_status)
        if kind == "started":
            self.assertIsNotNone(d["started_at"])
            self.assertIsNone(d["completed_at"])
        if kind == "created":
            self.assertIsNone(d["completed_at"])

    def check_jobs(self, b, n):
        events = b.events(n, timeout=120)
        self.assertEqual(len(events), n)
        time.sleep(1)
        self.assertEqual(b.events(1, timeout=1), [], "more events than asked for")
        jobs = {j["id"]: j for j in b.jobs()}
        per = self.by_job(events)
        self.assertEqual(set(per), set(jobs))
        for jid, evs in per.items():
            job = jobs[jid]
            kinds = [body["type"].split(".")[1] for _, _, body in evs]
            want = ["created", "started", "completed"] if job["job_type"] == "a" \
                else ["created", "completed"]
            self.assertEqual(kinds, want, jid)  # in order, each once
            for (rk, props, body), kind in zip(evs, kinds):
                self.check_event(rk, props, body, kind, job)
            self.assertEqual(len({body["id"] for _, _, body in evs}), len(evs))
        return per

    def test_cli_and_claimed_jobs(self):
        b = self.bridge(events={"lifecycle": ["created"]}, workers={"poll_ms": 100})
        b.migrate()
        made = [b.create_job(t) for t in ("a", "a", "b")]
        b.start(wait_consuming=False)
        b.wait_count(3, 60, "status = 'COMPLETED'")
        per = self.check_jobs(b, 3 * 2 + 2)  # a: 3 events each, b: 2
        self.assertEqual(set(per), {j["id"] for j in made})
        self.assertEqual(b.stop(), 0)

    def test_ingested_jobs_handed_to_workers(self):
        b = self.bridge(events={"lifecycle": ["created"]})
        b.start()
        n = 40
        b.publish([(json.dumps({"event_type": f"x.{'ab'[i % 2]}", "id": f"e-{i}"}),
                    f"x.{'ab'[i % 2]}", None) for i in range(n)])
        b.wait_count(n, 60, "status = 'COMPLETED'")
        per = self.check_jobs(b, n // 2 * 3 + n // 2 * 2)
        # Idle workers took jobs straight from ingest: those were created RUNNING, and their
        # job.started came from the insert, not from a claim.
        handed = [evs for evs in per.values() if evs[0][2]["data"]["status"] == "RUNNING"]
        self.assertGreater(len(handed), 0)
        self.assertEqual(b.stop(), 0)

    def test_off_by_default(self):
        b = jbtest.Bridge(BINARY, SOURCE, [], {"a": {"handler": "noop"}},
                          workers={"poll_ms": 100})
        self.bridges.append(b)
        b.migrate()
        b.create_job("a")
        b.start(wait_consuming=False)
        b.wait_count(1, 60, "status = 'COMPLETED'")
        events = b.events(2, timeout=5)
        self.assertEqual([rk for rk, _, _ in events], ["job.completed.a"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
