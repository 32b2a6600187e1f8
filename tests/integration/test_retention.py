"""Retention with real servers.

- churn: JB_RETENTION_JOBS jobs (default 200,000; tests/CMakeLists.txt may set fewer) run through
  two instances continuously (noop handler, inserted in chunks with INSERT ... SELECT while the
  workers run), with retention.completed "3s" and a pruning every second. The jobs table's row
  count stays bounded and its size (pg_total_relation_size) stops growing after the first cycles;
  both curves are printed and drawn by gnuplot as retention.png in the build folder. A trigger
  raises if a delete ever touches a job that is not finished, and sentinel jobs (waiting and
  running, their completed_at and failed_at set long ago) must all survive. Only one of the two
  instances prunes (the advisory lock).
- cli: `jobbridge prune --dry-run` counts without deleting, `jobbridge prune` deletes finished
  jobs of each status past their retention with their attempts and set-aside outbox rows, and
  keeps the rest; bad durations are config errors naming the key.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]
BUILD = os.path.dirname(os.path.abspath(BINARY))
TOTAL = int(os.environ.get("JB_RETENTION_JOBS", "200000"))
CHUNK = 5000


def q(sql):
    return jbtest.psql(sql).strip()


GUARD = """
CREATE FUNCTION {s}.only_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status NOT IN ('COMPLETED', 'FAILED', 'DEAD_LETTER') THEN
    RAISE EXCEPTION 'retention deleted job % in status %', OLD.id, OLD.status;
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER only_finished BEFORE DELETE ON {s}.jobs
  FOR EACH ROW EXECUTE FUNCTION {s}.only_finished();
"""

# Jobs retention must never touch, whatever their timestamps say: waiting ones (due in a year,
# so no worker claims them) and RUNNING ones under a lease nobody renews (a year long).
SENTINELS = """
INSERT INTO {s}.jobs (id, job_type, payload, status, scheduled_at, completed_at, failed_at,
                      locked_by, locked_until)
SELECT gen_random_uuid(), 'noop', '{{}}', st, now() + interval '1 year',
       now() - interval '1 year', now() - interval '1 year',
       CASE WHEN st = 'RUNNING' THEN 'nobody' END,
       CASE WHEN st = 'RUNNING' THEN now() + interval '1 year' END
FROM unnest(ARRAY['PENDING', 'SCHEDULED', 'RETRYING', 'RUNNING']) st, generate_series(1, 25)
"""


def finished_rows(schema, status, n, age):
    """n jobs that finished `age` ago in `status`, each with two attempts and a set-aside
    outbox row, plus an outbox row still to publish."""
    col = "completed_at" if status == "COMPLETED" else "failed_at"
    q(f"""
    WITH j AS (INSERT INTO {schema}.jobs (id, job_type, payload, status, {col}, attempts)
               SELECT gen_random_uuid(), 'noop', '{{}}', '{status}', now() - interval '{age}', 2
               FROM generate_series(1, {n}) RETURNING id),
    a AS (INSERT INTO {schema}.job_attempts (job_id, attempt, outcome)
          SELECT id, k, '{status}' FROM j, generate_series(1, 2) k)
    INSERT INTO {schema}.outbox (job_id, event_type, routing_key, data, failed_at, failed_reason)
    SELECT id, 'job.x', 'job.x', '{{}}', CASE WHEN k = 1 THEN now() END, 'test'
    FROM j, generate_series(1, 2) k""")


class Retention(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.bridges = []

    def tearDown(self):
        for b in self.bridges:
            b.close()

    def bridge(self, **over):
        b = jbtest.Bridge(BINARY, SOURCE, [], {"noop": {"handler": "noop"}}, **over)
        self.bridges.append(b)
        return b

    def prune(self, b, *args):
        out = subprocess.run([BINARY, "prune", *args, "--config", b.config],
                             capture_output=True, text=True, timeout=120)
        return out

    def test_cli_prune_and_dry_run(self):
        b = self.bridge(retention={"completed": "1h", "failed": "2d", "dead_letter": "90m"})
        b.migrate()
        s = b.schema
        q(GUARD.format(s=s))
        q(SENTINELS.format(s=s))
        finished_rows(s, "COMPLETED", 30, "2 hours")    # past 1h: pruned
        finished_rows(s, "COMPLETED", 7, "30 minutes")  # kept
        finished_rows(s, "FAILED", 11, "3 days")        # past 2d: pruned
        finished_rows(s, "FAILED", 5, "1 day")          # kept
        finished_rows(s, "DEAD_LETTER", 13, "2 hours")  # past 90m: pruned
        before = int(q(f"SELECT count(*) FROM {s}.jobs"))
        dry = self.prune(b, "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        want = {"completed": 30, "failed": 11, "dead_letter": 13, "attempts": 2 * 54,
                "outbox": 54}
        got = json.loads(dry.stdout)
        self.assertTrue(got["dry_run"])
        self.assertEqual({k: got[k] for k in want}, want)
        self.assertEqual(int(q(f"SELECT count(*) FROM {s}.jobs")), before)  # nothing deleted
        real = self.prune(b)
        self.assertEqual(real.returncode, 0, real.stderr)
        got = json.loads(real.stdout)
        self.assertFalse(got["dry_run"])
        self.assertEqual({k: got[k] for k in want}, want)
        self.assertEqual(int(q(f"SELECT count(*) FROM {s}.jobs")), before - 54)
        self.assertEqual(q(f"SELECT count(*) FROM {s}.jobs WHERE status NOT IN "
                           "('COMPLETED','FAILED','DEAD_LETTER')"), "100")
        # Attempts and set-aside outbox rows of kept jobs stay, and no row still to publish
        # was deleted (54 + 12 of them).
        self.assertEqual(q(f"SELECT count(*) FROM {s}.job_attempts"), str(2 * 12))
        self.assertEqual(q(f"SELECT count(*) FROM {s}.outbox WHERE failed_at IS NULL"), "66")
        self.assertEqual(q(f"SELECT count(*) FROM {s}.outbox WHERE failed_at IS NOT NULL"), "12")
        again = json.loads(self.prune(b).stdout)
        self.assertEqual(again["completed"] + again["failed"] + again["dead_letter"], 0)

    def test_bad_durations(self):
        for value, words in (("7", "followed by one unit"), ("1w", "followed by one unit"),
                             ("", "is empty"), ("h", "whole number"),
                             ("99999999999d", "longer than 100 years")):
            b = self.bridge(retention={"failed": value})
            out = self.prune(b, "--dry-run")
            self.assertEqual(out.returncode, 2, out.stderr)
            self.assertIn("retention.failed", out.stderr)
            self.assertIn(words, out.stderr)
        b = self.bridge(events={"lifecycle": ["finished"]})
        out = self.prune(b, "--dry-run")
        self.assertEqual(out.returncode, 2)
        self.assertIn("events.lifecycle[0]", out.stderr)

    def test_churn(self):
        over = dict(retention={"completed": "3s", "interval_s": 1, "batch": 2000},
                    workers={"poll_ms": 200})
        a = self.bridge(**over)
        a.migrate()
        s = a.schema
        b = self.bridge(**over)
        b.cfg["database"]["schema"] = s  # a second instance on the same tables
        b.write_config(b.cfg)
        q(GUARD.format(s=s))
        q(SENTINELS.format(s=s))
        a.start(wait_consuming=False)
        b.start(wait_consuming=False)
        curve = []  # (seconds, rows, bytes, inserted)
        inserted = 0
        t0 = time.time()
        deadline = t0 + 900
        while time.time() < deadline:
            waiting = int(q(f"SELECT count(*) FROM {s}.jobs WHERE status = 'PENDING'"))
            if inserted < TOTAL and waiting < CHUNK:
                n = min(CHUNK, TOTAL - inserted)
                q(f"INSERT INTO {s}.jobs (id, job_type, payload, status) SELECT "
                  f"gen_random_uuid(), 'noop', '{{}}', 'PENDING' FROM generate_series(1, {n})")
                inserted += n
            rows, size = q(f"SELECT count(*), pg_total_relation_size('{s}.jobs') "
                           f"FROM {s}.jobs").split("|")
            curve.append((round(time.time() - t0, 1), int(rows), int(size), inserted))
            if inserted == TOTAL and int(rows) <= 100:  # only the sentinels are left
                break
            time.sleep(0.5)
        a.stop()
        b.stop()
        elapsed = time.time() - t0
        self.report(curve)
        rows_final = curve[-1][1]
        self.assertLessEqual(rows_final, 100, f"not everything ran and was pruned in {elapsed}s")
        # Every sentinel is still there, untouched.
        self.assertEqual(q(f"SELECT count(*) FROM {s}.jobs WHERE status IN "
                           "('PENDING','SCHEDULED','RETRYING','RUNNING')"), "100")
        logs = a.logs() + b.logs()
        self.assertNotIn("pruning failed", logs)
        self.assertEqual(logs.count("this instance prunes finished jobs"), 1)
        pruned = 0
        for line in logs.splitlines():
            if '"retention totals"' in line:
                pruned += json.loads(line)["completed"]
        self.assertEqual(pruned, TOTAL)
        self.assertEqual(q(f"SELECT count(*) FROM {s}.job_attempts"), "0")
        # Bounded: never more than a fraction of what ran (the backlog of one chunk plus what
        # finishes within a retention and a pruning interval, with room for a slow machine).
        peak = max(r for _, r, _, _ in curve)
        self.assertLess(peak, max(TOTAL // 2, 40000), "the jobs table kept growing")
        # The size stops growing after the first cycles: the second half of the run never
        # needs more than 1.5 times the largest size of its first quarter.
        n = len(curve)
        first = max(sz for _, _, sz, _ in curve[: max(1, n // 4)])
        late = max(sz for _, _, sz, _ in curve[n // 2:])
        self.assertLess(late, first * 1.5, "the jobs table's size kept growing")
        print(f"{TOTAL} jobs in {elapsed:.0f}s; peak {peak} rows; size first quarter {first}, "
              f"second half {late}", file=sys.stderr)

    def report(self, curve):
        data = os.path.join(BUILD, "retention.dat")
        with open(data, "w") as f:
            f.write("# seconds rows bytes inserted\n")
            for t, r, sz, ins in curve:
                f.write(f"{t} {r} {sz} {ins}\n")
        print("seconds rows bytes inserted", file=sys.stderr)
        for t, r, sz, ins in curve[:: max(1, len(curve) // 40)]:
            print(t, r, sz, ins, file=sys.stderr)
        if shutil.which("gnuplot"):
            png = os.path.join(BUILD, "retention.png")
            script = (f"set terminal png size 1000,600 noenhanced; set output '{png}';"
                      "set xlabel 'seconds'; set ylabel 'rows'; set y2label 'MB';"
                      "set y2tics; set ytics nomirror; set key top left;"
                      f"plot '{data}' using 1:2 with lines title 'jobs rows' axes x1y1,"
                      f" '' using 1:($3/1048576) with lines title 'pg_total_relation_size (MB)'"
                      " axes x1y2, '' using 1:($4/10) with lines title 'inserted / 10' axes x1y1")
            subprocess.run(["gnuplot", "-e", script], check=True, timeout=60)
            print("drawn:", png, file=sys.stderr)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
