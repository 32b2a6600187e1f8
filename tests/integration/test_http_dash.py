#!/usr/bin/env python3
"""Issue 17: the /v1 reads the dashboard is built on (whoami, throughput, mappings with their
match counters, job types, the job list's time range and search) and the embedded page, over
real HTTP against a running `jobbridge run` with real RabbitMQ and PostgreSQL. Every answer is
validated against docs/openapi.json as test_http_api.py does.

usage: test_http_dash.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args]
"""
import hashlib
import json
import os
import sys
import time
import unittest
import uuid
from datetime import datetime, timedelta, timezone

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jbtest  # noqa: E402
from test_http_api import check_against_doc  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
OPS, VIEWER = "ops-" + uuid.uuid4().hex, "viewer-" + uuid.uuid4().hex


def digest(t):
    return hashlib.sha256(t.encode()).hexdigest()


def iso(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.b = jbtest.Bridge(
            BIN, SRC,
            [{"event_type": "order.#", "job_type": "audit"},
             {"event_type": "order.created", "job_type": "receipt", "queue": "parked",
              "priority": 3, "max_retries": 1, "payload": "/data"}],
            {"audit": {"handler": "noop"}, "receipt": {"handler": "noop", "timeout_s": 12.5}},
            http__listen="127.0.0.1:0", workers__queues=["default"], workers__threads=2,
            http__tokens=[{"name": "ops", "sha256": digest(OPS), "scopes": ["read", "write"]},
                          {"name": "viewer", "sha256": digest(VIEWER), "scopes": ["read"]}])
        cls.b.start()
        cls.url = cls.b.http_url()
        ev = lambda t, i: (json.dumps({"specversion": "1.0", "type": t, "source": "/shop", "id": f"{t}-{i}",
                                       "data": {"order": i}}).encode(), t, None)
        cls.b.publish([ev("order.created", i) for i in range(4)] + [ev("order.shipped", i) for i in range(3)])
        cls.b.wait_count(4 + 4 + 3, 60)
        deadline = time.time() + 60
        while cls.b.count("queue_name = 'default' AND status <> 'COMPLETED'") and time.time() < deadline:
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def call(self, path, tok=OPS, **kw):
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        r = requests.get(self.url + path, headers=headers, timeout=60, **kw)
        check_against_doc("GET", path, r)
        return r

    def test_whoami(self):
        self.assertEqual(self.call("/v1/whoami").json(), {"name": "ops", "scopes": ["read", "write"]})
        self.assertEqual(self.call("/v1/whoami", VIEWER).json(), {"name": "viewer", "scopes": ["read"]})
        self.assertEqual(self.call("/v1/whoami", "nope").status_code, 401)
        self.assertEqual(self.call("/v1/whoami", None).status_code, 401)

    def test_throughput_counts_the_hour(self):
        r = self.call("/v1/stats/throughput").json()
        created = sum(m["created"] for m in r["minutes"])
        completed = sum(m["completed"] for m in r["minutes"])
        self.assertEqual(created, self.b.count())
        self.assertEqual(completed, self.b.count("status = 'COMPLETED'"))
        self.assertEqual(sum(m["failed"] + m["dead_letter"] for m in r["minutes"]), 0)
        start = parse(r["from"])
        self.assertEqual((start.second, start.microsecond), (0, 0))
        self.assertLessEqual(parse(r["to"]) - start, timedelta(hours=1))
        for m in r["minutes"]:
            self.assertGreaterEqual(parse(m["at"]), start)
        self.assertEqual([m["at"] for m in r["minutes"]], sorted(m["at"] for m in r["minutes"]))

    def test_mappings_and_their_matches(self):
        ms = self.call("/v1/mappings").json()["mappings"]
        self.assertEqual([(m["event_type"], m["job_type"], m["matched"]) for m in ms],
                         [("order.#", "audit", 7), ("order.created", "receipt", 4)])
        self.assertEqual((ms[1]["queue"], ms[1]["priority"], ms[1]["max_retries"], ms[1]["payload"]),
                         ("parked", 3, 1, "/data"))
        self.assertIsNone(ms[0]["max_retries"])
        types = {t["name"]: t for t in self.call("/v1/job_types").json()["job_types"]}
        self.assertEqual(set(types), {"audit", "receipt"})
        self.assertEqual((types["receipt"]["handler"], types["receipt"]["timeout_s"]), ("noop", 12.5))

    def test_list_by_event_id_job_id_and_dedupe_key(self):
        jobs = self.call("/v1/jobs?event_id=order.created-2").json()["jobs"]
        self.assertEqual(sorted(j["job_type"] for j in jobs), ["audit", "receipt"])
        self.assertEqual({j["metadata"]["event_id"] for j in jobs}, {"order.created-2"})
        one = jobs[0]
        self.assertEqual([j["id"] for j in self.call(f"/v1/jobs?id={one['id']}").json()["jobs"]], [one["id"]])
        got = self.call("/v1/jobs", params={"dedupe_key": one["dedupe_key"]}).json()["jobs"]
        self.assertEqual([j["id"] for j in got], [one["id"]])
        self.assertEqual(self.call("/v1/jobs?event_id=no-such-event").json()["jobs"], [])
        both = self.call(f"/v1/jobs?event_id=order.created-2&id={one['id']}&status={one['status']}").json()
        self.assertEqual([j["id"] for j in both["jobs"]], [one["id"]])

    def test_list_by_time_range_with_paging(self):
        all_jobs = self.call("/v1/jobs?limit=1000").json()["jobs"]
        times = sorted({j["created_at"] for j in all_jobs})
        self.assertGreaterEqual(len(times), 1)
        t = times[len(times) // 2]
        after = self.call("/v1/jobs", params={"created_after": t, "limit": 1000}).json()["jobs"]
        before = self.call("/v1/jobs", params={"created_before": t, "limit": 1000}).json()["jobs"]
        self.assertEqual(sorted(j["id"] for j in after), sorted(j["id"] for j in all_jobs if j["created_at"] >= t))
        self.assertEqual(sorted(j["id"] for j in before), sorted(j["id"] for j in all_jobs if j["created_at"] < t))
        self.assertEqual(len(after) + len(before), len(all_jobs))
        # Keyset paging keeps the range: pages of 2 inside [created_after, created_before).
        lo, hi = iso(parse(times[0])), iso(parse(times[-1]) + timedelta(microseconds=1))
        seen, cursor = [], None
        while True:
            params = {"created_after": lo, "created_before": hi, "limit": 2, "cursor": cursor}
            page = self.call("/v1/jobs", params=params).json()
            seen += [j["id"] for j in page["jobs"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        self.assertEqual(sorted(seen), sorted(j["id"] for j in all_jobs))
        future = iso(datetime.now(timezone.utc) + timedelta(days=1))
        self.assertEqual(self.call("/v1/jobs", params={"created_after": future}).json()["jobs"], [])

    def test_bad_narrowing_names_the_parameter(self):
        for q, field in (("created_after=yesterday", "created_after"), ("created_before=2026-13-01T00:00:00Z", "created_before"),
                         ("id=not-a-uuid", "id")):
            r = self.call(f"/v1/jobs?{q}")
            self.assertEqual(r.status_code, 400, q)
            self.assertEqual(r.json()["field"], field)

    def test_the_page_and_its_assets(self):
        page = self.call("/", None)
        self.assertEqual(page.status_code, 200)
        self.assertIn('<script type="module" src="/ui/app.js">', page.text)
        self.assertIn("default-src 'none'", page.headers["Content-Security-Policy"])
        js = self.call("/ui/app.js", None)
        self.assertEqual((js.status_code, js.headers["Content-Type"]), (200, "text/javascript; charset=utf-8"))
        with open(os.path.join(SRC, "ui", "app.js"), "rb") as f:
            self.assertEqual(js.content, f.read(), "the embedded file is the one in ui/")
        self.assertEqual(self.call("/ui/app.css", None).headers["Content-Type"], "text/css; charset=utf-8")
        self.assertEqual(self.call("/ui/nope.js", None).status_code, 404)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
