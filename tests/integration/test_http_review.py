"""Defects found by the adversarial review of the HTTP face (issue 13), each with the test that
failed before its fix, against a running `jobbridge run` with real clients (python3-requests and
raw sockets for what requests would not send):
- HEAD was 405 on every GET route (RFC 9110: a server that answers GET answers HEAD);
- a path or header with bytes that are not UTF-8 (%FF, or a detail cut mid-character) made the
  problem itself unwritable: 500 "out of memory" in text/plain instead of the 404/415 problem;
- %00 in the path ended it early: /healthz%00x was answered as /healthz;
- a 503 told any caller (an unauthenticated webhook sender too) the database's URL, user and
  port and PostgreSQL's own message: the reason now goes to the log, the caller gets a plain one.

Usage: test_http_review.py BINARY SOURCE_DIR (servers from tests/run.sh or deploy/servers.sh)."""
import hashlib
import json
import os
import socket
import sys
import time
import unittest
import urllib.parse

import requests

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]


def digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


class HttpReviewTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.token = "rv-" + os.urandom(16).hex()
        cls.b = jbtest.Bridge(
            BIN, SRC, [], {"noop": {"handler": "noop"}}, http__listen="127.0.0.1:0",
            http__tokens=[{"name": "ops", "sha256": digest(cls.token),
                           "scopes": ["read", "write", "admin"]}])
        cls.b.start()
        cls.url = cls.b.http_url()
        u = urllib.parse.urlparse(cls.url)
        cls.addr = (u.hostname, u.port)
        cls.job_id = cls.b.create_job("noop")["id"]

    @classmethod
    def tearDownClass(cls):
        cls.b.close()

    def auth(self):
        return {"Authorization": "Bearer " + self.token}

    def raw(self, request):
        """Sends request bytes as they are; the answer's status line, headers and body."""
        with socket.create_connection(self.addr, timeout=30) as s:
            s.sendall(request)
            out = b""
            while b"\r\n\r\n" not in out:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            head, _, body = out.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return int(head.split(b" ")[1]), head.decode("latin-1"), body

    def assertProblem(self, r, status):
        self.assertEqual(r.status_code, status, r.text)
        self.assertEqual(r.headers["Content-Type"], "application/problem+json", r.text)
        self.assertEqual(r.json()["status"], status)

    # ---- HEAD ----

    def test_head_is_answered_as_get_without_a_body(self):
        r = requests.head(f"{self.url}/healthz", timeout=30)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.headers["Content-Type"], "application/json")
        self.assertEqual(r.content, b"")
        r = requests.head(f"{self.url}/v1/jobs/{self.job_id}", headers=self.auth(), timeout=30)
        self.assertEqual(r.status_code, 200)
        # The scope still holds for HEAD.
        self.assertEqual(requests.head(f"{self.url}/v1/jobs/{self.job_id}",
                                       timeout=30).status_code, 401)

    def test_allow_lists_head_beside_get(self):
        r = requests.put(f"{self.url}/healthz", timeout=30)
        self.assertProblem(r, 405)
        self.assertEqual(r.headers["Allow"], "GET, HEAD")
        r = requests.delete(f"{self.url}/v1/jobs", headers=self.auth(), timeout=30)
        self.assertEqual(r.headers["Allow"], "POST, GET, HEAD")

    # ---- bytes that are not UTF-8 ----

    def test_path_not_utf8_is_a_404_problem(self):
        for path in ["/nothing%FF", "/v1/jobs/%FF", "/v1/jobs/%C3", "/" + "%C3%A9" * 600]:
            r = requests.get(self.url + path, headers=self.auth(), timeout=30)
            self.assertProblem(r, 404)
        r = requests.post(f"{self.url}/v1/webhooks/%FF", data=b"{}", timeout=30,
                          headers={"Content-Type": "application/json"})
        self.assertProblem(r, 404)
        self.assertEqual(r.json()["field"], "name")

    def test_content_type_not_utf8_is_a_415_problem(self):
        body = b'{"job_type": "noop", "payload": {}}'
        status, head, out = self.raw(
            b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " +
            self.token.encode() + b"\r\nContent-Type: text/\xff\xfe\r\nContent-Length: " +
            str(len(body)).encode() + b"\r\n\r\n" + body)
        self.assertEqual(status, 415, out)
        self.assertIn("Content-Type: application/problem+json", head)
        self.assertIn(b"Content-Type", out)

    # ---- NUL ----

    def test_nul_in_the_path_matches_nothing(self):
        r = requests.get(f"{self.url}/healthz%00x", timeout=30)
        self.assertProblem(r, 404)
        r = requests.get(f"{self.url}/v1/jobs/{self.job_id}%00x", headers=self.auth(), timeout=30)
        self.assertProblem(r, 404)
        r = requests.get(f"{self.url}/v1/jobs?status=PENDING%00x", headers=self.auth(), timeout=30)
        self.assertProblem(r, 400)
        self.assertEqual(r.json()["field"], "status")
        # Other escapes still decode, in the path and in the query.
        r = requests.get(f"{self.url}/v1/jobs/{self.job_id[:-1]}%{ord(self.job_id[-1]):02X}",
                         headers=self.auth(), timeout=30)
        self.assertEqual(r.status_code, 200, r.text)
        r = requests.get(f"{self.url}/v1/jobs?status=PEN%44ING", headers=self.auth(), timeout=30)
        self.assertEqual(r.status_code, 200, r.text)


class DatabaseOutageTest(unittest.TestCase):
    def test_503_names_no_database_detail(self):
        jbtest.require_servers()
        b = jbtest.Bridge(BIN, SRC, [], {"noop": {"handler": "noop"}}, http__listen="127.0.0.1:0",
                          http__webhooks={"direct": {"mode": "job", "signature": "token",
                                                     "allowed_job_types": ["noop"]}})
        body = json.dumps({"job_type": "noop", "payload": {}})
        h = {"Content-Type": "application/json"}
        try:
            b.start()
            url = b.http_url()
            self.assertEqual(requests.post(url + "/v1/jobs", data=body, headers=h,
                                           timeout=60).status_code, 202)
            jbtest.servers("jb_pg_stop", jbtest.STATE_DIR)
            try:
                port = os.environ["JB_PG_PORT"]
                for _ in range(2):  # the connection lost, then the reconnection refused
                    for method, path in [("POST", "/v1/jobs"), ("POST", "/v1/webhooks/direct"),
                                         ("GET", "/v1/queues"), ("GET", "/v1/jobs")]:
                        r = requests.request(method, url + path, data=body, headers=h,
                                             timeout=60)
                        self.assertEqual(r.status_code, 503, r.text)
                        self.assertEqual(r.headers["Content-Type"], "application/problem+json")
                        self.assertEqual(r.headers.get("Retry-After"), "1")
                        for leak in ["postgresql", port, "jobbridge@", "FATAL"]:
                            self.assertNotIn(leak, r.text)
                        self.assertIn("database", r.json()["detail"])
                # The reason is in the log, for the operator.
                b.wait_log("postgresql://", 30)
            finally:
                jbtest.servers("jb_pg_start", jbtest.STATE_DIR, os.environ["JB_PG_PORT"])
            deadline = time.time() + 120
            while time.time() < deadline:
                r = requests.post(url + "/v1/jobs", data=body, headers=h, timeout=60)
                if r.status_code == 202:
                    break
                time.sleep(0.5)
            self.assertEqual(r.status_code, 202, r.text)
        finally:
            b.close()


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]], verbosity=2)
