#!/usr/bin/env python3
"""Issue 16, item 3: POST /v1/jobs/{id}/progress over real HTTP (python3-requests and curl)
against a running `jobbridge run`, every answer validated against docs/openapi.json (the
validator of test_http_api.py). A job's progress token is the hex HMAC-SHA256 of its id under
http.progress_key, computed here with Python's own hmac module, as a service that was given
the secret could not (it gets the token with the job); the test knows the secret it configured.

usage: test_http_progress.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args]
"""
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jbtest  # noqa: E402
from test_http_api import check_against_doc, exec_type  # noqa: E402

BIN = sys.argv[1]
SRC = sys.argv[2]
SECRET = "progress-secret-" + uuid.uuid4().hex
HEADER = "Jobbridge-Progress-Token"


def token(job_id, secret=SECRET):
    return hmac.new(secret.encode(), job_id.encode(), hashlib.sha256).hexdigest()


class HttpProgress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.state = os.path.join(jbtest.STATE_DIR, "http-progress-" + uuid.uuid4().hex[:6])
        os.makedirs(cls.state)
        slow = exec_type("sleep", "120")
        cls.b = jbtest.Bridge(BIN, SRC, [], {"noop": {"handler": "noop"},
                                             "slow": dict(slow, progress_events=True),
                                             "quiet": slow},
                              http__listen="127.0.0.1:0", http__progress_key=SECRET,
                              workers__queues=["default"], workers__threads=4)
        cls.b.start(env={"JB_TEST_STATE": cls.state})
        cls.url = cls.b.http_url()

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def call(self, method, path, **kw):
        r = requests.request(method, self.url + path, timeout=60, **kw)
        check_against_doc(method, path, r)
        return r

    def progress(self, job_id, body, tok=None, **kw):
        headers = kw.pop("headers", {})
        headers[HEADER] = token(job_id) if tok is None else tok
        return self.call("POST", f"/v1/jobs/{job_id}/progress", json=body, headers=headers, **kw)

    def running_job(self, job_type="slow"):
        r = self.call("POST", "/v1/jobs", json={"job_type": job_type, "payload": {}})
        self.assertEqual(r.status_code, 202, r.text)
        job_id = r.json()["id"]
        # Each test's job ends with it, so the workers stay free for the next test's.
        self.addCleanup(self.call, "POST", f"/v1/jobs/{job_id}/cancel")
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.call("GET", f"/v1/jobs/{job_id}/status").json()["status"] == "RUNNING":
                return job_id
            time.sleep(0.1)
        self.fail(f"job {job_id} did not start")

    def problem(self, r, status, field):
        self.assertEqual(r.status_code, status, r.text)
        self.assertEqual(r.json()["field"], field, r.text)
        return r.json()["detail"]

    seen = []  # every event drained so far: the output watch queue is shared by the tests

    def progress_events(self, job_id, want, timeout=30):
        """The job snapshots of job_id's job.progress events (CloudEvents), once `want` of them arrived (or the timeout)."""
        deadline = time.time() + timeout
        while True:
            got = [e["data"] for rk, e in HttpProgress.seen
                   if rk.startswith("job.progress.") and e["data"]["id"] == job_id]
            if len(got) >= want or time.time() >= deadline:
                return got
            HttpProgress.seen += [(rk, e) for rk, _, e in self.b.events(100, timeout=1)]

    def test_a_running_job_takes_its_progress_and_announces_it(self):
        job_id = self.running_job("slow")
        r = self.progress(job_id, {"progress": 30, "message": "loading rows ✓"})
        self.assertEqual(r.status_code, 200, r.text)
        self.assertEqual((r.json()["progress"], r.json()["progress_message"]),
                         (30, "loading rows ✓"))
        view = self.call("GET", f"/v1/jobs/{job_id}/status").json()
        self.assertEqual((view["status"], view["progress"], view["progress_message"]),
                         ("RUNNING", 30, "loading rows ✓"))
        # curl, as a service in any language would send it; message null clears the message.
        out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
                              "-H", "Content-Type: application/json", "-H",
                              f"{HEADER}: {token(job_id)}", "-d", '{"progress": 75}',
                              f"{self.url}/v1/jobs/{job_id}/progress"],
                             capture_output=True, text=True, timeout=60)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200", out.stdout + out.stderr)
        self.assertEqual((json.loads(body)["progress"], json.loads(body)["progress_message"]),
                         (75, None))
        self.assertEqual(self.b.count(f"id = '{job_id}' AND progress = 75 AND "
                                      f"progress_message IS NULL AND status = 'RUNNING'"), 1)
        events = self.progress_events(job_id, 2)
        self.assertEqual([(e["progress"], e["progress_message"]) for e in events],
                         [(30, "loading rows ✓"), (75, None)], HttpProgress.seen)

    def test_no_event_without_progress_events(self):
        job_id = self.running_job("quiet")
        self.assertEqual(self.progress(job_id, {"progress": 10}).status_code, 200)
        self.assertEqual(self.b.count(f"id = '{job_id}' AND progress = 10"), 1)
        self.assertEqual(self.progress_events(job_id, 1, timeout=4), [])

    def test_a_wrong_token_is_401(self):
        job_id = self.running_job("quiet")
        other = str(uuid.uuid4())
        for bad in (token(other), token(job_id, "another-secret-of-some-length"), "x", "",
                    token(job_id).upper()):
            detail = self.problem(self.progress(job_id, {"progress": 5}, tok=bad), 401, HEADER)
            self.assertIn(job_id, detail)
        self.assertEqual(self.b.count(f"id = '{job_id}' AND progress = 0"), 1)

    def test_unknown_job_is_404(self):
        missing = str(uuid.uuid4())
        self.assertIn(missing, self.problem(self.progress(missing, {"progress": 5}), 404, "id"))
        self.problem(self.progress("not-a-uuid", {"progress": 5}), 404, "id")

    def test_a_job_not_running_is_409(self):
        r = self.call("POST", "/v1/jobs", json={"job_type": "slow", "queue_name": "parked",
                                                "payload": {}})
        parked = r.json()["id"]
        self.assertIn("PENDING", self.problem(self.progress(parked, {"progress": 5}), 409,
                                              "status"))
        done = self.call("POST", "/v1/jobs", json={"job_type": "noop", "payload": {}}).json()["id"]
        self.b.wait_count(1, 60, f"id = '{done}' AND status = 'COMPLETED'")
        self.assertIn("COMPLETED", self.problem(self.progress(done, {"progress": 5}), 409,
                                                "status"))
        self.assertEqual(self.b.count(f"id = '{done}' AND progress = 100"), 1)

    def test_bad_bodies_name_the_field(self):
        job_id = self.running_job("quiet")
        url = f"/v1/jobs/{job_id}/progress"
        h = {HEADER: token(job_id), "Content-Type": "application/json"}
        self.problem(self.call("POST", url, data="{progress: 5", headers=h), 400, "body")
        self.problem(self.call("POST", url, data="[5]", headers=h), 422, "body")
        for body, field in (({"progress": 101}, "progress"), ({"progress": -1}, "progress"),
                            ({"progress": "50"}, "progress"), ({"progress": 5.5}, "progress"),
                            ({"message": "no number"}, "progress"),
                            ({"progress": 5, "message": 7}, "message"),
                            ({"progress": 5, "message": "x" * 501}, "message"),
                            ({"progress": 5, "message": "bell\u0007"}, "message"),
                            ({"progress": 5, "percent": 5}, "percent")):
            self.problem(self.progress(job_id, body), 422, field)
        self.problem(self.call("POST", url, data="progress=5",
                               headers={HEADER: token(job_id),
                                        "Content-Type": "application/x-www-form-urlencoded"}),
                     415, "Content-Type")
        self.assertEqual(self.b.count(f"id = '{job_id}' AND progress = 0"), 1)

    def test_without_a_progress_token_the_bearer_check_applies(self):
        # No http.tokens in this config: the server's bearer check lets every caller through
        # (src/http/auth.c), so the write scope it grants is enough.
        job_id = self.running_job("quiet")
        r = self.call("POST", f"/v1/jobs/{job_id}/progress", json={"progress": 60})
        self.assertEqual(r.status_code, 200, r.text)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
