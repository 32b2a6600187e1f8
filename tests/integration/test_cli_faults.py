#!/usr/bin/env python3
"""Issue 11, defects 14, 16 and 17 (config part), through the real binary: passwords in every
connection-string form never reach stdout/stderr (check-config, `run` retrying an unreachable
host, `jobs list`); a URL that cannot be parsed is a config error (exit 2 at once, no retry
loop); CLI times and numbers are range-checked with exit 2; unreadable config files say why.

usage: test_cli_faults.py JOBBRIDGE_BINARY SOURCE_DIR [unittest args, e.g. -k secrets]
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

BIN = sys.argv[1]
SRC = sys.argv[2]
DB_URL = os.environ.get("JOBBRIDGE_DATABASE_URL")

# Pieces of the password: none may appear anywhere in the output.
SECRET_PIECES = ("s3cret", "cretPW", "PW!x")

# Each form libpq accepts, aimed at a port nothing listens on (connections are refused at once).
REACHABLE_FORMS = [
    "host=127.0.0.1 port=1 user=u password = s3cretPW!x dbname=jb",
    "host=127.0.0.1 port=1 password='s3 cretPW!x y' dbname=jb",
    "host=127.0.0.1 port=1 password='s3\\'cretPW!x' dbname=jb",
    "host=127.0.0.1 port=1 password=s3\\ cretPW!x dbname=jb",
    "postgresql://u@127.0.0.1:1/jb?password=s3cretPW!x",
    "postgresql://u@127.0.0.1:1/jb?sslmode=disable&password=s3cretPW!x",
    "postgresql://u:s3cretPW!x@127.0.0.1:1/jb",
    "postgresql://u:s3cretPW%21x@127.0.0.1:1/jb",
]
# Forms libpq cannot parse, or would misread: config errors, whatever the server's state.
UNPARSABLE_FORMS = [
    ("postgresql://u:p@s3cretPW!x@127.0.0.1:1/jb", "more than one '@'"),
    ("postgresql://u:s3cretPW%ZZ@127.0.0.1:1/jb", "two hex digits"),
    ("host=127.0.0.1 port=1 password='s3cretPW!x", "closing quote"),
    ("host=127.0.0.1 port=1 pasword=s3cretPW!x", "connection option libpq does not know"),
    ("postgresql://127.0.0.1:1/jb?passwd=s3cretPW!x", "query parameter libpq does not know"),
]


class CliFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert DB_URL, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh"
        cls.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(SRC, "config/jobbridge.example.json")) as f:
            cfg = json.load(f)
        cfg["database"]["schema"] = "clif_" + uuid.uuid4().hex[:8]
        cls.config = cls.write("good.json", json.dumps(cfg))
        out = cls.jb(["migrate"])
        assert out.returncode == 0, out.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def write(cls, name, text):
        path = os.path.join(cls.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    @classmethod
    def jb(cls, args, config=None, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        cmd = [BIN] + args + ["--config", config or cls.config]
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              env=full_env, timeout=60)

    def assert_no_secret(self, text, what):
        for piece in SECRET_PIECES:
            self.assertNotIn(piece, text, f"{what}: the password leaked:\n{text}")

    # --- defect 14: secrets ---

    def test_secrets_check_config_redacts_every_form(self):
        for url in REACHABLE_FORMS:
            out = self.jb(["check-config"], env={"JOBBRIDGE_DATABASE_URL": url})
            self.assertEqual(out.returncode, 0, f"{url}: {out.stderr}")
            shown = json.loads(out.stdout)["database"]["url"]
            self.assertIn("***", shown, url)
            self.assert_no_secret(out.stdout + out.stderr, url)

    def test_secrets_jobs_list_errors_redact_every_form(self):
        for url in REACHABLE_FORMS:
            out = self.jb(["jobs", "list"], env={"JOBBRIDGE_DATABASE_URL": url})
            self.assertEqual(out.returncode, 1, f"{url}: {out.stderr}")
            self.assertIn("cannot connect to PostgreSQL", out.stderr, url)
            self.assert_no_secret(out.stdout + out.stderr, url)

    def test_secrets_run_retry_logs_redact_every_form(self):
        for url in REACHABLE_FORMS:
            env = dict(os.environ, JOBBRIDGE_DATABASE_URL=url)
            proc = subprocess.Popen([BIN, "run", "--config", self.config], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    errors="replace")
            seen, deadline = "", time.time() + 30
            while time.time() < deadline and seen.count("database unavailable, retrying") < 2:
                line = proc.stderr.readline()
                if not line:
                    break
                seen += line
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
            err = seen + err
            self.assertGreaterEqual(err.count("database unavailable, retrying"), 2, f"{url}: {err}")
            self.assert_no_secret(out + err, url)

    def test_secrets_unparsable_urls_are_config_errors_at_once(self):
        for url, why in UNPARSABLE_FORMS:
            for cmd in (["check-config"], ["jobs", "list"], ["run"]):
                started = time.time()
                out = self.jb(cmd, env={"JOBBRIDGE_DATABASE_URL": url})
                self.assertEqual(out.returncode, 2, f"{cmd} {url}: {out.stderr}")
                self.assertLess(time.time() - started, 20, f"{cmd} {url}: retried a config error")
                self.assertIn("database.url (from JOBBRIDGE_DATABASE_URL)", out.stderr, url)
                self.assertIn(why, out.stderr, url)
                self.assertNotIn("retrying", out.stderr, url)
                self.assert_no_secret(out.stdout + out.stderr, f"{cmd} {url}")

    def test_secrets_amqp_urls(self):
        out = self.jb(["check-config"], env={"JOBBRIDGE_AMQP_URL": "amqp://u:s3cretPW!x@h:5672/v"})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["amqp"]["url"], "amqp://u:***@h:5672/v")
        self.assert_no_secret(out.stdout + out.stderr, "amqp")
        for url in ("amqp://u:p@s3cretPW!x@h:5672", "amqp://u:s3cretPW%ZZ@h"):
            for cmd in (["check-config"], ["run"]):
                out = self.jb(cmd, env={"JOBBRIDGE_AMQP_URL": url})
                self.assertEqual(out.returncode, 2, f"{cmd} {url}: {out.stderr}")
                self.assertIn("amqp.url (from JOBBRIDGE_AMQP_URL)", out.stderr)
                self.assert_no_secret(out.stdout + out.stderr, url)

    # --- defect 16: times and numbers ---

    def test_times_out_of_range_or_impossible_exit_2(self):
        cases = [
            ("99999999999999999999", "out of range"),
            ("9999999999999", "out of range"),
            ("2026-02-30T10:00:00Z", "2026-02 has 28 days"),
            ("2026-02-01T10:00:00+25:00", "beyond -23:59..+23:59"),
            ("0000-12-31T00:00:00Z", "out of range"),
        ]
        for value, why in cases:
            out = self.jb(["jobs", "create", "audit_log", "--payload", "{}",
                           "--scheduled-at", value])
            self.assertEqual(out.returncode, 2, f"{value}: {out.stderr}")
            self.assertIn(why, out.stderr, value)
            self.assertEqual(out.stdout, "", f"{value}: a job was created")

    def test_times_year_1_round_trips_with_four_digits(self):
        out = self.jb(["jobs", "create", "audit_log", "--payload", "{}",
                       "--scheduled-at", "0001-01-01T00:00:00Z"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["scheduled_at"], "0001-01-01T00:00:00.000000Z")
        out = self.jb(["jobs", "create", "audit_log", "--payload", "{}",
                       "--scheduled-at", "2024-02-29T23:30:00-01:00"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["scheduled_at"], "2024-03-01T00:30:00.000000Z")

    def test_numbers_have_ranges_and_exit_2(self):
        out = self.jb(["jobs", "list", "--offset", "9223372036854775807"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), [])
        cases = [
            (["list", "--offset", "9223372036854775808"], "--offset 9223372036854775808 is out of range"),
            (["list", "--offset", "-1"], "--offset -1 is out of range: it must be from 0 to"),
            (["list", "--limit", "0"], "--limit 0 is out of range: it must be from 1 to 10000"),
            (["list", "--limit", " 5"], "is not a whole decimal number"),
            (["create", "audit_log", "--payload", "{}", "--priority", "1e9"],
             '--priority "1e9" is not a whole decimal number'),
            (["create", "audit_log", "--payload", "{}", "--max-retries", "1001"],
             "--max-retries 1001 is out of range: it must be from 0 to 1000"),
        ]
        for args, why in cases:
            out = self.jb(["jobs"] + args)
            self.assertEqual(out.returncode, 2, f"{args}: {out.stderr}")
            self.assertIn(why, out.stderr, args)

    def test_input_errors_exit_2_even_with_the_database_down(self):
        down = {"JOBBRIDGE_DATABASE_URL": "postgresql://u@127.0.0.1:1/jb"}
        for args in (["create", "audit_log", "--payload", "{}", "--scheduled-at", "9999999999999"],
                     ["list", "--offset", "x"]):
            out = self.jb(["jobs"] + args, env=down)
            self.assertEqual(out.returncode, 2, f"{args}: {out.stderr}")

    # --- defect 17: config files that cannot be read ---

    def test_config_files_that_cannot_be_read_say_why(self):
        empty = self.write("empty.json", "")
        cases = [
            (self.tmp.name, f"{self.tmp.name} is a directory"),
            (empty, f"{empty} is empty"),
            (os.path.join(self.tmp.name, "missing.json"), "No such file or directory"),
        ]
        for path, why in cases:
            for cmd in (["check-config"], ["run"], ["jobs", "list"]):
                out = self.jb(cmd, config=path)
                self.assertEqual(out.returncode, 2, f"{cmd} {path}: {out.stderr}")
                self.assertIn(why, out.stderr, cmd)
                self.assertNotIn("line 1, column", out.stderr, cmd)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"] + sys.argv[3:])
