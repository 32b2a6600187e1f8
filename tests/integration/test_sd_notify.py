#!/usr/bin/env python3
"""Issue 15, item 4: jobbridge speaks systemd's notify protocol (Type=notify). The test plays
systemd: it binds the AF_UNIX datagram socket named by NOTIFY_SOCKET, sets WATCHDOG_USEC, runs a
real `jobbridge run` against the throwaway servers, and reads what libsystemd's sd_notify sends:
READY=1 once serving, WATCHDOG=1 pings at half the interval, RELOADING=1 then READY=1 on SIGHUP,
STOPPING=1 on SIGTERM.

usage: test_sd_notify.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import os
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]


class SdNotify(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.bridge = jbtest.Bridge(BIN, SRC, [{"event_type": "a.b", "job_type": "t"}],
                                    {"t": {"handler": "noop"}})

    def tearDown(self):
        self.bridge.close()
        self.sock.close()
        self.dir.cleanup()

    def messages_until(self, key, timeout):
        """Every datagram received until one holds `key` (e.g. READY=1); fails on timeout."""
        got = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                msg = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            got.append(msg)
            if key in msg.split("\n"):
                return got
        self.fail(f"no {key} within {timeout}s; received {got}\n{self.bridge.logs()[-3000:]}")

    def test_ready_watchdog_reload_stopping(self):
        self.bridge.start(env={"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": "1000000"})
        first = self.messages_until("READY=1", 60)
        self.assertTrue(any("STATUS=serving" in m for m in first), first)
        # Pings at half the 1 s interval: several within 3 s.
        t0, pings = time.time(), 0
        while time.time() - t0 < 3:
            pings += sum("WATCHDOG=1" in m for m in self.messages_until("WATCHDOG=1", 5))
        self.assertGreaterEqual(pings, 4, "watchdog pings in 3 s at a 1 s WatchdogSec")
        self.bridge.proc.send_signal(signal.SIGHUP)
        got = self.messages_until("RELOADING=1", 10) + self.messages_until("READY=1", 10)
        self.assertTrue(any("RELOADING=1" in m for m in got))
        self.bridge.proc.send_signal(signal.SIGTERM)
        self.messages_until("STOPPING=1", 30)
        self.assertEqual(self.bridge.proc.wait(timeout=60), 0)
        self.bridge.proc = None

    def test_without_notify_socket_nothing_changes(self):
        """Outside systemd the calls do nothing: jobbridge runs and stops as before."""
        self.bridge.start()
        self.assertEqual(self.bridge.stop(), 0)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
