#!/usr/bin/env python3
"""Issue 13, item 1: the Jobs API over real HTTP (python3-requests and curl) against a running
`jobbridge run`. Every answer the tests receive is validated against docs/openapi.json's schema
for its route, method and status (python3-jsonschema, $refs resolved), so the document cannot
drift from what the server says.

usage: test_http_api.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args]
"""
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest
import uuid

import jsonschema
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jbtest  # noqa: E402

BIN = sys.argv[1]
SRC = sys.argv[2]
BEHAVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handlers", "behave.sh")

with open(os.path.join(SRC, "docs", "openapi.json")) as f:
    DOC = json.load(f)


def exec_type(*args):
    return {"handler": "exec", "command": [BEHAVE, *args], "timeout_s": 120, "max_retries": 0,
            "env_passthrough": ["JB_TEST_STATE"]}


def route_of(path):
    """The document's path template that matches a concrete path, or None."""
    for template in DOC["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return template
    return None


def check_against_doc(method, path, r):
    """Validates one answer against the document: the route, the method and the status must be
    documented, the body must match the schema of its content type."""
    template = route_of(path.split("?")[0])
    ctype = r.headers.get("Content-Type", "").split(";")[0]
    if template is None or method.lower() not in DOC["paths"][template]:
        # Unknown routes and methods: a problem document (404, 405 with Allow).
        assert r.status_code in (404, 405), f"{method} {path}: {r.status_code} is undocumented"
        schema = {"$ref": "#/components/schemas/Problem"}
    else:
        responses = DOC["paths"][template][method.lower()]["responses"]
        assert str(r.status_code) in responses, \
            f"{method} {template}: status {r.status_code} is not in the document ({r.text[:300]})"
        content = responses[str(r.status_code)].get("content", {})
        assert ctype in content, f"{method} {template} {r.status_code}: content type {ctype} " \
                                 f"is not documented (documented: {list(content)})"
        schema = content[ctype]["schema"]
        for h in responses[str(r.status_code)].get("headers", {}):
            assert h in r.headers, f"{method} {template} {r.status_code}: header {h} missing"
    if ctype.endswith("json"):
        root = dict(schema, components=DOC["components"])
        jsonschema.Draft202012Validator(root).validate(r.json())


class HttpApi(unittest.TestCase):
    checked = 0

    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.state = os.path.join(jbtest.STATE_DIR, "http-api-" + uuid.uuid4().hex[:6])
        os.makedirs(cls.state)
        # Workers serve the default queue only: jobs in "parked" stay PENDING for the list tests.
        cls.b = jbtest.Bridge(BIN, SRC, [], {"noop": {"handler": "noop"},
                                             "bad": exec_type("bad"),
                                             "slow": exec_type("sleep", "60")},
                              http__listen="127.0.0.1:0", workers__queues=["default"],
                              workers__threads=2)
        cls.b.start(env={"JB_TEST_STATE": cls.state})
        cls.url = cls.b.http_url()

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def call(self, method, path, **kw):
        r = requests.request(method, self.url + path, timeout=60, **kw)
        check_against_doc(method, path, r)
        HttpApi.checked += 1
        return r

    def post_job(self, body, **kw):
        return self.call("POST", "/v1/jobs", json=body, **kw)

    def wait_status(self, job_id, statuses, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            j = self.call("GET", f"/v1/jobs/{job_id}").json()
            if j["status"] in statuses:
                return j
            time.sleep(0.2)
        self.fail(f"job {job_id} is {j['status']} after {timeout}s, want {statuses}")

    # ---- create ----

    def test_create_get_and_status(self):
        r = self.post_job({"job_type": "noop", "payload": {"amount": 19.99, "n": 1},
                           "queue_name": "parked", "priority": 5, "metadata": {"k": "v"},
                           "max_retries": 7})
        self.assertEqual(r.status_code, 202, r.text)
        job = r.json()
        self.assertEqual(r.headers["Location"], f"/v1/jobs/{job['id']}")
        self.assertEqual((job["status"], job["priority"], job["max_retries"], job["queue_name"]),
                         ("PENDING", 5, 7, "parked"))
        got = self.call("GET", f"/v1/jobs/{job['id']}").json()
        self.assertEqual(got, job, "the 202 answer is the stored job")
        st = self.call("GET", f"/v1/jobs/{job['id']}/status").json()
        self.assertEqual(st["id"], job["id"])
        self.assertEqual(st["status"], "PENDING")
        # The same through curl: the CLI's JSON for the job.
        out = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", f"{self.url}/v1/jobs/{job['id']}"],
                             capture_output=True, text=True, timeout=60, check=True)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "200")
        self.assertEqual(json.loads(body), job)
        cli = subprocess.run([BIN, "jobs", "get", job["id"], "--config", self.b.config],
                             capture_output=True, text=True, timeout=60, check=True)
        shown = json.loads(cli.stdout)
        # The CLI adds the attempt history, which the API serves at /v1/jobs/{id}/attempts.
        attempts = self.call("GET", f"/v1/jobs/{job['id']}/attempts").json()["attempts"]
        self.assertEqual(shown.pop("attempts"), attempts)
        self.assertEqual(shown, job, "the API's job is the CLI's")

    def test_create_with_curl_and_scheduled_at(self):
        out = subprocess.run(
            ["curl", "-sS", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d",
             '{"job_type": "noop", "payload": {}, "scheduled_at": "2999-01-01T00:00:00Z"}',
             f"{self.url}/v1/jobs"], capture_output=True, text=True, timeout=60, check=True)
        body, code = out.stdout.rsplit("\n", 1)
        self.assertEqual(code, "202", body)
        job = json.loads(body)
        self.assertEqual(job["status"], "SCHEDULED")
        self.assertEqual(job["scheduled_at"], "2999-01-01T00:00:00.000000Z")

    def test_bad_requests_name_the_problem(self):
        cases = [
            ('{"job_type": ', 400, "body", "line 1, column"),
            ('[1]', 400, "body", "JSON object"),
            ('{"job_type": "nope", "payload": {}}', 422, "job_type", "not registered"),
            ('{"job_type": "noop", "payload": [1]}', 422, "payload", "JSON object"),
            ('{"job_type": "noop"}', 422, "payload", "required"),
            ('{"job_type": "noop", "payload": {}, "colour": 1}', 422, "colour", "unknown field"),
            ('{"job_type": "noop", "payload": {}, "scheduled_at": "2026-02-30T00:00:00Z"}', 422,
             "scheduled_at", "scheduled_at"),
            ('{"job_type": "noop", "payload": {}, "priority": 1.5}', 422, "priority", "whole"),
            ('{"job_type": "noop", "payload": {}, "created_by": "me"}', 422, "created_by", "UUID"),
        ]
        before = self.b.count()
        for body, status, field, words in cases:
            r = self.call("POST", "/v1/jobs", data=body,
                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status_code, status, (body, r.text))
            self.assertEqual(r.headers["Content-Type"], "application/problem+json")
            self.assertEqual(r.json()["field"], field, body)
            self.assertIn(words, r.json()["detail"], body)
        r = self.call("POST", "/v1/jobs", data='{"job_type": "noop", "payload": {}}',
                      headers={"Content-Type": "text/plain"})
        self.assertEqual(r.status_code, 415)
        self.assertEqual(self.b.count(), before, "nothing created by bad requests")
        self.assertEqual(self.call("GET", "/v1/jobs/not-a-uuid").status_code, 404)
        self.assertEqual(self.call("GET", f"/v1/jobs/{uuid.uuid4()}").status_code, 404)
        self.assertEqual(self.call("GET", f"/v1/jobs/{uuid.uuid4()}/status").status_code, 404)
        self.assertEqual(self.call("GET", "/v1/nothing").status_code, 404)
        r = self.call("DELETE", "/v1/jobs")
        self.assertEqual(r.status_code, 405)
        self.assertIn("POST", r.headers["Allow"])

    def test_idempotency_key(self):
        key = "order-" + uuid.uuid4().hex
        body = {"job_type": "noop", "payload": {"order": 1}, "queue_name": "parked"}
        first = self.post_job(body, headers={"Idempotency-Key": key})
        self.assertEqual(first.status_code, 202)
        again = self.post_job(body, headers={"Idempotency-Key": key})
        self.assertEqual(again.status_code, 200, "a repeat answers with the existing job")
        self.assertEqual(again.json()["id"], first.json()["id"])
        self.assertEqual(again.json()["dedupe_key"], key)
        self.assertEqual(self.b.count(f"dedupe_key = '{key}'"), 1)
        # Concurrent repeats of one key: one job, every answer names it.
        key = "race-" + uuid.uuid4().hex
        ids, codes = [], []

        def post():
            r = self.post_job(body, headers={"Idempotency-Key": key})
            codes.append(r.status_code)
            ids.append(r.json()["id"])
        threads = [threading.Thread(target=post) for _ in range(16)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        self.assertEqual(len(set(ids)), 1, ids)
        self.assertEqual(sorted(codes), [200] * 15 + [202])
        self.assertEqual(self.b.count(f"dedupe_key = '{key}'"), 1)

    def test_concurrent_creates_each_exactly_once(self):
        tag = uuid.uuid4().hex[:8]
        results, errors = [], []

        def worker(t):
            s = requests.Session()
            for i in range(50):
                r = s.post(self.url + "/v1/jobs", timeout=60,
                           json={"job_type": "noop", "payload": {"t": t, "i": i},
                                 "queue_name": "parked", "metadata": {"tag": tag}})
                check_against_doc("POST", "/v1/jobs", r)
                if r.status_code != 202:
                    errors.append(r.text)
                else:
                    results.append(r.json()["id"])
            s.close()
        threads = [threading.Thread(target=worker, args=(t,)) for t in range(32)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 1600)
        self.assertEqual(len(set(results)), 1600)
        self.assertEqual(self.b.count(f"metadata->>'tag' = '{tag}'"), 1600)
        pairs = self.b.count(f"metadata->>'tag' = '{tag}' AND id IN "
                             f"({','.join(repr(i) for i in results)})")
        self.assertEqual(pairs, 1600, "every answered id is a stored job")

    def test_batch_all_or_none(self):
        tag = uuid.uuid4().hex[:8]
        jobs = [{"job_type": "noop", "payload": {"i": i}, "queue_name": "parked",
                 "metadata": {"tag": tag}} for i in range(10)]
        bad = list(jobs)
        bad[3] = dict(jobs[3], job_type="nope")
        r = self.call("POST", "/v1/jobs/batch", json={"jobs": bad})
        self.assertEqual(r.status_code, 422)
        self.assertIn("jobs[3].", r.json()["detail"])
        self.assertEqual(self.b.count(f"metadata->>'tag' = '{tag}'"), 0, "none created")
        r = self.call("POST", "/v1/jobs/batch", json={"jobs": jobs})
        self.assertEqual(r.status_code, 202)
        self.assertEqual((r.json()["created"], len(r.json()["jobs"])), (10, 10))
        self.assertEqual(self.b.count(f"metadata->>'tag' = '{tag}'"), 10)
        big = {"jobs": [{"job_type": "noop", "payload": {}}] * 1001}
        self.assertEqual(self.call("POST", "/v1/jobs/batch", json=big).status_code, 413)
        self.assertEqual(self.call("POST", "/v1/jobs/batch", json=jobs).status_code, 400)
        # A batch of duplicates only: 200, nothing created.
        keyed = [dict(j, dedupe_key=f"{tag}-{i}") for i, j in enumerate(jobs[:3])]
        self.assertEqual(self.call("POST", "/v1/jobs/batch", json={"jobs": keyed}).status_code, 202)
        r = self.call("POST", "/v1/jobs/batch", json={"jobs": keyed})
        self.assertEqual((r.status_code, r.json()["created"], r.json()["duplicates"]), (200, 0, 3))

    # ---- reads ----

    def test_cursor_paging_without_gaps_or_repeats(self):
        jt_queue = "page-" + uuid.uuid4().hex[:6]
        made = []
        for k in range(5):  # several transactions (created_at differs) and many in one
            r = self.call("POST", "/v1/jobs/batch", json={"jobs": [
                {"job_type": "noop", "payload": {"k": k, "i": i}, "queue_name": jt_queue}
                for i in range(50)]})
            made += [j["id"] for j in r.json()["jobs"]]
        seen, cursor, pages = [], None, 0
        while True:
            q = f"/v1/jobs?queue={jt_queue}&limit=40" + (f"&cursor={cursor}" if cursor else "")
            page = self.call("GET", q).json()
            seen += [j["id"] for j in page["jobs"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(len(seen), 250)
        self.assertEqual(sorted(seen), sorted(made), "no gaps, no repeats")
        self.assertEqual(pages, 7)
        first = self.call("GET", f"/v1/jobs?queue={jt_queue}&limit=1").json()["jobs"][0]
        self.assertIn(first["id"], made[200:], "newest first")
        offs = self.call("GET", f"/v1/jobs?queue={jt_queue}&limit=10&offset=5").json()["jobs"]
        self.assertEqual([j["id"] for j in offs], seen[5:15])
        for q, name in [("status=BOGUS", "status"), ("limit=0", "limit"), ("limit=x", "limit"),
                        ("cursor=!!", "cursor"), ("cursor=abc&offset=3", "cursor"),
                        ("offset=-1", "offset")]:
            r = self.call("GET", "/v1/jobs?" + q)
            self.assertEqual((r.status_code, r.json()["field"]), (400, name), q)
        r = self.call("GET", f"/v1/jobs?queue={jt_queue}&status=PENDING&job_type=noop&limit=1000")
        self.assertEqual(len(r.json()["jobs"]), 250)
        self.assertIsNone(r.json()["next_cursor"])

    def test_queues(self):
        q = "stats-" + uuid.uuid4().hex[:6]
        self.call("POST", "/v1/jobs/batch", json={"jobs": [
            {"job_type": "noop", "payload": {}, "queue_name": q}] * 3})
        stats = {s["queue_name"]: s for s in self.call("GET", "/v1/queues").json()}
        self.assertEqual((stats[q]["pending_count"], stats[q]["total_count"]), (3, 3))
        cli = subprocess.run([BIN, "stats", "--config", self.b.config], capture_output=True,
                             text=True, timeout=60, check=True)
        self.assertEqual({s["queue_name"]: s for s in json.loads(cli.stdout)}[q], stats[q])

    # ---- cancel and retry ----

    def test_cancel_waiting_running_finished(self):
        waiting = self.post_job({"job_type": "noop", "payload": {},
                                 "scheduled_at": "2999-01-01T00:00:00Z"}).json()
        r = self.call("POST", f"/v1/jobs/{waiting['id']}/cancel")
        self.assertEqual(r.status_code, 200)
        self.assertEqual((r.json()["status"], r.json()["error_message"]),
                         ("FAILED", "Job cancelled"))
        r = self.call("POST", f"/v1/jobs/{waiting['id']}/cancel")
        self.assertEqual(r.status_code, 409, "a finished job cannot be cancelled")
        done = self.post_job({"job_type": "noop", "payload": {}}).json()
        self.wait_status(done["id"], ["COMPLETED"])
        self.assertEqual(self.call("POST", f"/v1/jobs/{done['id']}/cancel").status_code, 409)
        slow = self.post_job({"job_type": "slow", "payload": {}}).json()
        self.wait_status(slow["id"], ["RUNNING"])
        t0 = time.time()
        r = self.call("POST", f"/v1/jobs/{slow['id']}/cancel")
        self.assertEqual(r.status_code, 202, r.text)
        self.assertLess(time.time() - t0, 10, "202 at once, the client polls")
        self.wait_status(slow["id"], ["FAILED"], timeout=60)
        self.assertEqual(self.call("POST", f"/v1/jobs/{uuid.uuid4()}/cancel").status_code, 404)

    def test_retry(self):
        bad = self.post_job({"job_type": "bad", "payload": {}}).json()
        self.wait_status(bad["id"], ["FAILED", "DEAD_LETTER"])
        r = self.call("POST", f"/v1/jobs/{bad['id']}/retry")
        self.assertEqual((r.status_code, r.json()["status"]), (200, "PENDING"))
        later = self.post_job({"job_type": "noop", "payload": {},
                               "scheduled_at": "2999-01-01T00:00:00Z"}).json()
        r = self.call("POST", f"/v1/jobs/{later['id']}/retry")
        self.assertEqual(r.status_code, 409)
        self.assertIn("SCHEDULED", r.json()["detail"])

    def test_cli_output_formats(self):
        job = self.post_job({"job_type": "noop", "payload": {}, "queue_name": "parked"}).json()
        run = lambda *a: subprocess.run([BIN, *a, "--config", self.b.config], capture_output=True,
                                        text=True, timeout=60, check=True).stdout
        shown = json.loads(run("jobs", "get", job["id"]))
        self.assertEqual(shown.pop("attempts"), [], "never run (/v1/jobs/{id}/attempts)")
        self.assertEqual(shown, job, "JSON when piped")
        self.assertEqual(run("jobs", "get", job["id"]), run("jobs", "get", job["id"], "--output",
                                                            "json"))
        table = [line.split() for line in
                 run("jobs", "get", job["id"], "--output", "table").splitlines()]
        self.assertIn(["id", job["id"]], table)
        self.assertIn(["status", "PENDING"], table)
        rows = run("jobs", "list", "--queue", "parked", "--limit", "1", "--output", "table")
        self.assertTrue(rows.startswith("ID  "), rows)
        self.assertEqual(len(rows.splitlines()), 2)
        self.assertIn("PENDING_COUNT", run("stats", "--output", "table").splitlines()[0])
        bad = subprocess.run([BIN, "stats", "--output", "xml", "--config", self.b.config],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("--output \"xml\"", bad.stderr)

    def test_openapi_is_served(self):
        r = self.call("GET", "/v1/openapi.json")
        self.assertEqual(r.json(), DOC, "the served document is the one in the tree")
        self.assertEqual(r.json()["openapi"], "3.1.0")

    # ---- last: the database goes away and comes back ----

    def test_z_database_outage_503_then_recovery(self):
        job = self.post_job({"job_type": "noop", "payload": {}, "queue_name": "parked"}).json()
        jbtest.servers("jb_pg_stop", jbtest.STATE_DIR)
        try:
            tag = uuid.uuid4().hex[:8]
            r = self.post_job({"job_type": "noop", "payload": {"tag": tag}, "queue_name": "parked"})
            self.assertEqual(r.status_code, 503, r.text)
            self.assertIn("Retry-After", r.headers)
            r = self.call("GET", f"/v1/jobs/{job['id']}")
            self.assertEqual(r.status_code, 503)
            r = self.call("POST", "/v1/jobs/batch", json={"jobs": [
                {"job_type": "noop", "payload": {"tag": tag}, "queue_name": "parked"}] * 5})
            self.assertEqual(r.status_code, 503)
        finally:
            os.environ["JB_PG_FSYNC"] = "off"
            jbtest.servers("jb_pg_start", jbtest.STATE_DIR, os.environ["JB_PG_PORT"])
        self.assertEqual(self.b.count(f"payload->>'tag' = '{tag}'"), 0, "nothing half-created")
        deadline, code = time.time() + 60, None
        while time.time() < deadline and code != 202:
            code = self.post_job({"job_type": "noop", "payload": {"tag": tag},
                                  "queue_name": "parked"}).status_code
            time.sleep(0.5)
        self.assertEqual(code, 202, "creation works again once the database is back")
        self.assertEqual(self.call("GET", f"/v1/jobs/{job['id']}").status_code, 200)
        self.assertEqual(self.b.count(f"payload->>'tag' = '{tag}'"), 1)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
