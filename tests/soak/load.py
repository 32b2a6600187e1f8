#!/usr/bin/env python3
"""The soak's load and its counting (tests/soak/run.sh): events published with confirms at a
steady rate, and the job events read back, both surviving broker restarts. Each writes its
running figure to a file, so run.sh reads it at any time.

usage: load.py publish AMQP_URL EXCHANGE RATE COUNT_FILE STOP_FILE
       load.py consume AMQP_URL QUEUE OUT_FILE STOP_FILE
"""
import json
import os
import sys
import time

import pika


def connect(url):
    return pika.BlockingConnection(pika.URLParameters(
        url + "/%2F?heartbeat=10&connection_attempts=1&socket_timeout=5"
        "&blocked_connection_timeout=30"))


def publish(url, exchange, rate, count_file, stop_file):
    """Event i has id soak-i and alternates two event types (one job each, two job types);
    a publish whose confirm did not come is repeated after reconnecting (the id dedupes it)."""
    sent, ch, conn = 0, None, None
    period = 1.0 / rate
    next_at = time.time()
    while not os.path.exists(stop_file):
        try:
            if ch is None:
                conn = connect(url)
                ch = conn.channel()
                ch.confirm_delivery()
            kind = "fast" if sent % 2 == 0 else "slow"
            body = json.dumps({"event_type": f"soak.{kind}", "id": f"soak-{sent}",
                               "payload": {"i": sent}})
            ch.basic_publish(exchange, f"soak.{kind}", body,
                             pika.BasicProperties(delivery_mode=2, message_id=f"soak-{sent}"))
            sent += 1
            if sent % 50 == 0:
                with open(count_file + ".tmp", "w") as f:
                    f.write(str(sent))
                os.replace(count_file + ".tmp", count_file)
            next_at += period
            delay = next_at - time.time()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.time()
        except Exception:
            ch = None
            try:
                conn.close()
            except Exception:
                pass
            time.sleep(0.5)
    with open(count_file, "w") as f:
        f.write(str(sent))
    try:
        conn.close()
    except Exception:
        pass


def consume(url, queue, out_file, stop_file):
    """Reads job events; writes "total distinct_message_ids distinct_completed_subjects"."""
    ids, done, total = set(), set(), 0
    last_write = 0
    while True:
        try:
            conn = connect(url)
            ch = conn.channel()
            while True:
                # Acked after it is counted: with auto_ack an event the broker sent just as it
                # restarted is gone before we read it (a loss in the test's consumer, not in
                # jobbridge). A redelivery is counted once by its message id.
                method, props, body = ch.basic_get(queue, auto_ack=False)
                if method is None:
                    if os.path.exists(stop_file):
                        break
                    time.sleep(0.1)
                else:
                    total += 1
                    ids.add(props.message_id)
                    ev = json.loads(body)
                    if ev.get("type") == "job.completed":
                        done.add(ev.get("subject"))
                    ch.basic_ack(method.delivery_tag)
                if time.time() - last_write > 1 or method is None:
                    with open(out_file + ".tmp", "w") as f:
                        f.write(f"{total} {len(ids)} {len(done)}")
                    os.replace(out_file + ".tmp", out_file)
                    last_write = time.time()
            conn.close()
            return
        except Exception:
            time.sleep(0.5)


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        consume(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
