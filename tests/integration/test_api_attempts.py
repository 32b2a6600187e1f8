#!/usr/bin/env python3
"""Issue 14 item 3 through the Jobs API: GET /v1/jobs/{id}/attempts against a running
`jobbridge run`, with python3-requests and curl. A job whose exec handler fails twice and then
succeeds shows three attempts, field by field, the same as `jobbridge jobs get`; a job never run
has none; an unknown or malformed id is 404; the route needs a token with the read scope (401
without one, 403 with only write). Every answer is validated against docs/openapi.json with the
Jobs API test's check (python3-jsonschema).

usage: test_api_attempts.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from datetime import datetime

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jbtest  # noqa: E402
from test_http_api import check_against_doc  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

# Fails (exit 1, a retriable failure, with a message on stderr) on its first two runs.
FLAKY = r'''
n=$(cat "$STATE/$JOBBRIDGE_JOB_ID" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$STATE/$JOBBRIDGE_JOB_ID"
if [ $n -lt 3 ]; then echo "boom $n" >&2; exit 1; fi
echo '{"ok": true}'
'''


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class ApiAttempts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.state = tempfile.TemporaryDirectory()
        cls.tokens = {"reader": "rd-" + os.urandom(16).hex(), "writer": "wr-" + os.urandom(16).hex()}
        digest = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in cls.tokens.items()}
        # Workers serve the default queue only: a job in "parked" is never run.
        cls.b = jbtest.Bridge(
            BIN, SRC, [],
            {"flaky": {"handler": "exec", "command": ["/bin/sh", "-c", FLAKY], "max_retries": 5,
                       "env": {"STATE": cls.state.name},
                       "retry": {"base_s": 0.2, "max_s": 0.2, "jitter": 0}},
             "noop": {"handler": "noop"}},
            http__listen="127.0.0.1:0", workers__queues=["default"], workers__poll_ms=100,
            http__tokens=[
                {"name": "reader", "sha256": digest["reader"], "scopes": ["read"]},
                {"name": "writer", "sha256": digest["writer"], "scopes": ["write"]}])
        cls.b.migrate()
        cls.b.start()
        cls.url = cls.b.http_url()

    @classmethod
    def tearDownClass(cls):
        cls.b.close()
        cls.state.cleanup()

    def call(self, method, path, token="reader", **kw):
        headers = {"Authorization": "Bearer " + self.tokens[token]} if token else {}
        r = requests.request(method, self.url + path, headers=headers, timeout=60, **kw)
        check_against_doc(method, path, r)
        return r

    def create(self, job_type, queue="default"):
        r = self.call("POST", "/v1/jobs", token="writer",
                      json={"job_type": job_type, "payload": {}, "queue_name": queue})
        self.assertEqual(r.status_code, 202, r.text)
        return r.json()["id"]

    def test_three_attempts_as_the_cli_shows_them(self):
        job_id = self.create("flaky")
        deadline = time.time() + 60
        while self.call("GET", f"/v1/jobs/{job_id}").json()["status"] != "COMPLETED":
            self.assertLess(time.time(), deadline, "the flaky job did not complete in 60 s")
            time.sleep(0.2)
        r = self.call("GET", f"/v1/jobs/{job_id}/attempts")
        self.assertEqual(r.status_code, 200, r.text)
        doc = r.json()
        self.assertEqual((doc["id"], doc["status"]), (job_id, "COMPLETED"))
        at = doc["attempts"]
        self.assertEqual([a["attempt"] for a in at], [1, 2, 3])
        self.assertEqual([a["outcome"] for a in at], ["RETRYING", "RETRYING", "COMPLETED"])
        self.assertIn("boom 1", at[0]["error"])
        self.assertIn("boom 2", at[1]["error"])
        self.assertIsNone(at[2]["error"])
        for a in at:
            self.assertTrue(a["worker"], a)
            self.assertLessEqual(ts(a["started_at"]), ts(a["finished_at"]))
            self.assertGreaterEqual(a["duration_ms"], 0)
        self.assertLessEqual(ts(at[0]["finished_at"]), ts(at[1]["started_at"]))
        # The CLI's attempts are the API's.
        cli = subprocess.run([BIN, "jobs", "get", job_id, "--config", self.b.config],
                             capture_output=True, text=True, timeout=60, check=True)
        self.assertEqual(json.loads(cli.stdout)["attempts"], at)
        # And through curl.
        out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", "-H",
                              "Authorization: Bearer " + self.tokens["reader"],
                              f"{self.url}/v1/jobs/{job_id}/attempts"],
                             capture_output=True, text=True, timeout=60, check=True)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual((code, json.loads(body)), ("200", doc))

    def test_a_job_never_run_has_no_attempts(self):
        job_id = self.create("noop", queue="parked")
        r = self.call("GET", f"/v1/jobs/{job_id}/attempts")
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual(r.json(), {"id": job_id, "status": "PENDING", "attempts": []})

    def test_unknown_and_malformed_ids_are_404(self):
        for bad in (str(uuid.uuid4()), "not-a-uuid"):
            r = self.call("GET", f"/v1/jobs/{bad}/attempts")
            self.assertEqual(r.status_code, 404, r.text)
            self.assertEqual(r.headers["Content-Type"], "application/problem+json")
            self.assertEqual(r.json()["field"], "id")
            self.assertIn(bad, r.json()["detail"])

    def test_the_read_scope_is_needed(self):
        job_id = str(uuid.uuid4())
        self.assertEqual(self.call("GET", f"/v1/jobs/{job_id}/attempts", token=None).status_code,
                         401)
        self.assertEqual(self.call("GET", f"/v1/jobs/{job_id}/attempts",
                                   token="writer").status_code, 403)
        r = self.call("POST", f"/v1/jobs/{job_id}/attempts")
        self.assertEqual(r.status_code, 405, r.text)
        self.assertIn("GET", r.headers["Allow"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
