#!/usr/bin/env python3
"""Issue 11, defects 9-12: exec handlers stay within their limits, against the real servers and
the real jobbridge binary. Processes are found with `ps` by a unique sleep duration.

usage: test_handler_limits.py JOBBRIDGE_BINARY SOURCE_DIR [-k name]
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
SECRET = "s3cretPW"


def sh(script, timeout_s=300, max_retries=0, **extra):
    return {"handler": "exec", "command": ["/bin/sh", "-c", script], "timeout_s": timeout_s,
            "max_retries": max_retries, **extra}


def marker(base):
    """A sleep duration no other process has: '1003.<random>'."""
    return f"{base}.{random.randrange(10**8):08d}"


def procs(mark):
    """The `sleep <mark>` processes alive (zombies have no arguments)."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines()
            if line.split(None, 2)[2:] == [f"sleep {mark}"] and "Z" not in line.split()[1]]


class HandlerLimits(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []
        self.marks = []

    def tearDown(self):
        for b in self.bridges:
            b.close()
        for m in self.marks:  # never leave a process behind, even when a test failed
            for line in procs(m):
                os.kill(int(line.split()[0]), signal.SIGKILL)

    def bridge(self, job_types, env=None, **overrides):
        overrides.setdefault("retry__jitter", 0)
        b = jbtest.Bridge(BIN, SRC, [], job_types, **overrides)
        self.bridges.append(b)
        b.migrate()
        b.start(env=env)
        return b

    def mark(self, base):
        m = marker(base)
        self.marks.append(m)
        return m

    def wait_job(self, b, job_id, statuses, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            jobs = b.jobs(f"id = '{job_id}'")
            if jobs and jobs[0]["status"] in statuses:
                return jobs[0]
            time.sleep(0.2)
        raise AssertionError(f"job not {statuses} within {timeout}s: {b.jobs()}\n{b.logs()[-3000:]}")

    def wait_no_procs(self, mark, timeout=10):
        deadline = time.time() + timeout
        while procs(mark) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(procs(mark), [], "no process of the handler's tree is left")

    def wait_procs(self, mark, n, timeout=30):
        deadline = time.time() + timeout
        while len(procs(mark)) < n and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(procs(mark)), n, f"the handler started {n} sleeps")

    def test_timeout_stops_a_handler_that_closed_its_output(self):
        b = self.bridge({"quiet": sh("exec >/dev/null 2>&1; sleep 40", timeout_s=3)})
        t0 = time.time()
        job = b.create_job("quiet")
        done = self.wait_job(b, job["id"], ("DEAD_LETTER", "COMPLETED", "FAILED"), 60)
        took = time.time() - t0
        self.assertEqual(done["status"], "DEAD_LETTER", "a timeout, retries exhausted")
        self.assertIn("timed out", done["error_message"])
        self.assertLess(took, 20, f"ended at its 3 s deadline, took {took:.1f}s")

    def test_background_child_of_a_successful_run_does_not_live_on(self):
        m = self.mark(1005)
        b = self.bridge({"bg": sh(f"cat >/dev/null; sleep {m} & echo '{{}}'")})
        job = b.create_job("bg")
        done = self.wait_job(b, job["id"], ("COMPLETED", "DEAD_LETTER"), 30)
        self.assertEqual(done["status"], "COMPLETED")
        self.wait_no_procs(m, 5)

    def test_setsid_grandchild_does_not_hold_cancel(self):
        m = self.mark(1003)
        b = self.bridge({"hold": sh(f"setsid sleep {m} & sleep {m}")})
        job = b.create_job("hold")
        self.wait_job(b, job["id"], ("RUNNING",), 30)
        self.wait_procs(m, 2)
        out = subprocess.run([BIN, "jobs", "cancel", job["id"], "--config", b.config],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        done = self.wait_job(b, job["id"], ("FAILED",), 30)
        self.assertEqual(done["error_message"], "Job cancelled")
        self.wait_no_procs(m)

    def test_setsid_grandchild_does_not_hold_the_worker_past_its_timeout(self):
        m = self.mark(1006)
        b = self.bridge({"hold": sh(f"setsid sleep {m} & sleep {m}", timeout_s=2)})
        job = b.create_job("hold")
        done = self.wait_job(b, job["id"], ("DEAD_LETTER", "COMPLETED"), 30)
        self.assertEqual(done["status"], "DEAD_LETTER")
        self.assertIn("timed out", done["error_message"])
        self.wait_no_procs(m)

    def test_sigterm_stops_jobbridge_in_time_with_a_setsid_grandchild(self):
        m = self.mark(1008)
        grace = 2
        b = self.bridge({"hold": sh(f"trap '' TERM; setsid sleep {m} & sleep {m}; wait")},
                        workers__shutdown_grace_s=grace)
        job = b.create_job("hold")
        self.wait_job(b, job["id"], ("RUNNING",), 30)
        self.wait_procs(m, 2)
        t0 = time.time()
        b.proc.send_signal(signal.SIGTERM)
        try:
            code = b.proc.wait(timeout=grace + 15)
        except subprocess.TimeoutExpired:
            self.fail(f"jobbridge still running {grace + 15}s after SIGTERM:\n{b.logs()[-3000:]}")
        took = time.time() - t0
        b.proc = None
        b.log.close()
        self.assertEqual(code, 0, b.logs()[-3000:])
        # the grace, then SIGTERM to the tree, SIGKILL 5 s later (the program ignores SIGTERM)
        self.assertLess(took, grace + 12, f"stopped in {took:.1f}s")
        self.wait_no_procs(m)
        self.assertEqual(b.jobs(f"id = '{job['id']}'")[0]["status"], "RETRYING")

    def env_job(self, job_types, env):
        b = self.bridge(job_types, env=env)
        job = b.create_job("env")
        done = self.wait_job(b, job["id"], ("COMPLETED", "DEAD_LETTER"), 30)
        self.assertEqual(done["status"], "COMPLETED", done["error_message"])
        events = [e for e in b.events(10, 20) if e[0].startswith("job.completed")]
        self.assertEqual(len(events), 1)
        return done, events[0]

    def secret_env(self):
        host = jbtest.DB_URL.split("@", 1)[1]  # trust authentication ignores the password
        return {"JOBBRIDGE_DATABASE_URL": f"postgresql://jobbridge:{SECRET}@{host}",
                "JB_OTHER_SECRET": SECRET, "JB_PASSED": "passed", "LANG": "C.UTF-8"}

    PRINT_ENV = ("import json, os, sys; sys.stdin.read(); "
                 "print(json.dumps({'env': dict(os.environ)}))")

    def test_handler_does_not_see_jobbridges_secrets(self):
        done, event = self.env_job(
            {"env": {"handler": "exec", "command": ["/usr/bin/python3", "-c", self.PRINT_ENV]}},
            self.secret_env())
        for where, text in (("result", json.dumps(done["result"])),
                            ("job.completed event", json.dumps(event[2]))):
            self.assertNotIn(SECRET, text, f"the password is in the {where}")
            self.assertNotIn("guest:guest", text, f"the AMQP password is in the {where}")
        names = set(done["result"]["env"])
        # The allowlist, and what issue 16 gives every run: its progress descriptor and the
        # job's trace context.
        self.assertLessEqual(names, {"JOBBRIDGE_JOB_ID", "JOBBRIDGE_JOB_TYPE", "PATH", "HOME",
                                     "LANG", "TZ", "JOBBRIDGE_PROGRESS_FD", "TRACEPARENT",
                                     "TRACESTATE"})
        self.assertEqual(done["result"]["env"]["JOBBRIDGE_JOB_ID"], done["id"])
        self.assertEqual(done["result"]["env"]["LANG"], "C.UTF-8")

    def test_env_and_env_passthrough_reach_the_handler(self):
        done, _ = self.env_job(
            {"env": {"handler": "exec", "command": ["/usr/bin/python3", "-c", self.PRINT_ENV],
                     "env": {"FIXED": "a=b c"}, "env_passthrough": ["JB_PASSED", "JB_UNSET"]}},
            self.secret_env())
        env = done["result"]["env"]
        self.assertEqual(env["FIXED"], "a=b c")
        self.assertEqual(env["JB_PASSED"], "passed")
        self.assertNotIn("JB_UNSET", env)
        self.assertNotIn("JB_OTHER_SECRET", env)
        self.assertNotIn(SECRET, json.dumps(env))

    def test_check_config_names_a_bad_env_key(self):
        b = jbtest.Bridge(BIN, SRC, [], {"env": sh("true", env_passthrough=["A=B"])})
        self.bridges.append(b)
        out = subprocess.run([BIN, "check-config", "--config", b.config], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("job_types.env.env_passthrough[0]", out.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])
