#!/usr/bin/env python3
"""Issue 15 item 2: a three-node RabbitMQ cluster on loopback (three node names and ports, one
Erlang cookie, `rabbitmqctl join_cluster`), the input a quorum queue, amqp.url listing the three
nodes. Events are published with confirms (pika, to any live node, retrying on the one being
killed) while the test kills (-9) the node jobbridge's consumer is on, then the input queue's
quorum leader, during ingest; and again during work, with job events flowing out to a quorum
queue bound to the output exchange: the node the relay is on, then that queue's leader. Each
killed node is started again before the next kill, so the quorum keeps its majority.

Then: every event is exactly its job (count and distinct dedupe keys), every job ran, and every
job.completed event arrived at least once (duplicates deduplicable by message_id). The figures
are printed.

JB_CLUSTER_EVENTS sets the count: 3,000 in ctest (2-3 minutes on a loaded machine, most of it
nodes starting); tests/soak/cluster.sh runs the issue's 50,000.

usage: test_cluster.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
SERVERS = os.path.join(SRC, "deploy/servers.sh")
EVENTS = int(os.environ.get("JB_CLUSTER_EVENTS", "3000"))
COOKIE = "JOBBRIDGECLUSTERTESTCOOKIE"


def sh(cmd, timeout=300):
    out = subprocess.run(["bash", "-c", f"source '{SERVERS}'; {cmd}"], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {out.stdout}{out.stderr}")
    return out.stdout


class Node:
    def __init__(self, root, i):
        self.dir = os.path.join(root, f"n{i}")
        self.port = int(sh("jb_free_port").strip())
        self.name = f"jb{self.port}@localhost"
        home = os.path.join(self.dir, "rabbit/home")
        os.makedirs(home)
        cookie = os.path.join(home, ".erlang.cookie")
        with open(cookie, "w") as f:
            f.write(COOKIE)
        os.chmod(cookie, 0o400)

    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def start(self):
        pid = os.path.join(self.dir, "rabbit/rabbit.pid")
        if os.path.exists(pid):
            os.unlink(pid)  # a killed node's: `rabbitmqctl wait` would wait for the dead pid
        sh(f"jb_rabbit_start '{self.dir}' {self.port}")

    def ctl(self, *args, timeout=120):
        return sh(f"jb_rabbitmqctl '{self.dir}' " + " ".join(f"'{a}'" for a in args), timeout)

    def kill9(self):
        with open(os.path.join(self.dir, "rabbit/rabbit.pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)

    def stop(self):
        try:
            sh(f"jb_rabbit_stop '{self.dir}'")
        except Exception:
            pass


class Publisher(threading.Thread):
    """Publishes events 0..n-1 with confirms to the live nodes in turn; a message whose confirm
    did not come is published again on the next node (the event's id makes it one job)."""

    def __init__(self, nodes, exchange, n):
        super().__init__(daemon=True)
        self.nodes, self.exchange, self.n = nodes, exchange, n
        self.sent = 0
        self.retries = 0
        self.error = None

    def run(self):
        k = 0
        conn = ch = None
        while self.sent < self.n:
            try:
                if ch is None:
                    node = self.nodes[k % len(self.nodes)]
                    conn = pika.BlockingConnection(pika.URLParameters(
                        node.url() + "/%2F?heartbeat=10&connection_attempts=1&socket_timeout=5"
                        "&blocked_connection_timeout=30"))
                    ch = conn.channel()
                    ch.confirm_delivery()
                i = self.sent
                body = json.dumps({"event_type": "cl.ev", "id": f"c-{i}", "payload": {"i": i}})
                ch.basic_publish(self.exchange, "cl.ev", body, pika.BasicProperties(
                    delivery_mode=2, message_id=f"c-{i}"), mandatory=True)
                self.sent += 1
            except Exception:  # the node died, refused, or did not confirm: next node
                self.retries += 1
                if self.retries > 10000:
                    self.error = "too many publish retries"
                    return
                k += 1
                ch = None
                try:
                    conn.close()
                except Exception:
                    pass
                time.sleep(0.2)
        try:
            conn.close()
        except Exception:
            pass


def drain_all(queue):
    """Every message in the queue, (routing key, properties, decoded body): consumed with a
    prefetch until 5 s pass without one (basic.get one at a time is too slow for 50,000)."""
    conn = pika.BlockingConnection(jbtest.pika_params())
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    got = []
    for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=5):
        if method is None:
            break
        got.append((method.routing_key, props, json.loads(body)))
    ch.cancel()
    conn.close()
    return got


class Cluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        jbtest.require_servers()
        cls.root = tempfile.mkdtemp(prefix="jb-cluster.")
        os.chmod(cls.root, 0o755)
        cls.nodes = [Node(cls.root, i) for i in range(3)]
        threads = [threading.Thread(target=n.start) for n in cls.nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in cls.nodes[1:]:
            n.ctl("stop_app")
            n.ctl("join_cluster", cls.nodes[0].name)
            n.ctl("start_app")
        status = cls.nodes[0].ctl("cluster_status", "--formatter", "json")
        running = json.loads(status)["running_nodes"]
        assert len(running) == 3, status
        jbtest.AMQP_URL = cls.nodes[0].url()

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.stop()
        shutil.rmtree(cls.root, ignore_errors=True)

    # --- finding what to kill ---

    def live(self):
        return [n for n in self.nodes if os.path.exists(os.path.join(n.dir, "rabbit/rabbit.pid"))]

    def node_named(self, name):
        return next(n for n in self.nodes if n.name == name)

    def leader_of(self, queue):
        out = self.live()[0].ctl("list_queues", "--no-table-headers", "name", "leader")
        for line in out.splitlines():
            parts = line.split("\t")
            if parts[0] == queue:
                return self.node_named(parts[1].strip())
        raise AssertionError(f"no leader for {queue}: {out}")

    def consumer_node(self, queue):
        """The node of a channel consuming the queue (its pid names the node)."""
        out = self.live()[0].ctl("list_consumers", "--no-table-headers", "queue_name",
                                 "channel_pid")
        for line in out.splitlines():
            parts = line.split("\t")
            if parts[0] == queue:
                m = re.search(r"<(jb\d+@localhost)\.", parts[1])
                if m:
                    return self.node_named(m.group(1))
        return None

    def relay_node(self):
        """The node of the outbox relay's connection: its channel is the one in confirm mode
        (the ingest consumers' dead-letter publishers, also in confirm mode, open only when an
        event is dead-lettered, and none is here)."""
        out = self.live()[0].ctl("list_channels", "--no-table-headers", "pid", "confirm")
        for line in out.splitlines():
            parts = line.split("\t")
            m = re.search(r"<(jb\d+@localhost)\.", parts[0])
            if m and parts[1].strip() == "true":
                return self.node_named(m.group(1))
        raise AssertionError(f"no channel in confirm mode: {out}")

    def kill_and_restart(self, node, what):
        t0 = time.time()
        node.kill9()
        os.unlink(os.path.join(node.dir, "rabbit/rabbit.pid"))
        time.sleep(3)  # the survivors notice, jobbridge fails over
        node.start()
        print(f"  killed {node.name} ({what}); back after {time.time() - t0:.0f}s",
              file=sys.stderr)
        self.kills.append(what)

    # --- the test ---

    def bridge(self):
        nodes = self.nodes
        out_queue = {}

        class QuorumBridge(jbtest.Bridge):
            def declare(self):
                conn = pika.BlockingConnection(jbtest.pika_params())
                ch = conn.channel()
                ch.exchange_declare(self.exchange, "topic", durable=True)
                ch.exchange_declare(self.dlx, "topic", durable=True)
                ch.queue_declare(self.queue, durable=True,
                                 arguments={"x-queue-type": "quorum",
                                            "x-dead-letter-exchange": self.dlx})
                ch.queue_bind(self.queue, self.exchange, "#")
                ch.exchange_declare(self.out, "topic", durable=True)
                ch.queue_declare(self.out + ".watch", durable=True,
                                 arguments={"x-queue-type": "quorum"})
                ch.queue_bind(self.out + ".watch", self.out, "#")
                conn.close()
                out_queue["name"] = self.out + ".watch"

        b = QuorumBridge(BIN, SRC, [{"event_type": "cl.#", "job_type": "c", "queue": "cl"}],
                         {"c": {"handler": "noop"}},
                         amqp__url=[n.url() for n in nodes], amqp__heartbeat_s=5,
                         amqp__input__queue_type="quorum", workers__enabled=False)
        self.addCleanup(b.close)
        return b

    def test_kill_nodes_during_ingest_and_work(self):
        self.kills = []
        b = self.bridge()
        env = {"JOBBRIDGE_AMQP_URL": ",".join(n.url() for n in self.nodes)}
        t0 = time.time()
        # Ingest: an ingest-only jobbridge, the events published while nodes die.
        b.start(env=env)
        pub = Publisher(self.nodes, b.exchange, EVENTS)
        pub.start()
        self.wait_for(lambda: pub.sent >= EVENTS // 4, 300, "a quarter published")
        node = self.consumer_node(b.queue)
        self.assertIsNotNone(node, "no consumer on the input queue")
        self.kill_and_restart(node, "the consumer's node, during ingest")
        self.wait_for(lambda: pub.sent >= EVENTS // 2, 300, "half published")
        self.kill_and_restart(self.leader_of(b.queue), "the input queue's leader, during ingest")
        pub.join(600)
        self.assertIsNone(pub.error)
        self.assertFalse(pub.is_alive(), "the publisher did not finish")
        b.wait_count(EVENTS, 300)
        t_ingest = time.time() - t0
        self.assertEqual(b.stop(), 0)

        # Work: the same jobbridge with workers; job events flow out while nodes die.
        cfg = dict(b.cfg)
        cfg["workers"] = {"enabled": True, "threads": 2, "poll_ms": 200}
        b.write_config(cfg)
        b.start(env=env)
        self.wait_for(lambda: b.count("status = 'COMPLETED'") >= EVENTS // 10, 300,
                      "a tenth of the jobs run")
        self.kill_and_restart(self.relay_node(), "the relay's node, during work")
        self.kill_and_restart(self.leader_of(b.out + ".watch"),
                              "the job events queue's leader, during work")
        b.wait_count(EVENTS, 600, "status = 'COMPLETED'")

        # The figures.
        jobs = b.count()
        distinct = int(jbtest.psql(f"SELECT count(DISTINCT dedupe_key) FROM {b.schema}.jobs"))
        completed = b.count("status = 'COMPLETED'")
        job_ids = {j["id"] for j in b.jobs()} if EVENTS <= 10000 else None
        self.wait_for(lambda: self.outbox_empty(b), 300, "the outbox emptied")
        got = drain_all(b.out + ".watch")
        subjects = [body["subject"] for _, _, body in got if body["type"] == "job.completed"]
        message_ids = {props.message_id for _, props, _ in got}
        print(f"\n  {EVENTS} events published ({pub.retries} publish retries), {jobs} jobs, "
              f"{distinct} distinct events, {completed} completed; {len(got)} job events out, "
              f"{len(message_ids)} distinct message ids, {len(set(subjects))} distinct jobs "
              f"completed, {len(got) - len(message_ids)} duplicates; kills: {len(self.kills)}; "
              f"ingest {t_ingest:.0f}s, total {time.time() - t0:.0f}s", file=sys.stderr)
        self.assertEqual(b.stop(), 0)
        for line in b.logs().splitlines():
            if re.search(r"returned|nack|totals|set aside|lost|unavailable", line):
                print("  log: " + line[:400], file=sys.stderr)
        self.assertEqual(jobs, EVENTS)
        self.assertEqual(distinct, EVENTS)
        self.assertEqual(completed, EVENTS)
        self.assertEqual(len(set(subjects)), EVENTS)
        if job_ids is not None:
            self.assertEqual(set(subjects), job_ids)
        self.assertEqual(len(self.kills), 4)

    def test_dead_letter_queue_of_another_type_is_kept(self):
        """An older jobbridge declared the dead-letter queue classic: a quorum input now
        declares it quorum, the broker refuses (406), and jobbridge keeps it and consumes."""
        b = self.bridge()
        conn = pika.BlockingConnection(jbtest.pika_params())
        conn.channel().queue_declare(b.dlx, durable=True)
        conn.close()
        b.start(env={"JOBBRIDGE_AMQP_URL": ",".join(n.url() for n in self.nodes)})
        self.assertIn("exists with another queue type", b.logs())
        b.publish([(json.dumps({"event_type": "cl.ev", "id": "dlq-1"}), "cl.ev", None)])
        b.wait_count(1, 60)
        self.assertEqual(b.stop(), 0)

    def outbox_empty(self, b):
        return int(jbtest.psql(f"SELECT count(*) FROM {b.schema}.outbox")) == 0

    def wait_for(self, cond, timeout, what):
        deadline = time.time() + timeout
        while not cond():
            if time.time() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}")
            time.sleep(0.2)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
