"""Helpers for jobbridge's integration tests: a config per test (own schema, exchange, queues),
the real jobbridge binary as a subprocess, SQL through psql, publishing with pika (a client
independent of jobbridge), and control of the throwaway servers started by tests/run.sh."""
import json
import os
import signal
import subprocess
import tempfile
import time
import uuid

import pika

DB_URL = os.environ.get("JOBBRIDGE_DATABASE_URL")
AMQP_URL = os.environ.get("JOBBRIDGE_AMQP_URL")
STATE_DIR = os.environ.get("JB_STATE_DIR")


def require_servers():
    assert DB_URL and AMQP_URL and STATE_DIR, "servers not started: run tests/run.sh"


def pika_params():
    return pika.URLParameters(AMQP_URL + "/%2F?heartbeat=30&blocked_connection_timeout=60")


def psql(sql):
    out = subprocess.run(["psql", DB_URL, "-AtXq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr}")
    return out.stdout


def servers(fn, *args):
    """Runs a function of deploy/servers.sh (jb_pg_stop, jb_rabbit_start, ...) on the test
    servers."""
    src = os.path.join(os.path.dirname(__file__), "../../deploy/servers.sh")
    cmd = f'source "{src}"; {fn} ' + " ".join(f'"{a}"' for a in args)
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"{fn} failed: {out.stdout}{out.stderr}")


class Bridge:
    """One jobbridge under test with its own names, so tests never see each other's data."""

    def __init__(self, binary, source_dir, mappings, job_types, **overrides):
        tag = uuid.uuid4().hex[:8]
        self.binary = binary
        self.tmp = tempfile.TemporaryDirectory()
        self.schema = "it_" + tag
        self.exchange = "ev." + tag
        self.queue = "q." + tag
        self.dlx = "dl." + tag
        self.out = "out." + tag
        cfg = {
            "amqp": {"heartbeat_s": 10, "prefetch": 500, "output": {"exchange": self.out},
                     "input": {"exchange": self.exchange, "queue": self.queue, "bindings": ["#"],
                               "dead_letter_exchange": self.dlx}},
            "database": {"schema": self.schema},
            "ingest": {"batch_max": 200, "batch_wait_ms": 20},
            # No HTTP server unless a test asks for one (http__listen="127.0.0.1:0": a free port,
            # read back with http_url()).
            "http": {"listen": None},
            "mappings": mappings,
            "job_types": job_types,
        }
        for path, value in overrides.items():
            node = cfg
            keys = path.split("__")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
        self.cfg = cfg
        self.config = os.path.join(self.tmp.name, "jobbridge.json")
        self.write_config(cfg)
        self.proc = None
        self.log_path = os.path.join(self.tmp.name, "jobbridge.log")
        self.log = None
        self.declare()

    def http_url(self, timeout=30):
        """The base URL of the HTTP server of the running jobbridge, from its "http listening"
        log line (the port the kernel chose when http.listen asked for port 0)."""
        # The log is appended to across restarts: the current process's line is the last one,
        # once there is one per start.
        self.wait_log('"http listening"', timeout, count=max(1, getattr(self, "starts", 1)))
        url = None
        with open(self.log_path) as f:
            for line in f:
                if '"http listening"' in line:
                    url = json.loads(line)["url"]
        if url is None:
            raise AssertionError("no http listening line in the log")
        return url

    def write_config(self, cfg):
        with open(self.config, "w") as f:
            json.dump(cfg, f)

    def declare(self):
        """Declares the topology as jobbridge will, so events can be published before it
        starts (a pre-filled backlog), and binds a test queue to the dead-letter exchange."""
        conn = pika.BlockingConnection(pika_params())
        ch = conn.channel()
        ch.exchange_declare(self.exchange, "topic", durable=True)
        ch.exchange_declare(self.dlx, "topic", durable=True)
        ch.queue_declare(self.queue, durable=True,
                         arguments={"x-queue-type": "classic", "x-dead-letter-exchange": self.dlx})
        ch.queue_bind(self.queue, self.exchange, "#")
        ch.queue_declare(self.dlx + ".watch", durable=True)
        ch.queue_bind(self.dlx + ".watch", self.dlx, "#")
        ch.exchange_declare(self.out, "topic", durable=True)
        ch.queue_declare(self.out + ".watch", durable=True)
        ch.queue_bind(self.out + ".watch", self.out, "#")
        conn.close()

    def start(self, wait_consuming=True, env=None):
        self.starts = getattr(self, "starts", 0) + 1
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([self.binary, "run", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, **(env or {})))
        if wait_consuming:
            self.wait_log("consuming", 60)

    def logs(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, needle, timeout, count=1):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.logs().count(needle) >= count:
                return
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"jobbridge exited {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.1)
        raise AssertionError(f"no '{needle}' in the log within {timeout}s:\n{self.logs()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        self.proc = None
        self.log.close()
        self.check_sanitizers()
        return code

    def check_sanitizers(self):
        """A sanitizer build (tests/run.sh's TSan pass) reports on stderr: any report fails."""
        logs = self.logs()
        for marker in ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:"):
            if marker in logs:
                raise AssertionError(f"sanitizer report in jobbridge's log:\n{logs[-8000:]}")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()

    def close(self):
        if self.proc is not None:
            self.stop()
        try:
            psql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
            conn = pika.BlockingConnection(pika_params())
            ch = conn.channel()
            for q in (self.queue, self.dlx + ".watch", self.dlx, self.out + ".watch"):
                ch.queue_delete(q)
            conn.close()
        except Exception:
            pass
        self.tmp.cleanup()

    # --- the database ---

    def count(self, where="true"):
        return int(psql(f"SELECT count(*) FROM {self.schema}.jobs WHERE {where}"))

    def wait_count(self, n, timeout, where="true"):
        deadline = time.time() + timeout
        got = -1
        while time.time() < deadline:
            try:
                got = self.count(where)
            except RuntimeError:
                got = -1  # the schema may not exist yet, or the database is restarting
            if got >= n:
                return got
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"jobbridge exited {self.proc.returncode}:\n{self.logs()}")
            time.sleep(0.25)
        raise AssertionError(f"{got} jobs after {timeout}s, want {n}\n{self.logs()[-4000:]}")

    def jobs(self, where="true"):
        rows = psql(f"SELECT row_to_json(j) FROM {self.schema}.jobs j WHERE {where}")
        return [json.loads(line) for line in rows.splitlines() if line]

    def queue_depth(self):
        conn = pika.BlockingConnection(pika_params())
        ch = conn.channel()
        q = ch.queue_declare(self.queue, passive=True)
        conn.close()
        return q.method.message_count

    # --- the broker ---

    def publish(self, events):
        """Publishes (body, routing_key, properties) tuples, persistent, with publisher
        confirms: when this returns, the broker has every message."""
        conn = pika.BlockingConnection(pika_params())
        ch = conn.channel()
        ch.confirm_delivery()
        for body, rk, props in events:
            props = props or pika.BasicProperties()
            props.delivery_mode = 2
            ch.basic_publish(self.exchange, rk, body, props)
        conn.close()

    def drain(self, queue, n, timeout, decode=lambda body: body):
        """Reads up to n messages from a queue: (routing_key, properties, decoded body)."""
        conn = pika.BlockingConnection(pika_params())
        ch = conn.channel()
        got = []
        deadline = time.time() + timeout
        while len(got) < n and time.time() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append((method.routing_key, props, decode(body)))
        conn.close()
        return got

    def dead_letters(self, n, timeout=30):
        """Reads up to n messages from the dead-letter watch queue."""
        return self.drain(self.dlx + ".watch", n, timeout)

    def events(self, n, timeout=60):
        """Reads up to n job events from the output watch queue, bodies decoded."""
        return self.drain(self.out + ".watch", n, timeout, json.loads)

    def insert_jobs(self, n, job_type, queue="default", priority=0, tag="ev"):
        """Inserts n PENDING jobs straight into the table, each with a source event id
        (<tag>-<n>) in its metadata, so the correlation id of its events is known."""
        psql(f"INSERT INTO {self.schema}.jobs (id, job_type, queue_name, priority, payload, "
             f"status, metadata) SELECT gen_random_uuid(), '{job_type}', '{queue}', {priority}, "
             f"jsonb_build_object('n', g), 'PENDING', jsonb_build_object('event_id', "
             f"'{tag}-' || g) FROM generate_series(1, {n}) g")

    def create_job(self, job_type, *args):
        """Creates a job through the real CLI (job type defaults apply)."""
        out = subprocess.run([self.binary, "jobs", "create", job_type, "--payload", "{}",
                              "--metadata", '{"event_id": "ev-1"}', *args, "--config",
                              self.config], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def migrate(self):
        out = subprocess.run([self.binary, "migrate", "--config", self.config],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
