#!/usr/bin/env python3
"""Issue 16, item 1: the http handler against a local HTTP service written here (python's
http.server in a thread). The service verifies every request's HMAC signature with its own code
and answers by the job's payload: each status class, Retry-After, a sleep past the timeout; a
job type points at a closed port. Every outcome is checked in the jobs table.

usage: test_http_handler.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import hashlib
import hmac
import http.server
import json
import os
import socket
import stat
import tempfile
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402
import pika  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
SECRET = "test-secret-\u00e9"  # not ASCII: the key is its UTF-8 bytes


def verify(header, body, secret=SECRET, tolerance_s=300):
    """The receiver's check, as README shows it: t=<unix>,v1=<hex HMAC-SHA256("<t>.<body>")>."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    want = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"]) and abs(time.time() - int(parts["t"])) < tolerance_s


class Service:
    """Answers POST /jobs/<job_type>/<id> by the job's payload.mode; records every request."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: jobbridge should reuse connections

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig_ok = verify(self.headers.get("Jobbridge-Signature", "t=0,v1=x"), body)
                job = json.loads(body)
                with svc.lock:
                    svc.requests.append({"path": self.path, "headers": dict(self.headers),
                                         "job": job, "sig_ok": sig_ok,
                                         "peer": self.client_address})
                if not sig_ok:
                    return self.answer(401, b"bad signature")
                mode = job["payload"].get("mode")
                if mode == "ok":
                    return self.answer(200, json.dumps({"echo": job["payload"]["n"]}).encode(),
                                       "application/json")
                if mode == "text":
                    return self.answer(200, b"fine, thanks")
                if mode == "gone":
                    return self.answer(404, b"no such order\r\nanywhere" + b"x" * 500)
                if mode == "throttle":
                    return self.answer(429, b"slow down", extra={"Retry-After": "30"})
                if mode == "throttle_long":
                    return self.answer(429, b"slow down", extra={"Retry-After": "999999"})
                if mode == "down":
                    return self.answer(503, b"maintenance")
                if mode == "sleep":
                    time.sleep(4)
                    return self.answer(200, b"{}")
                return self.answer(400, b"unknown mode")

            def answer(self, status, body, ctype="text/plain", extra=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:  # the client gave up (the timeout case)
                    pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 256  # requests arrive all at once: no refused connection

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def by_id(self):
        with self.lock:
            return {r["job"]["id"]: r for r in self.requests}


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HttpHandler(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.svc = Service()
        base = f"http://127.0.0.1:{self.svc.port}/jobs/{{job_type}}/{{id}}"
        # Retries far in the future unless Retry-After says otherwise: a failed job stays
        # RETRYING and its delay can be read from scheduled_at.
        retry = {"base_s": 3600, "max_s": 7200, "jitter": 0}
        http = {"handler": "http", "url": base, "signing_secret": SECRET, "timeout_s": 1.5,
                "headers": {"X-Team": "billing"}, "max_retries": 2, "retry": retry}
        self.b = jbtest.Bridge(BIN, SRC, [], {
            "call": http,
            "refused": dict(http, url=f"http://127.0.0.1:{closed_port()}/x"),
        }, retry__jitter=0, workers__threads=8)
        self.b.migrate()

    def tearDown(self):
        self.b.close()
        self.svc.close()

    def insert(self, job_type, modes):
        """One PENDING job per mode, payload {"mode": m, "n": i}; returns {mode: id}."""
        values = ",".join(
            f"(gen_random_uuid(), '{job_type}', jsonb_build_object('mode', '{m}', 'n', {i}), "
            f"'PENDING', 2)" for i, m in enumerate(modes))
        rows = jbtest.psql(f"INSERT INTO {self.b.schema}.jobs (id, job_type, payload, status, "
                           f"max_retries) VALUES {values} RETURNING id, payload->>'mode'")
        return {m: i for i, m in (line.split("|") for line in rows.splitlines() if line)}

    def job(self, id):
        return self.b.jobs(f"id = '{id}'")[0]

    def test_every_outcome_lands_as_specified(self):
        self.b.migrate()
        modes = ["ok", "text", "gone", "throttle", "throttle_long", "down", "sleep"]
        ids = self.insert("call", modes)
        refused = self.insert("refused", ["ok"])["ok"]
        oks = self.insert("call", ["ok"] * 30)  # one id (the dict keeps the last)
        self.b.start()
        # Every job ran once: 8 + 30 finished (none is retried within the test: delays are long).
        self.b.wait_count(len(modes) + 31, 60,
                          "status IN ('COMPLETED', 'FAILED', 'RETRYING', 'DEAD_LETTER')")
        got = self.svc.by_id()
        self.assertTrue(all(r["sig_ok"] for r in got.values()), "every signature verifies")

        j = self.job(ids["ok"])
        self.assertEqual(j["status"], "COMPLETED", j["error_message"])
        self.assertEqual(j["result"], {"echo": 0})
        req = got[ids["ok"]]
        self.assertEqual(req["path"], f"/jobs/call/{ids['ok']}")
        self.assertEqual(req["headers"]["Idempotency-Key"], ids["ok"])
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual(req["headers"]["X-Team"], "billing")
        self.assertEqual(req["job"]["payload"], {"mode": "ok", "n": 0})
        self.assertEqual(req["job"]["job_type"], "call")
        self.assertEqual(self.job(oks["ok"])["status"], "COMPLETED", self.job(oks["ok"]))

        j = self.job(ids["text"])
        self.assertEqual((j["status"], j["result"]), ("COMPLETED", None), "a text body: no result")

        j = self.job(ids["gone"])
        self.assertEqual(j["status"], "FAILED", "404 is not retried")
        self.assertTrue(j["error_message"].startswith("HTTP 404: no such order  anywhere"),
                        j["error_message"])
        self.assertEqual(len(j["error_message"]), len("HTTP 404: ") + 200, "the first 200 bytes")
        self.assertEqual(j["retry_count"], 0)

        def delay_s(j):
            return (time.mktime(time.strptime(j["scheduled_at"][:19], "%Y-%m-%dT%H:%M:%S")) -
                    time.mktime(time.strptime(j["updated_at"][:19], "%Y-%m-%dT%H:%M:%S")))

        j = self.job(ids["throttle"])
        self.assertEqual((j["status"], j["retry_count"]), ("RETRYING", 1))
        self.assertEqual(j["error_message"], "HTTP 429: slow down")
        self.assertAlmostEqual(delay_s(j), 30, delta=2, msg="Retry-After: 30, not the 3600 s base")
        j = self.job(ids["throttle_long"])
        self.assertAlmostEqual(delay_s(j), 7200, delta=2, msg="capped by the type's retry.max_s")
        j = self.job(ids["down"])
        self.assertEqual((j["status"], j["error_message"]), ("RETRYING", "HTTP 503: maintenance"))
        self.assertAlmostEqual(delay_s(j), 3600, delta=2, msg="no Retry-After: the backoff")
        j = self.job(ids["sleep"])
        self.assertEqual(j["status"], "RETRYING", "a timeout is retried")
        self.assertIn("timed out after 1.5 s", j["error_message"])
        j = self.job(refused)
        self.assertEqual(j["status"], "RETRYING", "a refused connection is retried")
        self.assertIn("failed", j["error_message"])

        # Keep-alive: the 37 requests ran at once (one connection each); a second wave of 30
        # reuses those connections instead of opening new ones.
        with self.svc.lock:
            first = {r["peer"] for r in self.svc.requests}
            n = len(self.svc.requests)
        self.assertEqual(n, len(modes) + 30)
        self.insert("call", ["ok"] * 30)
        self.b.wait_count(len(modes) + 61, 60,
                          "status IN ('COMPLETED', 'FAILED', 'RETRYING', 'DEAD_LETTER')")
        with self.svc.lock:
            second = {r["peer"] for r in self.svc.requests[n:]}
        self.assertEqual(len(self.svc.requests), n + 30)
        self.assertLess(len(second - first), 15,
                        f"{len(second - first)} new connections for 30 requests")

    def test_a_bad_url_is_refused_at_start(self):
        self.b.cfg["job_types"]["call"]["url"] = "ftp://example/x"
        self.b.write_config(self.b.cfg)
        self.b.start(wait_consuming=False)
        code = self.b.proc.wait(timeout=60)
        self.b.proc = None
        self.b.log.close()
        self.assertNotEqual(code, 0)
        self.assertIn('job_types.call.url: "ftp://example/x" is not an http:// or https:// URL',
                      self.b.logs())


TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = TP[3:35]


class TraceContext(unittest.TestCase):
    """Item 4: a traceparent published with an AMQP event follows its jobs: the http handler's
    request, the exec handler's environment, the outbound CloudEvents (header and attribute)
    and the log lines; an event without one, or with a malformed one, starts a new trace."""

    def setUp(self):
        jbtest.require_servers()
        self.svc = Service()
        self.state = tempfile.TemporaryDirectory()
        script = os.path.join(self.state.name, "env.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\nprintf %s "$TRACEPARENT" > "$JB_TEST_STATE/tp.$JOBBRIDGE_JOB_ID"\n')
        os.chmod(script, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        url = f"http://127.0.0.1:{self.svc.port}/jobs/{{job_type}}/{{id}}"
        self.b = jbtest.Bridge(BIN, SRC, [
            {"event_type": "order.#", "job_type": "call", "payload": "/data"},
            {"event_type": "order.#", "job_type": "run", "payload": "/data"},
        ], {
            "call": {"handler": "http", "url": url, "signing_secret": SECRET},
            "run": {"handler": "exec", "command": [script], "env_passthrough": ["JB_TEST_STATE"]},
        })
        self.b.migrate()

    def tearDown(self):
        self.b.close()
        self.svc.close()
        self.state.cleanup()

    def test_a_published_traceparent_follows_the_jobs(self):
        self.b.start(env={"JB_TEST_STATE": self.state.name, "JOBBRIDGE_LOG_LEVEL": "debug"})
        ev = {"specversion": "1.0", "type": "order.created", "source": "shop", "data": {"mode": "ok", "n": 1}}
        self.b.publish([
            (json.dumps(dict(ev, id="traced")).encode(), "order.created",
             pika.BasicProperties(content_type="application/cloudevents+json",
                                  headers={"traceparent": TP, "tracestate": "shop=1"})),
            (json.dumps(dict(ev, id="attr", traceparent=TP.replace("4736", "9999"))).encode(),
             "order.created", pika.BasicProperties(content_type="application/cloudevents+json")),
            (json.dumps(dict(ev, id="plain")).encode(), "order.created", None),
            (json.dumps(dict(ev, id="bad")).encode(), "order.created",
             pika.BasicProperties(headers={"traceparent": "00-nope"})),
        ])
        self.b.wait_count(8, 60, "status = 'COMPLETED'")
        jobs = self.b.jobs()
        by_event = {}
        for j in jobs:
            by_event.setdefault(j["metadata"]["event_id"], {})[j["job_type"]] = j
        for kind in ("call", "run"):
            self.assertEqual(by_event["traced"][kind]["traceparent"], TP)
            self.assertEqual(by_event["traced"][kind]["tracestate"], "shop=1")
            self.assertEqual(by_event["attr"][kind]["traceparent"][3:35], TRACE_ID[:28] + "9999",
                             "the CloudEvents attribute")
            for other in ("plain", "bad"):
                tp = by_event[other][kind]["traceparent"]
                self.assertRegex(tp, r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", "a new trace")
                self.assertNotEqual(tp[3:35], TRACE_ID)
        self.assertIn('"malformed traceparent; the job starts a new trace"', self.b.logs())

        # The http handler's request.
        req = self.svc.by_id()[by_event["traced"]["call"]["id"]]
        self.assertEqual(req["headers"]["traceparent"][3:35], TRACE_ID)
        self.assertEqual(req["headers"]["tracestate"], "shop=1")
        # The job object (the body here; an exec handler's stdin, a process handler's line).
        self.assertEqual(req["job"]["traceparent"][3:35], TRACE_ID)
        self.assertEqual(req["job"]["tracestate"], "shop=1")
        # The exec handler's environment.
        with open(os.path.join(self.state.name, "tp." + by_event["traced"]["run"]["id"])) as f:
            self.assertEqual(f.read()[3:35], TRACE_ID)
        # The outbound CloudEvents: AMQP header and attribute.
        events = self.b.drain(self.b.out + ".watch", 8, 60, json.loads)
        traced = [(p, body) for _, p, body in events if body["data"]["metadata"]["event_id"] == "traced"]
        self.assertEqual(len(traced), 2, events)
        for props, body in traced:
            self.assertEqual(props.headers["traceparent"][3:35], TRACE_ID)
            self.assertEqual(props.headers["tracestate"], "shop=1")
            self.assertEqual(body["traceparent"][3:35], TRACE_ID)
            self.assertEqual(body["type"], "job.completed")
        # The log lines about the jobs.
        ran = [json.loads(line) for line in self.b.logs().splitlines()
               if line.startswith("{") and '"job ran"' in line]
        traced_ids = {by_event["traced"][k]["id"] for k in ("call", "run")}
        lines = [r for r in ran if r.get("job_id") in traced_ids]
        self.assertEqual(len(lines), 2, ran)
        self.assertTrue(all(r["trace_id"] == TRACE_ID for r in lines), lines)


class ProgressOverHttp(unittest.TestCase):
    """Issue 16, item 3: a service the http handler calls reports progress through the API
    (POST /v1/jobs/{id}/progress) with the token scoped to that job, which jobbridge sends in the
    request's Jobbridge-Progress-Token header; the progress reaches the row and a job.progress
    event. A token for another job is refused."""

    def setUp(self):
        jbtest.require_servers()
        self.seen = []
        test = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                job = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                token = self.headers.get("Jobbridge-Progress-Token", "")
                post = lambda tok: urllib.request.urlopen(urllib.request.Request(
                    f"{test.base}/v1/jobs/{job['id']}/progress", method="POST",
                    data=json.dumps({"progress": 50, "message": "half way"}).encode(),
                    headers={"Content-Type": "application/json",
                             "Jobbridge-Progress-Token": tok}), timeout=30).status
                try:
                    wrong = post("0" * 64)
                except urllib.error.HTTPError as e:
                    wrong = e.code
                test.seen.append((job["id"], token, post(token), wrong))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{self.server.server_address[1]}/jobs/{{id}}"
        self.b = jbtest.Bridge(BIN, SRC, [], {"call": {"handler": "http", "url": url,
                                                       "progress_events": True}},
                               http__listen="127.0.0.1:0")

    def tearDown(self):
        self.b.close()
        self.server.shutdown()
        self.server.server_close()

    def test_the_service_reports_progress_with_its_job_token(self):
        self.b.start()
        self.base = self.b.http_url()
        job = self.b.create_job("call")
        self.b.wait_count(1, 60, "status = 'COMPLETED'")
        self.assertEqual(len(self.seen), 1)
        id, token, ok, wrong = self.seen[0]
        self.assertEqual(id, job["id"])
        self.assertEqual(len(token), 64, "a hex HMAC-SHA256 of the job id")
        self.assertEqual((ok, wrong), (200, 401), "its own token works, another is refused")
        row = self.b.jobs(f"id = '{id}'")[0]
        self.assertEqual(row["progress_message"], "half way")
        events = [e for e in self.b.events(3, 30) if e[0].startswith("job.progress")]
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0][2]["data"]["progress"], 50)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
