#!/usr/bin/env python3
"""Issue 16's handler benchmark, each figure beside its raw ceiling in the same run:

  http   jobbridge's http handler jobs/s against `wrk` on the same local endpoint, and noop
         jobs/s with the same workers (what the pool does without a handler)
         (handler_bench sink: libmicrohttpd, epoll, a thread per core, 200 {"ok":true})
  exec   jobbridge's exec handler jobs/s (/bin/true) against a raw spawn-and-wait loop of the
         same program (handler_bench spawn, posix_spawn + waitpid, as many threads as workers)

Jobs are inserted PENDING by SQL, then jobbridge starts; a rate is N / (last completed_at -
first started_at), from the jobs' own timestamps, so start-up and the watcher's polling are not
counted. Run by tests/bench/handlers.sh (which starts the servers); usage:
  handlers.py BUILD_DIR HANDLER_BENCH [--jobs N] [--exec-jobs M] [--reps R] [--http-workers W]
              [--exec-only]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

DB_URL = os.environ["JOBBRIDGE_DATABASE_URL"]


def psql(sql):
    out = subprocess.run(["psql", DB_URL, "-AtXq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


class Bench:
    def __init__(self, args):
        self.jb = os.path.join(args.build, "jobbridge")
        self.tool = args.tool
        self.n = args.jobs
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="jbhbench.")

    def run_jobs(self, job_type_cfg, threads, n):
        """n jobs of one type through jobbridge; returns jobs/s."""
        tag = uuid.uuid4().hex[:8]
        schema = "hbench_" + tag
        cfg = {"database": {"schema": schema}, "http": {"listen": None},
               "amqp": {"input": {"exchange": "ev." + tag, "queue": "q." + tag,
                                  "dead_letter_exchange": "dl." + tag},
                        "output": {"exchange": "out." + tag}},
               "workers": {"threads": threads, "lease_s": 60},
               "job_types": {"t": job_type_cfg}}
        path = os.path.join(self.tmp, tag + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        subprocess.run([self.jb, "migrate", "--config", path], check=True, capture_output=True)
        psql(f"INSERT INTO {schema}.jobs (id, job_type, payload, status) SELECT "
             f"gen_random_uuid(), 't', jsonb_build_object('n', g, 'pad', repeat('x', 100)), "
             f"'PENDING' FROM generate_series(1, {n}) g")
        log = open(os.path.join(self.tmp, tag + ".log"), "w")
        proc = subprocess.Popen([self.jb, "run", "--config", path], stdout=subprocess.DEVNULL,
                                stderr=log)
        try:
            deadline = time.time() + 900
            while time.time() < deadline:
                time.sleep(0.5)
                done = int(psql(f"SELECT count(*) FROM {schema}.jobs WHERE status NOT IN "
                                f"('PENDING', 'RUNNING')"))
                if done >= n:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"jobbridge exited {proc.returncode}")
            bad = psql(f"SELECT count(*) FROM {schema}.jobs WHERE status <> 'COMPLETED'")
            if bad != "0":
                raise RuntimeError(f"{bad} jobs did not complete: " + psql(
                    f"SELECT error_message FROM {schema}.jobs WHERE status <> 'COMPLETED' "
                    f"LIMIT 1"))
            span = float(psql(f"SELECT extract(epoch FROM max(completed_at) - min(started_at)) "
                              f"FROM {schema}.jobs"))
            return n / span
        finally:
            proc.terminate()
            proc.wait(timeout=120)
            log.close()
            psql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    def wrk(self, url, connections, seconds=5):
        script = os.path.join(self.tmp, "post.lua")
        body = json.dumps({"id": str(uuid.uuid4()), "job_type": "t", "queue_name": "default",
                           "payload": {"n": 1, "pad": "x" * 100}, "metadata": {},
                           "retry_count": 0, "max_retries": 3})
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f"wrk.body = {json.dumps(body)}\n")
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script,
                              url], capture_output=True, text=True, timeout=seconds + 60)
        m = re.search(r"Requests/sec:\s+([0-9.]+)", out.stdout)
        if not m:
            raise RuntimeError("wrk: " + out.stdout + out.stderr)
        return float(m.group(1))

    def spawn(self, threads):
        out = subprocess.run([self.tool, "spawn", str(self.args.exec_jobs), str(threads), "/bin/true"],
                             capture_output=True, text=True, timeout=900, check=True)
        return json.loads(out.stdout)["rate"]

    def run(self):
        sink = subprocess.Popen([self.tool, "sink"], stdout=subprocess.PIPE, text=True)
        port = int(sink.stdout.readline())
        url = f"http://127.0.0.1:{port}/jobs"
        w = self.args.http_workers
        exec_workers = max(4, 2 * os.cpu_count())  # workers.threads 0: jobbridge's default
        runs = []
        try:
            for rep in range(self.args.reps):
                r = {}
                if not self.args.exec_only:
                    r = {"wrk": self.wrk(url, w),
                         "noop": self.run_jobs({"handler": "noop"}, w, self.n),
                         "http": self.run_jobs({"handler": "http", "url": url + "/{id}",
                                                "timeout_s": 30}, w, self.n)}
                r["raw_spawn"] = self.spawn(exec_workers)
                r["exec"] = self.run_jobs({"handler": "exec", "command": ["/bin/true"]}, 0,
                                          self.args.exec_jobs)
                print(f"rep {rep + 1}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in r.items()),
                      flush=True)
                runs.append(r)
        finally:
            sink.terminate()
            sink.wait()
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        exec_ratio = statistics.median(r["exec"] / r["raw_spawn"] for r in runs)
        if self.args.exec_only:
            print(f"\n{self.args.exec_jobs} exec jobs, {self.args.reps} repetition(s), medians: "
                  f"exec handler {med['exec']:,.0f}/s, raw spawn {med['raw_spawn']:,.0f}/s "
                  f"({exec_workers} threads), ratio {exec_ratio:.2f}x (target >= 0.7x: "
                  f"{'met' if exec_ratio >= 0.7 else 'missed'})")
            return 0
        http_ratio = statistics.median(r["http"] / r["wrk"] for r in runs)
        print(f"\nN={self.n} http jobs, {self.args.exec_jobs} exec jobs, {self.args.reps} "
              f"repetition(s), medians; http handler with "
              f"workers.threads={w}, wrk with -c{w}; exec with the default workers, raw spawn "
              f"with {exec_workers} threads")
        print(f"| figure | jobs/s | ceiling/s | ratio | target |\n|---|---|---|---|---|")
        print(f"| http handler vs wrk | {med['http']:,.0f} | {med['wrk']:,.0f} | "
              f"{http_ratio:.2f}x | >= 5,000/s and >= 0.5x: "
              f"{'met' if med['http'] >= 5000 and http_ratio >= 0.5 else 'missed'} |")
        print(f"| (reference) noop jobs, same workers | {med['noop']:,.0f} | | | the pool's own "
              f"ceiling: claim, finish, outbox |")
        print(f"| exec handler vs raw spawn | {med['exec']:,.0f} | {med['raw_spawn']:,.0f} | "
              f"{exec_ratio:.2f}x | >= 0.7x: {'met' if exec_ratio >= 0.7 else 'missed'} |")
        return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("tool")
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--exec-jobs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--http-workers", type=int, default=8)
    ap.add_argument("--exec-only", action="store_true",
                    help="only the exec handler and its raw spawn ceiling")
    return Bench(ap.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
