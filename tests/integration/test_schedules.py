#!/usr/bin/env python3
"""Issue 14, item 1: the ScheduleTrigger against real servers. Three instances run the same
schedules, firing every second, for 31 s: exactly one job per firing (every second present, one
job each, dedupe keys schedule:<name>:<fire time>). All stop across several firings and restart:
skip creates nothing for the missed firings, once one job (the latest), all every one. SIGHUP
adds, changes and removes a schedule. Then `schedules list` and `schedules run NAME`.

usage: test_schedules.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN = sys.argv[1]
SRC = sys.argv[2]
EVERY_SECOND = "* * * * * *"  # seconds field last (croniter's convention)


def ts(rfc3339):
    return int(datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp())


def schedule(name, cron, misfire="skip", **kw):
    return dict({"name": name, "cron": cron, "job_type": "tick", "misfire": misfire,
                 "misfire_max": 1000, "payload": {"from": name}}, **kw)


class Instances:
    """n jobbridge processes on one config (one schema), each with its own log."""

    def __init__(self, bridge):
        self.b = bridge
        self.procs = []

    def start_one(self):
        i = len(self.procs)
        log = open(os.path.join(self.b.tmp.name, f"i{i}.log"), "a")
        p = subprocess.Popen([BIN, "run", "--config", self.b.config], stdout=subprocess.DEVNULL,
                             stderr=log)
        self.procs.append((p, log))
        return i

    def log(self, i):
        with open(os.path.join(self.b.tmp.name, f"i{i}.log")) as f:
            return f.read()

    def wait_log(self, i, needle, timeout=60, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.log(i).count(needle) >= count:
                return
            p = self.procs[i][0]
            if p.poll() is not None:
                raise AssertionError(f"instance {i} exited {p.returncode}:\n{self.log(i)}")
            time.sleep(0.1)
        raise AssertionError(f"no {needle} in instance {i}'s log:\n{self.log(i)[-3000:]}")

    def signal_all(self, sig):
        for p, _ in self.procs:
            if p.poll() is None:
                p.send_signal(sig)

    def stop_all(self):
        self.signal_all(signal.SIGTERM)
        for p, log in self.procs:
            self.b.proc = None
            assert p.wait(timeout=60) == 0, "an instance did not stop cleanly"
            log.close()
        logs = "".join(self.log(i) for i in range(len(self.procs)))
        for marker in ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
            assert marker not in logs, logs[-6000:]
        self.procs = []


class Schedules(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.b = jbtest.Bridge(BIN, SRC, [], {"tick": {"handler": "noop"}},
                               workers__threads=2, ingest__consumers=1,
                               http__listen="127.0.0.1:0",  # main refuses null here today
                               schedules=[schedule("skip", EVERY_SECOND),
                                          schedule("once", EVERY_SECOND, "once"),
                                          schedule("all", EVERY_SECOND, "all")])
        self.n = Instances(self.b)

    def tearDown(self):
        for p, log in self.n.procs:
            p.kill()
            p.wait()
            log.close()
        self.b.close()

    def fired(self):
        """schedule name -> {fire time (s): [(dedupe key, misfire)]}"""
        out = {}
        rows = jbtest.psql(
            f"SELECT metadata->>'schedule', metadata->>'fire_time', dedupe_key, "
            f"coalesce(metadata->>'misfire', ''), payload->>'from' FROM {self.b.schema}.jobs")
        for line in rows.splitlines():
            name, fire, key, misfire, origin = line.split("|")
            self.assertEqual(key, f"schedule:{name}:{fire}")
            self.assertEqual(origin, name)
            out.setdefault(name, {}).setdefault(ts(fire), []).append((key, misfire))
        return out

    def catch_up_line(self, i, name):
        for line in self.n.log(i).splitlines():
            if '"schedule catch-up"' in line and f'"schedule":"{name}"' in line.replace(" ", ""):
                return json.loads(line)
        raise AssertionError(f"no catch-up line for {name}:\n{self.n.log(i)[-3000:]}")

    def test_three_instances_misfires_and_reload(self):
        # 1. Three instances, every second, 31 s: one job per firing.
        for _ in range(3):
            self.n.start_one()
        for i in range(3):
            self.n.wait_log(i, '"schedules started"')
        begin = int(time.time()) + 2
        time.sleep(31)
        end = int(time.time()) - 2
        self.n.stop_all()
        fired = self.fired()
        for name in ("skip", "once", "all"):
            times = fired[name]
            for t in range(begin, end + 1):
                self.assertIn(t, times, f"{name}: no job for the firing at {t}")
            for t, jobs in times.items():
                self.assertEqual(len(jobs), 1, f"{name}: {len(jobs)} jobs for firing {t}")
            self.assertGreaterEqual(end - begin, 25)
        last = {name: max(fired[name]) for name in fired}

        # 2. All stopped across several firings, then restarted: each policy honoured. The first
        # instance's catch-up is checked; the others start once it has logged it.
        time.sleep(6)
        self.n.start_one()
        self.n.wait_log(0, '"schedules started"')
        for name in ("once", "all"):
            self.n.wait_log(0, f'"schedule":"{name}"', 30)
        self.n.wait_log(0, '"schedule catch-up"', 30, count=3)
        lines = {name: self.catch_up_line(0, name) for name in ("skip", "once", "all")}
        for _ in range(2):
            self.n.start_one()
        for i in (1, 2):
            self.n.wait_log(i, '"schedules started"')
        time.sleep(2)
        fired = self.fired()
        for name, line in lines.items():
            until = ts(line["until"])
            missed = [t for t in fired[name] if last[name] < t <= until]
            self.assertGreaterEqual(until - last[name], 6, line)
            self.assertEqual(line["missed"], until - last[name], line)
            if name == "skip":
                self.assertEqual(missed, [], f"skip created catch-up jobs: {line}")
            elif name == "once":
                self.assertEqual(missed, [until], line)
                self.assertEqual(fired[name][until][0][1], "once")
            else:
                self.assertEqual(sorted(missed), list(range(last[name] + 1, until + 1)), line)
                self.assertTrue(all(fired[name][t][0][1] == "all" for t in missed))
            # On time again after the catch-up.
            self.assertIn(until + 2, fired[name], f"{name}: not firing after the restart")

        # 3. SIGHUP: remove skip, change once to even seconds, add added.
        cfg = dict(self.b.cfg)
        cfg["schedules"] = [schedule("once", "* * * * * */2"), schedule("all", EVERY_SECOND),
                            schedule("added", EVERY_SECOND)]
        self.b.write_config(cfg)
        self.n.signal_all(signal.SIGHUP)
        for i in range(3):
            self.n.wait_log(i, '"schedules reloaded"')
        since = int(time.time()) + 2
        time.sleep(7)
        upto = int(time.time()) - 2
        self.n.stop_all()
        fired = self.fired()
        self.assertEqual([t for t in fired["skip"] if t >= since], [], "removed skip still fires")
        after = sorted(t for t in fired["once"] if since <= t <= upto)
        self.assertTrue(after and all(t % 2 == 0 for t in after), after)
        self.assertEqual(after, [t for t in range(since, upto + 1) if t % 2 == 0])
        for name in ("all", "added"):
            for t in range(since, upto + 1):
                self.assertEqual(len(fired[name].get(t, [])), 1, f"{name} at {t}")

    def test_cli_list_and_run(self):
        out = subprocess.run([BIN, "schedules", "list", "--config", self.b.config],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        listed = json.loads(out.stdout)
        self.assertEqual([s["name"] for s in listed], ["skip", "once", "all"])
        for s in listed:
            self.assertEqual(len(s["next"]), 5)
            utc = [ts(n["utc"]) for n in s["next"]]
            self.assertEqual(utc, list(range(utc[0], utc[0] + 5)))
        out = subprocess.run([BIN, "migrate", "--config", self.b.config], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = subprocess.run([BIN, "schedules", "run", "once", "--config", self.b.config],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        job_id = json.loads(out.stdout)["job_id"]
        rows = jbtest.psql(f"SELECT metadata->>'manual', metadata->>'schedule', "
                           f"dedupe_key IS NULL FROM {self.b.schema}.jobs WHERE id = '{job_id}'")
        self.assertEqual(rows.strip(), "true|once|t")
        out = subprocess.run([BIN, "schedules", "run", "nope", "--config", self.b.config],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 3)
        self.assertIn('no schedule named "nope"', out.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
