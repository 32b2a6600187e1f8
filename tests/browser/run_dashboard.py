#!/usr/bin/env python3
"""Issue 17: the dashboard in a real browser. Starts a real `jobbridge run` (real RabbitMQ and
PostgreSQL, HTTP on a free port, two tokens), publishes events with pika and creates jobs
through the API, waits until every job has settled, then runs dashboard.test.mjs
(playwright-core driving Debian's /usr/bin/chromium) with what the database holds; afterwards
checks in the database that the UI's cancel, bulk cancel and retry took effect.

usage: run_dashboard.py JOBBRIDGE_BINARY SOURCE_DIR OUT_DIR   (screenshots go to OUT_DIR)
"""
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import jbtest  # noqa: E402

BIN, SRC, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
BEHAVE = os.path.join(SRC, "tests", "integration", "handlers", "behave.sh")
OPS, VIEWER = "ops-" + uuid.uuid4().hex, "viewer-" + uuid.uuid4().hex


def digest(t):
    return hashlib.sha256(t.encode()).hexdigest()


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {timeout}s")


def main():
    jbtest.require_servers()
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True, timeout=300)
    os.makedirs(OUT, exist_ok=True)
    state = os.path.join(jbtest.STATE_DIR, "dashboard-" + uuid.uuid4().hex[:6])
    os.makedirs(state)
    # order.created becomes an audit job (default queue: run at once) and a receipt (queue
    # "parked", which no worker serves: it stays PENDING for the cancel tests).
    b = jbtest.Bridge(
        BIN, SRC,
        [{"event_type": "order.#", "job_type": "audit"},
         {"event_type": "order.created", "job_type": "receipt", "queue": "parked"}],
        {"audit": {"handler": "noop"}, "receipt": {"handler": "noop"},
         "flaky": {"handler": "exec", "command": [BEHAVE, "flaky", "2"], "timeout_s": 60,
                   "max_retries": 0, "env_passthrough": ["JB_TEST_STATE"]}},
        http__listen="127.0.0.1:0", workers__queues=["default"], workers__threads=2,
        http__tokens=[{"name": "ops", "sha256": digest(OPS), "scopes": ["read", "write", "admin"]},
                      {"name": "viewer", "sha256": digest(VIEWER), "scopes": ["read"]}])
    try:
        b.start(env={"JB_TEST_STATE": state})
        url = b.http_url()
        auth = {"Authorization": f"Bearer {OPS}"}
        b.publish([(json.dumps({"specversion": "1.0", "type": "order.created", "source": "/shop",
                                "id": f"order-{i}", "data": {"order": i, "total": 1234.5 * i}}).encode(),
                    "order.created", None) for i in range(1, 6)])
        b.publish([(json.dumps({"specversion": "1.0", "type": "order.shipped", "source": "/shop",
                                "id": f"ship-{i}", "data": {"order": i}}).encode(), "order.shipped", None)
                   for i in range(1, 4)])
        made = [requests.post(f"{url}/v1/jobs", headers=auth, timeout=30,
                              json={"job_type": "receipt", "queue_name": "parked", "payload": {"n": i}})
                for i in range(3)]
        assert all(r.status_code == 202 for r in made), [r.text for r in made]
        flaky = requests.post(f"{url}/v1/jobs", headers=auth, timeout=30,
                              json={"job_type": "flaky", "payload": {"why": "dead-letter me"}}).json()
        b.wait_count(5 + 5 + 3 + 3 + 1, 60)
        wait(lambda: b.count("queue_name = 'default' AND status NOT IN ('COMPLETED', 'DEAD_LETTER')") == 0
             and b.count("status = 'DEAD_LETTER'") == 1, 60, "every default-queue job settled")
        counts = {}
        for row in b.jobs():
            q = counts.setdefault(row["queue_name"], {})
            q[row["status"]] = q.get(row["status"], 0) + 1
        event_jobs = [j["id"] for j in b.jobs("metadata->>'event_id' = 'order-3'")]
        spec = {
            "url": url, "out": OUT, "ops": OPS, "viewer": VIEWER, "counts": counts,
            "total": b.count(), "event_id": "order-3", "event_jobs": event_jobs,
            "cancel_id": made[0].json()["id"], "bulk_ids": [made[1].json()["id"], made[2].json()["id"]],
            "dead_id": flaky["id"], "matched": [8, 5],
        }
        out = subprocess.run(["node", os.path.join(HERE, "dashboard.test.mjs")], input=json.dumps(spec),
                             capture_output=True, text=True, timeout=240)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        assert out.returncode == 0, f"the browser test failed ({out.returncode})"
        # What the UI did is in the database.
        for jid in [spec["cancel_id"], *spec["bulk_ids"]]:
            (row,) = b.jobs(f"id = '{jid}'")
            assert (row["status"], row["error_message"]) == ("FAILED", "Job cancelled"), row
        wait(lambda: b.jobs(f"id = '{flaky['id']}'")[0]["status"] == "COMPLETED", 60,
             "the job retried from the UI completed")
        (row,) = b.jobs(f"id = '{flaky['id']}'")
        assert row["result"] == {"attempts": 2, "type": "flaky"}, row
        print("dashboard browser test: OK")
    except BaseException:
        sys.stderr.write(b.logs()[-4000:])
        raise
    finally:
        b.close()


if __name__ == "__main__":
    main()
