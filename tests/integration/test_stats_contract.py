#!/usr/bin/env python3
"""Issue 12, item 8: `jobbridge stats` reports the seed's QueueStats contract exactly as named
(queue_name, pending_count, running_count, completed_count, failed_count, dead_letter_count),
with scheduled_count, retrying_count and total_count beside them and nothing else; and
`stats --help` names the fields.

usage: test_stats_contract.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest
import uuid

BIN = sys.argv[1]
SRC = sys.argv[2]
DB_URL = os.environ.get("JOBBRIDGE_DATABASE_URL")

SEED = ["pending_count", "running_count", "completed_count", "failed_count", "dead_letter_count"]
EXTRA = ["scheduled_count", "retrying_count", "total_count"]


class StatsContract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        assert DB_URL, "JOBBRIDGE_DATABASE_URL is not set: run tests/run.sh"
        cls.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(SRC, "config/jobbridge.example.json")) as f:
            cfg = json.load(f)
        cfg["database"]["schema"] = "stats_" + uuid.uuid4().hex[:8]
        cls.config = os.path.join(cls.tmp.name, "c.json")
        with open(cls.config, "w") as f:
            json.dump(cfg, f)
        out = cls.jb(["migrate"])
        assert out.returncode == 0, out.stderr

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def jb(cls, args):
        return subprocess.run([BIN] + args + ["--config", cls.config], capture_output=True,
                              text=True, timeout=60)

    def test_stats_names_the_seed_fields_exactly(self):
        for payload, extra in (('{"n": 1}', []), ('{"n": 2}', ["--scheduled-at", "2999-01-01T00:00:00Z"])):
            out = self.jb(["jobs", "create", "audit_log", "--payload", payload, "--queue", "sq",
                           *extra])
            self.assertEqual(out.returncode, 0, out.stderr)
        out = self.jb(["stats"])
        self.assertEqual(out.returncode, 0, out.stderr)
        stats = {s["queue_name"]: s for s in json.loads(out.stdout)}
        self.assertEqual(sorted(stats["sq"]), sorted(["queue_name"] + SEED + EXTRA))
        sq = stats["sq"]
        self.assertEqual((sq["pending_count"], sq["scheduled_count"], sq["total_count"]), (1, 1, 2))
        self.assertEqual(sum(sq[k] for k in SEED + ["scheduled_count", "retrying_count"]),
                         sq["total_count"])

    def test_stats_help_names_the_fields(self):
        out = self.jb(["stats", "--help"])
        self.assertEqual(out.returncode, 0, out.stderr)
        for key in ["queue_name"] + SEED + EXTRA:
            self.assertIn(key, out.stdout)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:], verbosity=2)
