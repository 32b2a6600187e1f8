#!/usr/bin/env python3
"""jobbridge's benchmark: raw ceilings and jobbridge side by side, in one run, on the servers
started by tests/bench/run.sh. Each figure is the median of --reps runs.

usage: bench.py BUILD_DIR [--quick] [--events N] [--reps R]
"""
import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pika

DB_URL = os.environ["JOBBRIDGE_DATABASE_URL"]
AMQP_URL = os.environ["JOBBRIDGE_AMQP_URL"]


def psql(sql):
    out = subprocess.run(["psql", DB_URL, "-AtXq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def channel():
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL + "/%2F?heartbeat=60"))
    return conn, conn.channel()


class Bench:
    def __init__(self, build, n, reps, latency_s, consumers=0, only=None):
        self.consumers = consumers
        self.only = only
        self.build = build
        self.jb = os.path.join(build, "jobbridge")
        self.tool = os.path.join(build, "jb_bench")
        self.n, self.reps, self.latency_s = n, reps, latency_s
        self.tmp = tempfile.mkdtemp(prefix="jbbench.")

    def tool_json(self, *args, timeout=900):
        out = subprocess.run([self.tool, *map(str, args)], capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"jb_bench {args[0]} failed: {out.stderr}{out.stdout}")
        return json.loads(out.stdout)

    # --- raw ceilings ---

    def raw(self):
        q = "bench.raw." + uuid.uuid4().hex[:6]
        pub = self.tool_json("publish", AMQP_URL, "", q, self.n, "raw")
        con = self.tool_json("consume", AMQP_URL, q, self.n, 500)
        conn, ch = channel()
        ch.queue_delete(q)
        conn.close()
        pg = self.tool_json("pg-insert", DB_URL, self.n, 100)
        return {"raw_amqp_publish": pub["rate"], "raw_amqp_consume": con["rate"],
                "raw_pg_insert": pg["rate"]}

    # --- jobbridge ---

    def config(self, tag, mappings, job_types, **ingest_workers):
        cfg = {
            "amqp": {"heartbeat_s": 15,
                     "input": {"exchange": "ev." + tag, "queue": "q." + tag,
                               "dead_letter_exchange": "dl." + tag},
                     "output": {"exchange": "out." + tag}},
            "database": {"schema": "bench_" + tag},
            "ingest": {},  # jobbridge's defaults, unless --consumers says otherwise
            "workers": {"lease_s": 60},  # threads: jobbridge's default
            "retry": {"base_s": 1, "max_s": 60, "jitter": 0.2},
            "http": {"listen": None},  # the HTTP scenarios set their own
            "mappings": mappings,
            "job_types": job_types,
        }
        if self.consumers:
            cfg["ingest"]["consumers"] = self.consumers
        for section, values in ingest_workers.items():
            cfg[section].update(values)
        path = os.path.join(self.tmp, f"{tag}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        subprocess.run([self.jb, "migrate", "--config", path], check=True,
                       capture_output=True, timeout=60)
        conn, ch = channel()
        ch.exchange_declare("ev." + tag, "topic", durable=True)
        ch.exchange_declare("dl." + tag, "topic", durable=True)
        ch.queue_declare("q." + tag, durable=True,
                         arguments={"x-queue-type": "classic", "x-dead-letter-exchange": "dl." + tag})
        ch.queue_bind("q." + tag, "ev." + tag, "#")
        ch.exchange_declare("out." + tag, "topic", durable=True)
        ch.queue_declare("out." + tag, durable=True)
        ch.queue_bind("out." + tag, "out." + tag, "job.completed.#")
        conn.close()
        return path

    def cleanup(self, tag):
        psql(f"DROP SCHEMA IF EXISTS bench_{tag} CASCADE")
        conn, ch = channel()
        for q in ("q." + tag, "out." + tag, "dl." + tag):
            ch.queue_delete(q)
        conn.close()

    def start(self, path, tag):
        log = open(os.path.join(self.tmp, f"{tag}.log"), "w")
        return subprocess.Popen([self.jb, "run", "--config", path], stdout=subprocess.DEVNULL,
                                stderr=log)

    @staticmethod
    def stop(proc):
        proc.terminate()
        proc.wait(timeout=120)

    @staticmethod
    def peak_rss_mib(proc):
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return -1

    def wait_rows(self, schema, want, proc, queue, timeout=900):
        """The time every job row is committed. Counting rows costs the database a scan of the
        table (and a psql process), so it starts only once the broker holds no ready message
        for the queue (a cheap passive declare on one connection); from then on it polls."""
        deadline = time.time() + timeout
        conn, ch = channel()
        while time.time() < deadline:
            if ch.queue_declare(queue, passive=True).method.message_count == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError("jobbridge exited")
            time.sleep(0.05)
        conn.close()
        while time.time() < deadline:
            if int(psql(f"SELECT count(*) FROM {schema}.jobs")) >= want:
                return time.time()
            if proc.poll() is not None:
                raise RuntimeError("jobbridge exited")
            time.sleep(0.02)
        raise RuntimeError(f"timed out waiting for {want} jobs")

    def queue_drained(self, queue, timeout=60):
        """Ready + unacked messages of a queue reach zero (rabbitmqctl counts both)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["bash", "-c", f'source "{os.path.dirname(__file__)}/../../deploy/'
                                  f'servers.sh"; jb_rabbitmqctl "$JB_STATE_DIR" list_queues '
                                  f'name messages'], capture_output=True, text=True, timeout=60)
            for line in out.stdout.splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] == queue and parts[1] == "0":
                    return True
            time.sleep(0.2)
        return False

    def ingest(self):
        tag = uuid.uuid4().hex[:8]
        mappings = [{"event_type": "order.created", "job_type": "a"},
                    {"event_type": "user.signup", "job_type": "b"},
                    {"event_type": "invoice.paid", "job_type": "c"},
                    {"event_type": "order.#", "job_type": "audit", "queue": "audit"}]
        job_types = {t: {"handler": "noop"} for t in ("a", "b", "c", "audit")}
        # An ingest-only instance: this measures ingest alone.
        path = self.config(tag, mappings, job_types, workers={"enabled": False})
        self.tool_json("publish", AMQP_URL, "ev." + tag, "-", self.n, "events")
        want = self.n + (self.n + 2) // 3  # order.created fans out to a second job
        t0 = time.time()
        proc = self.start(path, tag)
        t1 = self.wait_rows("bench_" + tag, want, proc, "q." + tag)
        drained = self.queue_drained("q." + tag)
        rss = self.peak_rss_mib(proc)
        self.stop(proc)
        got = int(psql(f"SELECT count(*) FROM bench_{tag}.jobs"))
        self.cleanup(tag)
        if got != want or not drained:
            raise RuntimeError(f"ingest: {got} jobs (want {want}), queue drained: {drained}")
        return {"ingest_events_per_s": self.n / (t1 - t0), "peak_rss_mib": rss}

    def work(self):
        tag = uuid.uuid4().hex[:8]
        path = self.config(tag, [], {"noop": {"handler": "noop"}})
        psql(f"INSERT INTO bench_{tag}.jobs (id, job_type, payload, status, metadata) "
             f"SELECT gen_random_uuid(), 'noop', jsonb_build_object('n', g), 'PENDING', "
             f"jsonb_build_object('event_id', 'w-' || g) FROM generate_series(1, {self.n}) g")
        counter = subprocess.Popen([self.tool, "count", AMQP_URL, "out." + tag, str(self.n), "900"],
                                   stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        t0 = time.time()
        proc = self.start(path, tag)
        out, _ = counter.communicate(timeout=960)
        res = json.loads(out)
        self.stop(proc)
        left = int(psql(f"SELECT count(*) FROM bench_{tag}.jobs WHERE status <> 'COMPLETED'"))
        self.cleanup(tag)
        if res["count"] != self.n or left:
            raise RuntimeError(f"work: {res['count']} events, {left} jobs not completed")
        return {"work_jobs_per_s": self.n / (res["last"] - t0)}

    def latency(self):
        tag = uuid.uuid4().hex[:8]
        path = self.config(tag, [{"event_type": "lat.ping", "job_type": "noop"}],
                           {"noop": {"handler": "noop"}})
        proc = self.start(path, tag)
        time.sleep(1.5)
        res = self.tool_json("latency", AMQP_URL, "ev." + tag, 1000, self.latency_s, "out." + tag,
                             timeout=self.latency_s + 120)
        self.stop(proc)
        self.cleanup(tag)
        return {"latency_p50_ms": res["p50_ms"], "latency_p95_ms": res["p95_ms"],
                "latency_p99_ms": res["p99_ms"], "latency_max_ms": res["max_ms"],
                "latency_finish_to_receive_p50_ms": res["finish_to_receive_p50_ms"]}

    # --- the HTTP face ---

    def wrk(self, url, script, connections, seconds, latency=False):
        """Runs wrk (2 threads); returns requests/s, non-2xx count and, with latency, the
        percentiles (ms) wrk prints."""
        path = os.path.join(self.tmp, f"wrk-{uuid.uuid4().hex[:6]}.lua")
        with open(path, "w") as f:
            f.write(script)
        args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", path]
        out = subprocess.run(args + (["--latency"] if latency else []) + [url],
                             capture_output=True, text=True, timeout=seconds + 120)
        if out.returncode != 0:
            raise RuntimeError(f"wrk failed: {out.stderr}{out.stdout}")
        res = {"bad": 0, "requests": 0}
        units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
        for line in out.stdout.splitlines():
            parts = line.split()
            if line.startswith("Requests/sec:"):
                res["rate"] = float(parts[1])
            elif line.strip().startswith("Non-2xx or 3xx responses:"):
                res["bad"] = int(parts[-1])
            elif "requests in" in line:
                res["requests"] = int(parts[0])
            elif len(parts) == 2 and parts[0] in ("50%", "99%"):
                num = parts[1].rstrip("usm")
                unit = parts[1][len(num):]
                res["p" + parts[0][:-1]] = float(num) * units.get(unit, 1.0)
        return res

    @staticmethod
    def http_status(url, body, token):
        req = urllib.request.Request(url, data=body.encode(), method="POST", headers={
            "Content-Type": "application/json", "Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def http(self):
        """POST /v1/jobs (or GET /healthz while the Jobs API is not there) and a webhook at 64
        connections with wrk, beside the raw batched insert ceiling of the same run; and
        latency at a fixed 1,000 requests/s (wrk's delay(): 20 connections, each request about
        20 ms after the last answer, calibrated by a trial run)."""
        tag = uuid.uuid4().hex[:8]
        token = uuid.uuid4().hex
        http_cfg = {"listen": "127.0.0.1:0", "max_connections_per_ip": 0,
                    "tokens": [{"name": "bench", "sha256": hashlib.sha256(token.encode()).hexdigest(),
                                "scopes": ["read", "write", "admin"]}]}
        # jobbridge prints no key list; its effective config names http.webhooks when it has
        # the WebhookTrigger.
        empty = os.path.join(self.tmp, "empty.json")
        with open(empty, "w") as f:
            f.write("{}")
        dump = subprocess.run([self.jb, "check-config", "--config", empty],
                              capture_output=True, text=True).stdout
        webhooks = '"webhooks"' in dump
        if webhooks:
            http_cfg["webhooks"] = {"bench": {"mode": "job", "signature": "token",
                                              "allowed_job_types": ["noop"]}}
        # No workers: this measures job creation over HTTP, as ingest measures it over AMQP.
        path = self.config(tag, [], {"noop": {"handler": "noop"}}, workers={"enabled": False},
                           http=http_cfg)
        proc = self.start(path, tag)
        log = os.path.join(self.tmp, f"{tag}.log")
        base = None
        for _ in range(600):
            with open(log) as f:
                for line in f:
                    if '"http listening"' in line:
                        base = json.loads(line)["url"]
            if base or proc.poll() is not None:
                break
            time.sleep(0.1)
        if base is None:
            raise RuntimeError("http: jobbridge did not listen; see " + log)
        secs = 3 if self.n <= 3000 else 15
        auth = (f'wrk.headers["Authorization"] = "Bearer {token}"\n'
                'wrk.headers["Content-Type"] = "application/json"\n')
        post = auth + 'wrk.method = "POST"\nwrk.body = \'{"job_type": "noop", "payload": {"n": 1}}\'\n'
        fig = {}
        create = self.http_status(base + "/v1/jobs", '{"job_type": "noop", "payload": {}}', token)
        if create in (200, 201, 202):
            before = int(psql(f"SELECT count(*) FROM bench_{tag}.jobs"))
            r = self.wrk(base + "/v1/jobs", post, 64, secs)
            made = int(psql(f"SELECT count(*) FROM bench_{tag}.jobs")) - before
            # wrk counts the answers it read; up to one request per connection is still in
            # flight when it stops, and creates its job too.
            if r["bad"] or not r["requests"] <= made <= r["requests"] + 64:
                raise RuntimeError(f"http: {r['bad']} failed requests, {made} jobs for "
                                   f"{r['requests']} requests")
            fig["http_create_jobs_per_s"] = r["rate"]
            lat_url, lat_script = base + "/v1/jobs", post
        else:
            print(f"http: POST /v1/jobs answers {create}: measuring GET /healthz instead",
                  file=sys.stderr)
            lat_url, lat_script = base + "/healthz", ""
        fig["http_healthz_req_per_s"] = self.wrk(base + "/healthz", "", 64, secs)["rate"]
        if webhooks:
            hook = self.http_status(base + "/v1/webhooks/bench",
                                    '{"job_type": "noop", "payload": {}}', token)
            if hook in (200, 201, 202):
                r = self.wrk(base + "/v1/webhooks/bench", post, 64, secs)
                fig["http_webhook_per_s"] = r["rate"]
            else:
                print(f"http: the bench webhook answers {hook}: not measured", file=sys.stderr)
        # wrk waits delay() ms after each answer before a connection's next request: 20
        # connections 20 ms apart would be 1,000/s if an answer took no time. A 2 s trial run
        # measures the rest of each turn, and the delay is shortened by it.
        conns, want = 20, 1000.0
        trial = self.wrk(lat_url, lat_script + "function delay() return 20 end\n", conns, 2)
        turn_ms = conns * 1000.0 / max(trial["rate"], 1.0)
        wait_ms = max(1, round(20 - (turn_ms - 20)))
        wait_ms = min(wait_ms, round(conns * 1000.0 / want))
        r = self.wrk(lat_url, lat_script + f"function delay() return {wait_ms} end\n", conns,
                     secs, latency=True)
        fig.update({"http_fixed_rate_req_per_s": r["rate"], "http_latency_p50_ms": r["p50"],
                    "http_latency_p99_ms": r["p99"]})
        self.stop(proc)
        self.cleanup(tag)
        if "raw_pg_insert" not in self.last_raw:  # --only http: the ceiling in this run too
            fig["raw_pg_insert"] = self.tool_json("pg-insert", DB_URL, self.n, 100)["rate"]
        raw_insert = fig.get("raw_pg_insert") or self.last_raw["raw_pg_insert"]
        if "http_create_jobs_per_s" in fig:
            fig["http_create_over_raw_insert"] = fig["http_create_jobs_per_s"] / raw_insert
        return fig

    def run(self):
        runs = []
        for r in range(self.reps):
            fig = {}
            self.last_raw = fig
            for part in (self.raw, self.ingest, self.work, self.latency, self.http):
                if self.only is None or part.__name__ in self.only:
                    fig.update(part())
            if self.only is None:
                fig["ingest_over_raw_consume"] = fig["ingest_events_per_s"] / fig["raw_amqp_consume"]
                fig["work_over_raw_publish"] = fig["work_jobs_per_s"] / fig["raw_amqp_publish"]
            print(f"run {r + 1}/{self.reps}: " + json.dumps({k: round(v, 2) for k, v in fig.items()}),
                  file=sys.stderr)
            runs.append(fig)
        return {k: statistics.median(run[k] for run in runs) for k in runs[0]}, runs


TARGETS = {
    "ingest_events_per_s": (">=", 10000), "ingest_over_raw_consume": (">=", 0.5),
    "work_jobs_per_s": (">=", 5000), "work_over_raw_publish": (">=", 0.6),
    "latency_p50_ms": ("<=", 5), "latency_p99_ms": ("<=", 25), "peak_rss_mib": ("<=", 64),
    "http_create_jobs_per_s": (">=", 15000), "http_create_over_raw_insert": (">=", 0.5),
    "http_latency_p99_ms": ("<=", 20),
}


def report(median, runs, args, out_dir):
    rows = [("raw AMQP confirmed publish (msg/s)", "raw_amqp_publish"),
            ("raw AMQP consume+ack (msg/s)", "raw_amqp_consume"),
            ("raw PostgreSQL batched insert (rows/s)", "raw_pg_insert"),
            ("ingest (events/s)", "ingest_events_per_s"),
            ("  ratio to raw consume", "ingest_over_raw_consume"),
            ("work (jobs/s, events confirmed)", "work_jobs_per_s"),
            ("  ratio to raw publish", "work_over_raw_publish"),
            ("latency p50 (ms)", "latency_p50_ms"), ("latency p95 (ms)", "latency_p95_ms"),
            ("latency p99 (ms)", "latency_p99_ms"), ("latency max (ms)", "latency_max_ms"),
            ("  of which finish -> received, p50 (ms)", "latency_finish_to_receive_p50_ms"),
            ("peak RSS during ingest (MiB)", "peak_rss_mib"),
            ("HTTP POST /v1/jobs, 64 conns (jobs/s)", "http_create_jobs_per_s"),
            ("  ratio to raw batched insert", "http_create_over_raw_insert"),
            ("HTTP webhook, 64 conns (jobs/s)", "http_webhook_per_s"),
            ("HTTP GET /healthz, 64 conns (req/s)", "http_healthz_req_per_s"),
            ("HTTP at a fixed rate: achieved (req/s)", "http_fixed_rate_req_per_s"),
            ("  latency p50 (ms)", "http_latency_p50_ms"),
            ("  latency p99 (ms)", "http_latency_p99_ms")]
    print(f"\njobbridge benchmark: N={args.events}, median of {args.reps} run(s), "
          f"latency at 1000 events/s for {args.latency_s}s, ingest.consumers={args.consumers or 'default'}")
    print(f"{'figure':42} {'median':>12}  target")
    for label, key in rows:
        if key not in median:
            print(f"{label:42} {'-':>12}  not measured (see above)")
            continue
        target = TARGETS.get(key)
        t = ""
        if target:
            op, val = target
            ok = median[key] >= val if op == ">=" else median[key] <= val
            t = f"{op} {val}  {'met' if ok else 'MISSED'}"
        print(f"{label:42} {median[key]:>12.2f}  {t}")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"events": args.events, "reps": args.reps, "latency_seconds": args.latency_s,
                   "median": median, "runs": runs,
                   "targets": {k: {"op": v[0], "value": v[1]} for k, v in TARGETS.items()}},
                  f, indent=2)
    data = os.path.join(out_dir, "throughput.dat")
    with open(data, "w") as f:
        for label, key in [("raw publish", "raw_amqp_publish"), ("raw consume", "raw_amqp_consume"),
                           ("raw PG insert", "raw_pg_insert"), ("ingest", "ingest_events_per_s"),
                           ("work", "work_jobs_per_s")]:
            f.write(f'"{label}" {median[key]:.0f}\n')
    png = os.path.join(out_dir, "throughput.png")
    script = (f'set terminal png size 900,500; set output "{png}"; set style fill solid 0.6; '
              f'set boxwidth 0.6; set ylabel "per second (median)"; set grid ytics; '
              f'set title "jobbridge throughput vs raw ceilings (N={args.events})"; '
              f'unset key; plot "{data}" using 0:2:xtic(1) with boxes, '
              f'"" using 0:2:(sprintf("%d",$2)) with labels offset 0,1')
    if subprocess.run(["gnuplot", "-e", script], capture_output=True).returncode == 0:
        print(f"\nwrote {out_dir}/results.json and {png}")
    else:
        print(f"\nwrote {out_dir}/results.json (gnuplot failed: no plot)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--quick", action="store_true", help="small N, one run (CI)")
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--latency-seconds", dest="latency_s", type=float, default=30)
    ap.add_argument("--consumers", type=int, default=0,
                    help="ingest.consumers for jobbridge (default: jobbridge's own default)")
    ap.add_argument("--only", help="comma-separated parts to run (raw,ingest,work,latency,http); "
                    "prints the runs only, for profiling one scenario")
    args = ap.parse_args()
    if args.quick:
        args.events, args.reps, args.latency_s = 3000, 1, 3
    only = set(args.only.split(",")) if args.only else None
    median, runs = Bench(args.build, args.events, args.reps, args.latency_s, args.consumers,
                         only).run()
    if only is not None:
        return
    report(median, runs, args, os.path.join(args.build, "bench"))


if __name__ == "__main__":
    main()
