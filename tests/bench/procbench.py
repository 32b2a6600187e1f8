#!/usr/bin/env python3
"""Issue 16's process handler benchmark: jobbridge's process handler jobs/s beside a raw pipe
round trip to the same worker program, in the same run.

  process   N jobs inserted PENDING by SQL, then `jobbridge run` with one job type of handler
            `process` (`processes` = P, workers.threads = W); jobs/s = N / (last completed_at -
            first started_at), from the jobs' own timestamps (start-up and polling not counted)
  raw pipe  proc_bench pipe: P copies of the same worker, one thread each writing one job line
            (the shape jobbridge writes) and reading its answer, as fast as possible
  noop      the same N jobs and workers with the noop handler: the worker pool's own ceiling
            (claim, finish, outbox), which bounds every handler

for the Python example worker (tests/integration/workers/worker.py) and the C worker
(proc_bench worker). Run by tests/bench/procbench.sh (which builds and starts the servers):
  procbench.py BUILD_DIR PROC_BENCH [--jobs N] [--reps R] [--processes P] [--threads W] [--quick]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

DB_URL = os.environ["JOBBRIDGE_DATABASE_URL"]
HERE = os.path.dirname(os.path.abspath(__file__))
PY_WORKER = ["/usr/bin/python3", os.path.join(HERE, "..", "integration", "workers", "worker.py")]


def psql(sql):
    out = subprocess.run(["psql", DB_URL, "-AtXq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Bench:
    def __init__(self, args):
        self.jb = os.path.join(args.build, "jobbridge")
        self.tool = os.path.abspath(args.tool)
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="jbpbench.")

    def run_jobs(self, job_type_cfg):
        """args.jobs jobs of one type through jobbridge; returns jobs/s."""
        n, tag = self.args.jobs, uuid.uuid4().hex[:8]
        schema = "pbench_" + tag
        cfg = {"database": {"schema": schema}, "http": {"listen": None},
               "amqp": {"input": {"exchange": "ev." + tag, "queue": "q." + tag,
                                  "dead_letter_exchange": "dl." + tag},
                        "output": {"exchange": "out." + tag}},
               "workers": {"threads": self.args.threads, "lease_s": 60},
               "job_types": {"p": job_type_cfg}}
        path = os.path.join(self.tmp, tag + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        subprocess.run([self.jb, "migrate", "--config", path], check=True, capture_output=True)
        psql(f"INSERT INTO {schema}.jobs (id, job_type, payload, status) SELECT "
             f"gen_random_uuid(), 'p', jsonb_build_object('n', g, 'pad', repeat('x', 100)), "
             f"'PENDING' FROM generate_series(1, {n}) g")
        log = open(os.path.join(self.tmp, tag + ".log"), "w")
        proc = subprocess.Popen([self.jb, "run", "--config", path], stdout=subprocess.DEVNULL,
                                stderr=log)
        try:
            deadline = time.time() + 900
            while time.time() < deadline:
                time.sleep(0.5)
                if int(psql(f"SELECT count(*) FROM {schema}.jobs WHERE status NOT IN "
                            f"('PENDING', 'RUNNING')")) >= n:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"jobbridge exited {proc.returncode}")
            bad = psql(f"SELECT count(*) FROM {schema}.jobs WHERE status <> 'COMPLETED'")
            if bad != "0":
                raise RuntimeError(f"{bad} jobs did not complete: " + psql(
                    f"SELECT error_message FROM {schema}.jobs WHERE status <> 'COMPLETED' "
                    f"LIMIT 1"))
            wrong = psql(f"SELECT count(*) FROM {schema}.jobs WHERE (result->>'n')::int "
                         f"IS DISTINCT FROM (payload->>'n')::int") \
                if job_type_cfg["handler"] == "process" else "0"
            if wrong != "0":
                raise RuntimeError(f"{wrong} jobs got another job's result")
            span = float(psql(f"SELECT extract(epoch FROM max(completed_at) - min(started_at)) "
                              f"FROM {schema}.jobs"))
            return n / span
        finally:
            proc.terminate()
            proc.wait(timeout=120)
            log.close()
            psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def raw_pipe(self, worker):
        out = subprocess.run([self.tool, "pipe", str(self.args.jobs), str(self.args.processes),
                              *worker], capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError("proc_bench pipe: " + out.stderr)
        return json.loads(out.stdout)["rate"]

    def run(self):
        workers = {"python": PY_WORKER, "c": [self.tool, "worker"]}
        runs = []
        for rep in range(self.args.reps):
            r = {"load_before": loadavg()}
            r["noop"] = self.run_jobs({"handler": "noop"})
            for name, argv in workers.items():
                r[f"raw_{name}"] = self.raw_pipe(argv)
                r[f"process_{name}"] = self.run_jobs(
                    {"handler": "process", "command": argv, "processes": self.args.processes,
                     "timeout_s": 60})
            r["load_after"] = loadavg()
            print(f"rep {rep + 1}: " + ", ".join(f"{k} {v:,.1f}" for k, v in r.items()),
                  flush=True)
            runs.append(r)
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        a = self.args
        print(f"\nN={a.jobs} jobs, {a.reps} repetition(s), medians; processes={a.processes}, "
              f"workers.threads={a.threads}; load average {med['load_before']:.1f} before, "
              f"{med['load_after']:.1f} after (on {os.cpu_count()} cores)")
        print("| worker | process handler jobs/s | raw pipe round trips/s | ratio | target |")
        print("|---|---|---|---|---|")
        for name in workers:
            ratio = statistics.median(r[f"process_{name}"] / r[f"raw_{name}"] for r in runs)
            ok = med[f"process_{name}"] >= 10000 and ratio >= 0.5
            print(f"| {name} | {med[f'process_{name}']:,.0f} | {med[f'raw_{name}']:,.0f} | "
                  f"{ratio:.2f}x | >= 10,000/s and >= 0.5x: {'met' if ok else 'missed'} |")
        print(f"| (reference) noop handler, same workers | {med['noop']:,.0f} | | | the pool's "
              f"own ceiling: claim, finish, outbox |")
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("tool", help="the proc_bench binary")
    ap.add_argument("--jobs", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0,
                    help="workers.threads (0: as many as processes)")
    ap.add_argument("--quick", action="store_true", help="2,000 jobs, one repetition")
    args = ap.parse_args()
    if args.quick:
        args.jobs, args.reps = 2000, 1
    if args.threads == 0:
        args.threads = args.processes
    sys.exit(Bench(args).run())


if __name__ == "__main__":
    main()
