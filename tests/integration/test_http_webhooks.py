#!/usr/bin/env python3
"""Issue 13 item 2: the WebhookTrigger (POST /v1/webhooks/{name}) against a running `jobbridge
run` with the real PostgreSQL and RabbitMQ, driven by python3-requests. Every signature is
computed here with Python's hmac/hashlib, never by jobbridge's code.

usage: test_http_webhooks.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import concurrent.futures
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import pika
import requests

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

GH_SECRET = "gh-secret-" + uuid.uuid4().hex
STRIPE_SECRET = "whsec_" + uuid.uuid4().hex
PARTNER_SECRET = "partner-" + uuid.uuid4().hex
WRITE_TOKEN, READ_TOKEN = "tok-w-" + uuid.uuid4().hex, "tok-r-" + uuid.uuid4().hex

MAPPINGS = [
    {"event_type": "order.created", "job_type": "receipt", "queue": "email"},
    {"event_type": "order.#", "job_type": "audit", "queue": "audit"},
    {"event_type": "invoice.paid", "job_type": "billing", "queue": "money"},
    {"event_type": "push", "job_type": "audit", "queue": "audit"},
]
JOB_TYPES = {n: {"handler": "noop"} for n in ("receipt", "audit", "billing", "email.send")}
WEBHOOKS = {
    "shop": {"mode": "event", "signature": "github", "secret": GH_SECRET},
    "github": {"mode": "event", "signature": "github", "secret": GH_SECRET,
               "event_type_header": "X-GitHub-Event", "dedupe": "header:X-GitHub-Delivery"},
    "pay": {"mode": "event", "signature": "stripe", "secret_env": "JB_TEST_WHSEC",
            "tolerance_s": 300},
    "partner": {"mode": "event", "signature": "hmac", "secret": PARTNER_SECRET,
                "header": "X-Partner-Sig", "prefix": "v1=", "dedupe": "/delivery/id"},
    "direct": {"mode": "job", "signature": "token", "allowed_job_types": ["email.send"]},
    "signed-jobs": {"mode": "job", "signature": "github", "secret": GH_SECRET,
                    "allowed_job_types": ["email.send"]},
}


def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def tokens_supported():
    """Whether this build knows http.tokens (the bearer tokens of issue 13 item 3)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"http": {"tokens": [{"name": "x", "sha256": "0" * 64, "scopes": ["read"]}]}}, f)
    out = subprocess.run([BIN, "check-config", "--config", f.name], capture_output=True,
                         timeout=60)
    os.unlink(f.name)
    return out.returncode == 0


TOKENS = tokens_supported()


def gh_sig(body, secret=GH_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_sig(body, t=None, secret=STRIPE_SECRET):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class Webhooks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        http = {"listen": "127.0.0.1:0", "webhooks": WEBHOOKS}
        if TOKENS:
            http["tokens"] = [
                {"name": "ci", "sha256": sha256_hex(WRITE_TOKEN), "scopes": ["read", "write"]},
                {"name": "ro", "sha256": sha256_hex(READ_TOKEN), "scopes": ["read"]}]
        cls.b = jbtest.Bridge(BIN, SRC, MAPPINGS, JOB_TYPES, http=http)
        cls.b.start(env={"JB_TEST_WHSEC": STRIPE_SECRET})
        cls.url = cls.b.http_url() + "/v1/webhooks/"
        cls.http = requests.Session()

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def post(self, name, body, headers=None):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return self.http.post(self.url + name, data=body, headers=h, timeout=60)

    def post_gh(self, body, headers=None, name="shop"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return self.post(name, body, dict({"X-Hub-Signature-256": gh_sig(body)}, **(headers or {})))

    def problem(self, r, status, *words):
        self.assertEqual(r.status_code, status, r.text)
        self.assertEqual(r.headers["Content-Type"], "application/problem+json")
        detail = r.json()["detail"]
        for w in words:
            self.assertIn(w, detail)
        return r.json()

    def created(self, r, n):
        self.assertEqual(r.status_code, 202, r.text)
        jobs = r.json()["jobs"]
        self.assertEqual(len(jobs), n, r.text)
        self.assertTrue(all(j["outcome"] == "created" for j in jobs), r.text)
        return sorted(j["id"] for j in jobs)

    def duplicates(self, r, ids):
        self.assertEqual(r.status_code, 200, r.text)
        jobs = r.json()["jobs"]
        self.assertTrue(all(j["outcome"] == "duplicate" for j in jobs), r.text)
        self.assertEqual(sorted(j["id"] for j in jobs), ids)

    # --- authentication ---

    def test_github_signature_good_and_repeat_is_a_duplicate(self):
        ev = {"event_type": "order.created", "id": "gh-1", "payload": {"order": 1}}
        ids = self.created(self.post_gh(ev), 2)
        rows = self.b.jobs(f"id IN ('{ids[0]}', '{ids[1]}')")
        self.assertEqual(sorted(r["job_type"] for r in rows), ["audit", "receipt"])
        for r in rows:
            self.assertEqual(r["payload"], {"order": 1})
            self.assertEqual(r["metadata"]["webhook"], "shop")
            self.assertEqual(r["metadata"]["event_id"], "gh-1")
        self.duplicates(self.post_gh(ev), ids)
        self.assertEqual(self.b.count("metadata->>'event_id' = 'gh-1'"), 2)

    def test_traceparent_header_is_stored_with_the_jobs(self):
        """Issue 16, item 4: a W3C traceparent arriving in the webhook's HTTP headers is the
        trace of the jobs it creates (unchanged), like one in AMQP headers."""
        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ev = {"event_type": "order.created", "id": "gh-trace", "payload": {"order": 7}}
        ids = self.created(self.post_gh(ev, {"traceparent": tp, "tracestate": "shop=1"}), 2)
        got = jbtest.psql(f"SELECT DISTINCT traceparent || ' ' || tracestate FROM "
                          f"{self.b.schema}.jobs WHERE id IN ('{ids[0]}', '{ids[1]}')")
        self.assertEqual(got.strip(), tp + " shop=1")

    def test_github_style_event_type_and_delivery_headers(self):
        push = {"ref": "refs/heads/main", "commits": [{"id": "abc"}]}
        delivery = str(uuid.uuid4())
        hdrs = {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery}
        ids = self.created(self.post_gh(push, hdrs, name="github"), 1)
        row = self.b.jobs(f"id = '{ids[0]}'")[0]
        self.assertEqual(row["payload"], push)
        self.assertEqual(row["dedupe_key"], f"github/{delivery}|audit")
        self.duplicates(self.post_gh(push, hdrs, name="github"), ids)
        self.problem(self.post_gh(push, {"X-GitHub-Delivery": delivery}, name="github"), 422,
                     "no event type", "X-GitHub-Event header")
        self.problem(self.post_gh(push, {"X-GitHub-Event": "push"}, name="github"), 422,
                     "X-GitHub-Delivery")

    def test_github_signature_bad_or_missing_is_401_logged_without_secret(self):
        body = json.dumps({"event_type": "order.created", "id": "gh-bad"}).encode()
        p = self.problem(self.post("shop", body, {"X-Hub-Signature-256": gh_sig(body, "wrong")}),
                         401, "does not match")
        self.assertEqual(p["field"], "signature")
        self.problem(self.post("shop", body), 401, "no X-Hub-Signature-256 header")
        self.problem(self.post("shop", body, {"X-Hub-Signature-256": "sha256=zz"}), 401,
                     "not 64 hex digits")
        tampered = body.replace(b"gh-bad", b"gh-bae")
        self.problem(self.post("shop", tampered, {"X-Hub-Signature-256": gh_sig(body)}), 401)
        self.b.wait_log("bad signature", 30)
        logs = self.b.logs()
        self.assertIn('"webhook":"shop"', logs.replace(" ", ""))
        for secret in (GH_SECRET, STRIPE_SECRET, PARTNER_SECRET):
            self.assertNotIn(secret, logs)
        self.assertEqual(self.b.count("metadata->>'event_id' = 'gh-bad'"), 0)

    def test_stripe_signature_tolerance_and_several_v1(self):
        body = json.dumps({"event_type": "invoice.paid", "id": "st-1", "data": {"n": 1}}).encode()
        self.problem(self.post("pay", body, {"Stripe-Signature": stripe_sig(body, int(time.time()) - 3600)}),
                     401, "tolerance_s")
        self.problem(self.post("pay", body, {"Stripe-Signature": stripe_sig(body, secret="x")}),
                     401, "no v1 signature matches")
        self.problem(self.post("pay", body, {"Stripe-Signature": "v1=abc"}), 401, "t=")
        self.problem(self.post("pay", body), 401, "no Stripe-Signature")
        t = int(time.time())
        good = stripe_sig(body, t)
        other = "v1=" + "0" * 64
        hdr = f"t={t},{other},v0=ignored,{good.split(',')[1]}"
        ids = self.created(self.post("pay", body, {"Stripe-Signature": hdr}), 1)
        self.assertEqual(self.b.jobs(f"id = '{ids[0]}'")[0]["job_type"], "billing")

    def test_hmac_header_prefix_and_json_pointer_dedupe(self):
        def send(body, secret=PARTNER_SECRET):
            body = json.dumps(body).encode()
            mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return self.post("partner", body, {"X-Partner-Sig": "v1=" + mac})
        ev = {"event_type": "invoice.paid", "delivery": {"id": 4711}, "data": {"amount": 3}}
        ids = self.created(send(ev), 1)
        self.assertEqual(self.b.jobs(f"id = '{ids[0]}'")[0]["dedupe_key"], "partner/4711|billing")
        self.duplicates(send(ev), ids)
        self.problem(send({"event_type": "invoice.paid", "data": {}}), 422, "/delivery/id")
        self.problem(send(ev, "wrong"), 401, "X-Partner-Sig")

    def test_token_webhook_scopes(self):
        job = {"job_type": "email.send", "payload": {"to": "a@example.com"}}
        if not TOKENS:
            self.skipTest("this build has no http.tokens yet (issue 13 item 3)")
        self.assertEqual(self.post("direct", job).status_code, 401)
        self.assertEqual(self.post("direct", job, {"Authorization": "Bearer nope"}).status_code, 401)
        self.assertEqual(self.post("direct", job, {"Authorization": f"Bearer {READ_TOKEN}"})
                         .status_code, 403)
        self.created(self.post("direct", job, {"Authorization": f"Bearer {WRITE_TOKEN}"}), 1)

    # --- mode event ---

    def test_cloudevents_structured_and_binary(self):
        ce = {"specversion": "1.0", "type": "order.shipped", "id": "ce-s-1", "source": "/shop",
              "data": {"shipped": True}}
        body = json.dumps(ce).encode()
        ids = self.created(self.post_gh(body, {"Content-Type": "application/cloudevents+json"}), 1)
        row = self.b.jobs(f"id = '{ids[0]}'")[0]
        self.assertEqual(row["payload"], {"shipped": True})
        self.assertEqual(row["dedupe_key"], "/shop/ce-s-1|audit")
        self.assertEqual(row["metadata"]["source"], "/shop")
        data = json.dumps({"amount": 9}).encode()
        hdrs = {"ce-specversion": "1.0", "ce-type": "invoice.paid", "ce-id": "ce-b-1",
                "ce-source": "/billing"}
        ids = self.created(self.post_gh(data, hdrs), 1)
        row = self.b.jobs(f"id = '{ids[0]}'")[0]
        self.assertEqual(row["payload"], {"amount": 9})
        self.assertEqual(row["dedupe_key"], "/billing/ce-b-1|billing")
        self.duplicates(self.post_gh(data, hdrs), ids)
        self.problem(self.post_gh(data, dict(hdrs, **{"Content-Type": "text/plain"})), 415)
        self.problem(self.post_gh(b"[]", {"Content-Type": "application/cloudevents-batch+json"}),
                     415, "batch")

    def test_idempotency_key_dedupes_events_without_id(self):
        ev = {"event_type": "invoice.paid", "data": {"k": 1}}
        ids = self.created(self.post_gh(ev, {"Idempotency-Key": "idem-1"}), 1)
        self.duplicates(self.post_gh(ev, {"Idempotency-Key": "idem-1"}), ids)

    def test_bad_events_are_4xx_with_the_reason_and_never_dead_lettered(self):
        self.problem(self.post_gh({"event_type": "nobody.cares", "id": "u-1"}), 422,
                     "no mapping")
        self.problem(self.post_gh(b'{"event_type": "order.created",'), 400, "malformed JSON")
        self.problem(self.post_gh(b"[1, 2]"), 422, "not an object")
        self.problem(self.post_gh({"id": "x", "payload": {}}), 422, "no event type")
        self.problem(self.post_gh({"event_type": "order.created", "id": "np", "payload": [1]}),
                     422, "not a JSON object")
        self.problem(self.post_gh(b""), 400, "empty")
        self.problem(self.post_gh({"event_type": "a"}, name="nosuch"), 404, "nosuch")
        self.assertEqual(self.b.dead_letters(1, timeout=2), [])

    def test_same_event_by_amqp_and_by_webhook_gives_one_set_of_jobs(self):
        data = json.dumps({"order": "x-1"}).encode()
        ce = {"ce-specversion": "1.0", "ce-type": "order.created", "ce-id": "both-1",
              "ce-source": "/shop"}
        self.b.publish([(data, "order.created", pika.BasicProperties(headers=ce))])
        self.b.wait_count(2, 60, "metadata->>'event_id' = 'both-1'")
        amqp_ids = sorted(r["id"] for r in self.b.jobs("metadata->>'event_id' = 'both-1'"))
        self.duplicates(self.post_gh(data, ce), amqp_ids)
        # The other way round: the webhook first, then AMQP; a marker event after it shows
        # the AMQP one was consumed.
        ce2 = dict(ce, **{"ce-id": "both-2"})
        ids = self.created(self.post_gh(data, ce2), 2)
        marker = dict(ce, **{"ce-id": "both-marker", "ce-type": "invoice.paid"})
        self.b.publish([(data, "order.created", pika.BasicProperties(headers=ce2)),
                        (data, "invoice.paid", pika.BasicProperties(headers=marker))])
        self.b.wait_count(1, 60, "metadata->>'event_id' = 'both-marker'")
        self.assertEqual(sorted(r["id"] for r in self.b.jobs("metadata->>'event_id' = 'both-2'")),
                         ids)

    def test_concurrent_requests_each_get_their_jobs(self):
        # deps.creator is the group-committing creator serve.c wires in: many threads at once.
        def one(i):
            return self.post_gh({"event_type": "invoice.paid", "id": f"cc-{i}", "data": {"i": i}})
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            rs = list(pool.map(one, range(64)))
        for r in rs:
            self.created(r, 1)
        self.assertEqual(self.b.count("metadata->>'event_id' LIKE 'cc-%'"), 64)

    # --- mode job ---

    def test_job_mode_allowlist_fields_and_idempotency(self):
        job = {"job_type": "email.send", "payload": {"to": "b@example.com"}, "queue_name": "mail",
               "priority": 7}
        body = json.dumps(job).encode()
        ids = self.created(self.post_gh(body, {"Idempotency-Key": "jm-1"}, name="signed-jobs"), 1)
        row = self.b.jobs(f"id = '{ids[0]}'")[0]
        self.assertEqual((row["job_type"], row["queue_name"], row["priority"]),
                         ("email.send", "mail", 7))
        self.assertEqual(row["payload"], {"to": "b@example.com"})
        self.duplicates(self.post_gh(body, {"Idempotency-Key": "jm-1"}, name="signed-jobs"), ids)
        p = self.problem(self.post_gh({"job_type": "audit", "payload": {}}, name="signed-jobs"),
                         403, "audit")
        self.assertEqual(p["field"], "job_type")
        p = self.problem(self.post_gh(dict(job, color="red"), name="signed-jobs"), 422,
                         "unknown field \"color\"")
        self.assertEqual(p["field"], "color")
        self.problem(self.post_gh({"payload": {}}, name="signed-jobs"), 422, "job_type")
        self.problem(self.post_gh(dict(job, payload=[1]), name="signed-jobs"), 422, "payload")
        self.problem(self.post_gh(b"{", name="signed-jobs"), 400, "malformed JSON")
        self.problem(self.post_gh(body, {"Content-Type": "text/plain"}, name="signed-jobs"), 415,
                     "not JSON")

    # --- last: the database goes away and comes back ---

    def test_z_database_outage_503_then_the_retry_succeeds(self):
        ev = {"event_type": "order.created", "id": "outage-1", "payload": {"o": 1}}
        jbtest.servers("jb_pg_stop", jbtest.STATE_DIR)
        try:
            r = self.post_gh(ev)
            self.problem(r, 503)
            self.assertIn("Retry-After", r.headers)
        finally:
            os.environ["JB_PG_FSYNC"] = "off"
            jbtest.servers("jb_pg_start", jbtest.STATE_DIR, os.environ["JB_PG_PORT"])
        self.assertEqual(self.b.count("metadata->>'event_id' = 'outage-1'"), 0,
                         "nothing half-created")
        deadline, r = time.time() + 60, None
        while time.time() < deadline and (r is None or r.status_code != 202):
            r = self.post_gh(ev)
            time.sleep(0.5)
        self.created(r, 2)
        self.assertEqual(self.b.count("metadata->>'event_id' = 'outage-1'"), 2)


class Config(unittest.TestCase):
    def check(self, webhooks, env=None):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"job_types": {"a": {"handler": "noop"}}, "http": {"webhooks": webhooks}}, f)
        e = {k: v for k, v in os.environ.items() if k != "JB_UNSET_SECRET"}
        out = subprocess.run([BIN, "check-config", "--config", f.name], capture_output=True,
                             text=True, timeout=60, env=dict(e, **(env or {})))
        os.unlink(f.name)
        return out

    def test_missing_secret_is_a_config_error_naming_the_key(self):
        out = self.check({"s": {"signature": "stripe", "secret_env": "JB_UNSET_SECRET"}})
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("http.webhooks.s.secret_env", out.stderr)
        out = self.check({"s": {"signature": "stripe", "secret_env": "JB_UNSET_SECRET"}},
                         {"JB_UNSET_SECRET": "from-env-123"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotIn("from-env-123", out.stdout + out.stderr)
        for bad, key in [({"signature": "github"}, "http.webhooks.w.secret"),
                         ({"signature": "hmac", "secret": "x"}, "http.webhooks.w.header"),
                         ({"signature": "md5", "secret": "x"}, "http.webhooks.w.signature"),
                         ({"signature": "token", "mode": "job"},
                          "http.webhooks.w.allowed_job_types"),
                         ({"signature": "token", "mode": "job", "allowed_job_types": ["zz"]},
                          "http.webhooks.w.allowed_job_types[0]"),
                         ({"signature": "token", "dedupe": "id"}, "http.webhooks.w.dedupe")]:
            out = self.check({"w": bad})
            self.assertEqual(out.returncode, 2, (bad, out.stderr))
            self.assertIn(key, out.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[3:], verbosity=2)
