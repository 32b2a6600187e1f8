"""Attempt history through the real CLI: a job whose exec handler fails twice and then
succeeds has three attempts, each checked field by field (number, worker, times, outcome, error,
duration), and jobs get shows them in order."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from datetime import datetime

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]

# Fails (exit 1, a retriable failure, with a message on stderr) on its first two runs.
FLAKY = r'''
n=$(cat "$STATE/$JOBBRIDGE_JOB_ID" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$STATE/$JOBBRIDGE_JOB_ID"
if [ $n -lt 3 ]; then echo "boom $n" >&2; exit 1; fi
echo '{"ok": true}'
'''


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class AttemptHistory(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.state = tempfile.TemporaryDirectory()
        self.bridge = jbtest.Bridge(
            BINARY, SOURCE, [],
            {"flaky": {"handler": "exec", "command": ["/bin/sh", "-c", FLAKY], "max_retries": 5,
                       "env": {"STATE": self.state.name}, "retry": {"base_s": 0.2, "max_s": 0.2,
                                                                    "jitter": 0}},
             "ok": {"handler": "noop"}},
            workers__poll_ms=100)
        self.bridge.migrate()

    def tearDown(self):
        self.bridge.close()
        self.state.cleanup()

    def get(self, job_id):
        out = subprocess.run([BINARY, "jobs", "get", job_id, "--config", self.bridge.config],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def test_three_attempts(self):
        job = self.bridge.create_job("flaky")
        self.assertEqual(self.get(job["id"])["attempts"], [])  # created, never run
        self.bridge.start(wait_consuming=False)
        self.bridge.wait_count(1, 60, f"id = '{job['id']}' AND status = 'COMPLETED'")
        got = self.get(job["id"])
        self.assertEqual(got["status"], "COMPLETED")
        self.assertEqual(got["retry_count"], 2)
        att = got["attempts"]
        self.assertEqual([a["attempt"] for a in att], [1, 2, 3])
        self.assertEqual([a["outcome"] for a in att], ["RETRYING", "RETRYING", "COMPLETED"])
        self.assertIn("boom 1", att[0]["error"])
        self.assertIn("boom 2", att[1]["error"])
        self.assertIsNone(att[2]["error"])
        created = ts(got["created_at"])
        prev_end = created
        for a in att:
            self.assertTrue(a["worker"], a)  # the locked_by that held it
            start, end = ts(a["started_at"]), ts(a["finished_at"])
            self.assertGreaterEqual(start, prev_end)  # one after the other, in order
            self.assertGreaterEqual(end, start)
            self.assertAlmostEqual(a["duration_ms"], (end - start).total_seconds() * 1000,
                                   delta=0.01)
            prev_end = end
        self.assertEqual(ts(att[2]["finished_at"]), ts(got["completed_at"]))
        # The rows themselves, as stored.
        rows = jbtest.psql(f"SELECT attempt, outcome FROM {self.bridge.schema}.job_attempts "
                           f"WHERE job_id = '{job['id']}' ORDER BY attempt")
        self.assertEqual(rows.split(), ["1|RETRYING", "2|RETRYING", "3|COMPLETED"])

    def test_success_is_one_attempt(self):
        self.bridge.start(wait_consuming=False)
        job = self.bridge.create_job("ok")
        self.bridge.wait_count(1, 60, f"id = '{job['id']}' AND status = 'COMPLETED'")
        att = self.get(job["id"])["attempts"]
        self.assertEqual(len(att), 1)
        self.assertEqual((att[0]["attempt"], att[0]["outcome"], att[0]["error"]),
                         (1, "COMPLETED", None))

    def test_reaped_attempt(self):
        """A job whose worker was lost: the reaper's decision is an attempt too, under the
        worker that held it."""
        s = self.bridge.schema
        jid = jbtest.psql(
            f"INSERT INTO {s}.jobs (id, job_type, payload, status, started_at, locked_by, "
            f"locked_until) VALUES (gen_random_uuid(), 'ok', '{{}}', 'RUNNING', "
            f"now() - interval '1 minute', 'lost-worker', now() - interval '1 second') "
            f"RETURNING id").split()[0]
        self.bridge.start(wait_consuming=False)
        self.bridge.wait_count(1, 120, f"id = '{jid}' AND status = 'COMPLETED'")
        att = self.get(jid)["attempts"]
        self.assertEqual([(a["attempt"], a["outcome"]) for a in att],
                         [(1, "RETRYING"), (2, "COMPLETED")])
        self.assertEqual(att[0]["worker"], "lost-worker")
        self.assertIn("lease expired", att[0]["error"])
        self.assertNotEqual(att[1]["worker"], "lost-worker")

    def test_unknown_job(self):
        out = subprocess.run([BINARY, "jobs", "get", "00000000-0000-4000-8000-000000000000",
                              "--config", self.bridge.config], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 3, out.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
