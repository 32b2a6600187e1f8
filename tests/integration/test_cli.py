#!/usr/bin/env python3
"""The jobbridge CLI against a real PostgreSQL (JOBBRIDGE_DATABASE_URL from tests/run.sh):
JSON output, exit codes, clear errors, `run` start-up and shutdown, secrets kept out of logs.

usage: test_cli.py JOBBRIDGE_BINARY SOURCE_DIR
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


class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert DB_URL, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh"
        cls.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(SRC, "config/jobbridge.example.json")) as f:
            cfg = json.load(f)
        cls.schema = "cli_" + uuid.uuid4().hex[:8]
        cfg["database"]["schema"] = cls.schema
        cls.config = cls.write_config(cfg, "good.json")
        out = cls.jb(["migrate"])
        assert out.returncode == 0, out.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def write_config(cls, obj_or_text, name):
        path = os.path.join(cls.tmp.name, name)
        with open(path, "w") as f:
            f.write(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
        return path

    @classmethod
    def jb(cls, args, config=None, env=None, **kw):
        full_env = dict(os.environ)
        full_env.update(env or {})
        cmd = [BIN] + args + ["--config", config or cls.config]
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=60, **kw)

    def ok_json(self, args, **kw):
        out = self.jb(args, **kw)
        self.assertEqual(out.returncode, 0, f"{args}: {out.stderr}")
        return json.loads(out.stdout)

    def create(self, *extra):
        return self.ok_json(["jobs", "create", "audit_log", "--payload", '{"n": 1}', *extra])

    # --- config ---

    def test_check_config_prints_effective_config_with_secrets_redacted(self):
        out = self.jb(["check-config"], env={"JOBBRIDGE_AMQP_URL": "amqp://u:s3cret@h:5672"})
        self.assertEqual(out.returncode, 0, out.stderr)
        cfg = json.loads(out.stdout)
        self.assertEqual(cfg["amqp"]["url"], "amqp://u:***@h:5672")
        self.assertEqual(cfg["ingest"]["batch_max"], 200)
        self.assertNotIn("s3cret", out.stdout + out.stderr)

    def check_bad_config(self, text, needle):
        path = self.write_config(text, "bad.json")
        for cmd in (["check-config"], ["run"]):
            out = self.jb(cmd, config=path)
            self.assertEqual(out.returncode, 2, f"{cmd}: {out.stderr}")
            self.assertIn(needle, out.stderr, cmd)

    def test_bad_configs_exit_2_naming_the_problem(self):
        self.check_bad_config('{"amqp": {"prefetch": 10,}}', "line 1, column")
        self.check_bad_config('{"workers": {"treads": 4}}', "workers.treads: unknown key")
        self.check_bad_config('{"amqp": {"heartbeat_s": "10"}}', "amqp.heartbeat_s: expected an integer")
        self.check_bad_config(
            '{"mappings": [{"event_type": "a.b", "job_type": "ghost"}]}',
            'mappings[0].job_type: job type "ghost" is not registered')
        out = self.jb(["check-config"], config="/nonexistent.json")
        self.assertEqual(out.returncode, 2)
        self.assertIn("/nonexistent.json: cannot open config file", out.stderr)

    # --- jobs ---

    def test_create_get_list_cancel_retry_stats(self):
        job = self.create("--queue", "q1", "--priority", "7", "--metadata", '{"src": "cli"}')
        for field in ("id", "queue_name", "job_type", "payload", "priority", "max_retries",
                      "retry_count", "scheduled_at", "started_at", "completed_at", "failed_at",
                      "created_at", "updated_at", "status", "error_message", "created_by",
                      "metadata", "result", "progress", "dedupe_key", "locked_by", "locked_until"):
            self.assertIn(field, job)
        self.assertEqual(job["status"], "PENDING")
        self.assertEqual(job["priority"], 7)
        self.assertEqual(job["queue_name"], "q1")
        self.assertEqual(job["metadata"], {"src": "cli"})
        self.assertEqual(job["max_retries"], 3)
        got = self.ok_json(["jobs", "get", job["id"]])
        self.assertEqual(got.pop("attempts"), [])  # get adds the attempt history: none yet
        self.assertEqual(got, job)
        # Options may come before the positional arguments.
        listed = self.ok_json(["jobs", "--queue", "q1", "list"])
        self.assertEqual([j["id"] for j in listed], [job["id"]])
        cancelled = self.ok_json(["jobs", "cancel", job["id"]])
        self.assertEqual(cancelled["status"], "FAILED")
        self.assertEqual(cancelled["error_message"], "Job cancelled")
        self.assertEqual(self.ok_json(["jobs", "list", "--queue", "q1", "--status", "failed"])[0]["id"],
                         job["id"])
        again = self.jb(["jobs", "cancel", job["id"]])
        self.assertEqual(again.returncode, 1)
        self.assertIn("it is FAILED", again.stderr)
        retried = self.ok_json(["jobs", "retry", job["id"]])
        self.assertEqual(retried["status"], "PENDING")
        stats = {s["queue_name"]: s for s in self.ok_json(["stats"])}
        self.assertEqual(stats["q1"]["pending_count"], 1)
        self.assertEqual(stats["q1"]["total_count"], 1)
        for key in ("pending_count", "scheduled_count", "retrying_count", "running_count",
                    "completed_count", "failed_count", "dead_letter_count", "total_count"):
            self.assertIn(key, stats["q1"])

    def test_scheduled_job_and_dedupe(self):
        job = self.create("--scheduled-at", "2099-01-01T00:00:00Z", "--dedupe-key", "cli-d1",
                          "--max-retries", "0")
        self.assertEqual(job["status"], "SCHEDULED")
        self.assertEqual(job["scheduled_at"], "2099-01-01T00:00:00.000000Z")
        self.assertEqual(job["max_retries"], 0)
        dup = self.create("--dedupe-key", "cli-d1")
        self.assertEqual(dup["id"], job["id"], "a duplicate returns the existing job")

    def test_bad_input_exit_codes(self):
        cases = [
            (["jobs", "create", "audit_log", "--payload", "[1,2]"], 2, "--payload must be a JSON object"),
            (["jobs", "create", "audit_log", "--payload", "{oops"], 2, "--payload is not valid JSON"),
            (["jobs", "create", "audit_log"], 2, "--payload is required"),
            (["jobs", "create", "ghost", "--payload", "{}"], 2, 'job type "ghost" is not registered'),
            (["jobs", "create", "audit_log", "--payload", "{}", "--priority", "high"], 2, "--priority"),
            (["jobs", "create", "audit_log", "--payload", "{}", "--scheduled-at", "soon"], 2,
             "--scheduled-at"),
            (["jobs", "get", str(uuid.uuid4())], 3, "not found"),
            (["jobs", "cancel", str(uuid.uuid4())], 3, "not found"),
            (["jobs", "retry", str(uuid.uuid4())], 3, "not found"),
            (["jobs", "get", "42"], 2, '"42" is not a job id'),
            (["jobs", "list", "--status", "DONE"], 2, "--status"),
            (["jobs", "explode"], 2, 'unknown jobs subcommand "explode"'),
            (["jobs", "get"], 2, "jobs get takes a job id"),
            (["jobs", "list", "--colour", "red"], 2, "unknown option --colour"),
            (["frobnicate"], 2, 'unknown command "frobnicate"'),
        ]
        for args, code, needle in cases:
            out = self.jb(args)
            self.assertEqual(out.returncode, code, f"{args}: {out.stderr}")
            self.assertIn(needle, out.stderr, args)
            self.assertEqual(out.stdout, "", f"{args}: nothing on stdout")

    def test_help_on_every_command(self):
        for args in (["--help"], ["run", "--help"], ["migrate", "--help"], ["check-config", "--help"],
                     ["jobs", "--help"], ["stats", "--help"]):
            out = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=10)
            self.assertEqual(out.returncode, 0, args)
            self.assertIn("usage: jobbridge", out.stdout, args)

    # --- database down ---

    def test_database_down_one_shot_commands_exit_1(self):
        down = {"JOBBRIDGE_DATABASE_URL": "postgresql://jb:topsecret@127.0.0.1:1/x?connect_timeout=2"}
        for args in (["stats"], ["jobs", "list"], ["migrate"]):
            out = self.jb(args, env=down)
            self.assertEqual(out.returncode, 1, args)
            self.assertIn("cannot connect to PostgreSQL at postgresql://jb:***@127.0.0.1:1", out.stderr)
            self.assertNotIn("topsecret", out.stderr)

    def test_run_retries_while_database_is_down_and_stops_on_sigterm(self):
        down = {"JOBBRIDGE_DATABASE_URL": "postgresql://jb:topsecret@127.0.0.1:1/x?connect_timeout=2"}
        env = dict(os.environ, **down)
        proc = subprocess.Popen([BIN, "run", "--config", self.config], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(2.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        retries = [l for l in lines if l["msg"] == "database unavailable, retrying"]
        self.assertGreaterEqual(len(retries), 2, err)
        delays = [int(l["retry_in_ms"]) for l in retries]
        self.assertEqual(delays, sorted(delays), "backoff grows")
        self.assertNotIn("topsecret", err)

    def test_run_logs_json_lines_and_exits_0_on_sigterm(self):
        env = dict(os.environ)
        env["JOBBRIDGE_DATABASE_URL"] = DB_URL.replace("jobbridge@", "jobbridge:pw-not-logged@")
        proc = subprocess.Popen([BIN, "run", "--config", self.config], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 20
        seen = ""
        while time.time() < deadline and "database ready" not in seen:
            seen += proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        err = seen + err
        self.assertEqual(proc.returncode, 0, err)
        for line in err.splitlines():
            obj = json.loads(line)  # every line is a JSON object
            for key in ("ts", "level", "msg"):
                self.assertIn(key, obj)
        self.assertIn("database ready", err)
        self.assertNotIn("pw-not-logged", err)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
