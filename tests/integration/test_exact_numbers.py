#!/usr/bin/env python3
"""Issue 11, defect 6: a payload's numbers reach PostgreSQL exactly as they arrived, through
ingest and through `jobs create`: payload->'amount' is textually what '<raw>'::jsonb gives
(jsonb keeps arbitrary-precision numerics), and `jobs get` prints that same text.

usage: test_exact_numbers.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import re
import subprocess
import sys
import unittest

import pika

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]

# What jobbridge used to rewrite (19.99 -> 19.989999999999998, 0.1, -0.0 -> 0.0) or refuse as
# malformed (1e400, 12345678901234567890123), and neighbours of every form of the grammar.
RAW = ["19.99", "0.1", "-0.0", "1.50", "1e400", "12345678901234567890123", "-0", "1E+2",
       "0.30000000000000004", "1e-400", "-12.3400", "2.5e-3", "100", "-7", "9223372036854775808",
       "1.7976931348623157e308"]


def body_of(raw):
    # The raw number written by hand into the JSON text: Python's json would rewrite it.
    return '{"amount": %s, "raw": "%s", "list": [%s, {"x": %s}]}' % (raw, raw, raw, raw)


# Rows whose stored numbers are not textually what PostgreSQL makes of the raw text.
MISMATCHES = ("SELECT payload->>'raw' || ': ' || (payload->'amount')::text FROM {s}.jobs "
              "WHERE (payload->'amount')::text <> ((payload->>'raw')::jsonb)::text "
              "OR (payload->'list')::text <> ('[' || (payload->>'raw') || ', {\"x\": ' || "
              "(payload->>'raw') || '}]')::jsonb::text")


def printed(key, stored, text):
    """Whether the CLI's indented output holds "key": stored as a whole number."""
    return re.search('"%s": %s[,\n]' % (key, re.escape(stored)), text) is not None


class ExactNumbers(unittest.TestCase):
    def setUp(self):
        jbtest.require_servers()
        self.b = jbtest.Bridge(BIN, SRC, [{"event_type": "pay.made", "job_type": "n",
                                           "payload": "/payload"}], {"n": {"handler": "noop"}},
                               workers__enabled=False)

    def tearDown(self):
        self.b.close()

    def test_what_jsonb_itself_does(self):
        """Documents PostgreSQL's own normalisation, which jobbridge now leaves to it."""
        got = jbtest.psql("SELECT '-0.0'::jsonb::text || ' ' || '1.50'::jsonb::text || ' ' || "
                          "'1E+2'::jsonb::text || ' ' || '-0'::jsonb::text || ' ' || "
                          "length('1e400'::jsonb::text)").strip()
        self.assertEqual(got, "0.0 1.50 100 0 401")

    def test_ingest_stores_numbers_exactly(self):
        self.b.start()
        self.b.publish([('{"event_type": "pay.made", "id": "e-%d", "payload": %s}'
                         % (i, body_of(raw)), "pay.made", None) for i, raw in enumerate(RAW)])
        self.b.wait_count(len(RAW), 90)
        self.assertEqual(self.b.dead_letters(1, timeout=1), [], "nothing dead-lettered")
        self.assertEqual(jbtest.psql(MISMATCHES.replace("{s}", self.b.schema)), "")

    def test_jobs_create_stores_and_prints_numbers_exactly(self):
        self.b.migrate()
        for raw in RAW:
            out = subprocess.run([BIN, "jobs", "create", "n", "--payload", body_of(raw),
                                  "--metadata", '{"m": %s}' % raw, "--config", self.b.config],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, f"{raw}: {out.stderr}")
            job = json.loads(out.stdout)
            stored = jbtest.psql(f"SELECT ('{raw}'::jsonb)::text").strip()
            # The CLI prints the number as PostgreSQL keeps it, in payload and metadata.
            self.assertTrue(printed("amount", stored, out.stdout), f"{raw}: {out.stdout}")
            self.assertTrue(printed("m", stored, out.stdout), f"{raw}: {out.stdout}")
            got = subprocess.run([BIN, "jobs", "get", job["id"], "--config", self.b.config],
                                 capture_output=True, text=True, timeout=60)
            self.assertTrue(printed("amount", stored, got.stdout), f"{raw}: {got.stdout}")
        self.assertEqual(jbtest.psql(MISMATCHES.replace("{s}", self.b.schema)), "")
        self.assertEqual(jbtest.psql(
            f"SELECT count(*) FROM {self.b.schema}.jobs "
            f"WHERE (metadata->'m')::text <> ((payload->>'raw')::jsonb)::text").strip(), "0")

    def test_exec_handler_reads_and_returns_numbers_exactly(self):
        """An exec handler gets the payload's numbers on stdin as they are stored, and its JSON
        result (here: its whole stdin, echoed) is stored as it wrote it."""
        self.b.close()
        self.b = jbtest.Bridge(
            BIN, SRC, [{"event_type": "pay.made", "job_type": "echo", "payload": "/payload"}],
            {"echo": {"handler": "exec", "command": ["sh", "-c", "cat"], "max_retries": 0}},
            workers__poll_ms=50)
        self.b.start()
        self.b.publish([('{"event_type": "pay.made", "id": "x-%d", "payload": %s}'
                         % (i, body_of(raw)), "pay.made", None) for i, raw in enumerate(RAW)])
        self.b.wait_count(len(RAW), 120, "status IN ('COMPLETED', 'FAILED', 'DEAD_LETTER')")
        s = self.b.schema
        self.assertEqual(jbtest.psql(f"SELECT count(*) FROM {s}.jobs WHERE status <> 'COMPLETED'")
                         .strip(), "0", self.b.logs()[-3000:])
        self.assertEqual(jbtest.psql(
            f"SELECT payload->>'raw' || ': ' || (result->'payload'->'amount')::text FROM {s}.jobs "
            f"WHERE (result->'payload')::text <> payload::text"), "")

    def test_malformed_payload_is_still_refused_with_its_place(self):
        self.b.migrate()
        for text, what in [('{"a": 1,}', "column"), ('{"a": 1, "a": 2}', "duplicate"),
                           ('{"a": "\\u0000"}', "\\u0000"), ('{"a": 01}', "column")]:
            out = subprocess.run([BIN, "jobs", "create", "n", "--payload", text, "--config",
                                  self.b.config], capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 2, text)
            self.assertIn("--payload is not valid JSON", out.stderr)
            self.assertIn(what, out.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0]] + sys.argv[3:])
