#!/usr/bin/env python3
"""Issue 15 item 1: TLS to both servers, for real. The test makes a CA and a server certificate
for DNS:localhost (and a second CA that signed nothing of ours) with openssl, starts a RabbitMQ
node of its own with a TLS listener and a PostgreSQL of its own with ssl=on, and runs
`jobbridge run` with amqps://localhost + amqp.tls.ca_file and a database URL with
sslmode=verify-full: events in -> jobs -> run -> job events out, and the connections are TLS
(pg_stat_ssl, rabbitmqctl list_connections ssl). Then a wrong CA and a wrong host name, for the
broker and the database each: a clear error naming the check, and nothing connected in plain.

usage: test_tls.py JOBBRIDGE_BINARY SOURCE_DIR
"""
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import jbtest  # noqa: E402

BIN, SRC = sys.argv[1], sys.argv[2]
SERVERS = os.path.join(SRC, "deploy/servers.sh")
STATE = None
TLS_PORT = None
CERTS = None


def sh(cmd, timeout=240, env=None):
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, **(env or {})))
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {out.stdout}{out.stderr}")
    return out.stdout


def free_port():
    return int(sh("source '%s'; jb_free_port" % SERVERS).strip())


def make_certs(d):
    """ca.pem signs server.pem (CN and SAN DNS:localhost only); other-ca.pem signs nothing."""
    ssl = f"cd '{d}' && "
    sh(ssl + "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=jobbridge test CA' "
       "-keyout ca.key -out ca.pem 2>/dev/null")
    sh(ssl + "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=some other CA' "
       "-keyout other-ca.key -out other-ca.pem 2>/dev/null")
    sh(ssl + "openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key "
       "-out server.csr 2>/dev/null && printf 'subjectAltName=DNS:localhost\\n' > san.ext && "
       "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
       "-extfile san.ext -out server.pem 2>/dev/null")
    # PostgreSQL wants its key owned by the user it runs as, mode 0600; RabbitMQ reads its own
    # copy.
    shutil.copy(os.path.join(d, "server.key"), os.path.join(d, "pg-server.key"))
    os.chmod(os.path.join(d, "pg-server.key"), 0o600)
    if os.getuid() == 0:
        user = sh(f"source '{SERVERS}'; jb_pg_user").strip()
        pw = pwd.getpwnam(user)
        os.chown(os.path.join(d, "pg-server.key"), pw.pw_uid, pw.pw_gid)
    for f in os.listdir(d):
        if f != "pg-server.key":
            os.chmod(os.path.join(d, f), 0o644)


def setUpModule():
    global STATE, TLS_PORT, CERTS
    STATE = tempfile.mkdtemp(prefix="jb-tls.")
    os.chmod(STATE, 0o755)
    CERTS = os.path.join(STATE, "certs")
    os.mkdir(CERTS)
    os.chmod(CERTS, 0o755)
    make_certs(CERTS)
    TLS_PORT = free_port()
    rabbit_conf = "\n".join([
        f"listeners.ssl.default = 127.0.0.1:{TLS_PORT}",
        f"ssl_options.cacertfile = {CERTS}/ca.pem",
        f"ssl_options.certfile = {CERTS}/server.pem",
        f"ssl_options.keyfile = {CERTS}/server.key",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false"])
    pg_opts = (f"-c ssl=on -c ssl_cert_file={CERTS}/server.pem "
               f"-c ssl_key_file={CERTS}/pg-server.key")
    out = sh(f"source '{SERVERS}'; JB_PG_FSYNC=off jb_servers_start '{STATE}' && "
             "echo $JB_PG_PORT $JB_AMQP_PORT",
             env={"JB_RABBIT_EXTRA_CONF": rabbit_conf, "JB_PG_EXTRA_OPTS": pg_opts})
    pg_port, amqp_port = out.split()[-2:]
    # The test's own clients (psql, pika) use the plain listeners of these same servers.
    jbtest.DB_URL = f"postgresql://jobbridge@127.0.0.1:{pg_port}/jobbridge"
    jbtest.AMQP_URL = f"amqp://guest:guest@127.0.0.1:{amqp_port}"
    jbtest.STATE_DIR = STATE
    global PG_PORT
    PG_PORT = pg_port


def tearDownModule():
    if STATE:
        sh(f"source '{SERVERS}'; jb_servers_stop '{STATE}'")
        shutil.rmtree(STATE, ignore_errors=True)


def tls_env(amqp_host="localhost", db_host="localhost", ca="ca.pem", db_ca="ca.pem"):
    return {
        "JOBBRIDGE_AMQP_URL": f"amqps://guest:guest@{amqp_host}:{TLS_PORT}",
        "JOBBRIDGE_DATABASE_URL": f"postgresql://jobbridge@{db_host}:{PG_PORT}/jobbridge"
                                  f"?sslmode=verify-full&sslrootcert={CERTS}/{db_ca}",
    }, f"{CERTS}/{ca}"


def rabbit_connections():
    """(user, ssl, peer port) of every connection the broker has."""
    out = sh(f"source '{SERVERS}'; jb_rabbitmqctl '{STATE}' list_connections --no-table-headers "
             "user ssl peer_port")
    return [line.split("\t") for line in out.splitlines() if line.strip()]


class Tls(unittest.TestCase):
    def bridge(self, ca):
        b = jbtest.Bridge(BIN, SRC, [{"event_type": "tls.#", "job_type": "t", "queue": "tls"}],
                          {"t": {"handler": "noop"}}, amqp__tls__ca_file=ca,
                          workers__threads=2)
        self.addCleanup(b.close)
        return b

    def test_events_jobs_and_job_events_over_tls(self):
        env, ca = tls_env()
        b = self.bridge(ca)
        b.start(env=env)
        n = 200
        b.publish([(json.dumps({"event_type": "tls.ping", "id": f"t-{i}", "payload": {"i": i}}),
                    "tls.ping", None) for i in range(n)])
        b.wait_count(n, 60, "status = 'COMPLETED'")
        got = b.events(n, 60)  # one job.completed per job, through the relay's TLS connection
        self.assertEqual({body["subject"] for _, _, body in got if body["type"] == "job.completed"},
                         {j["id"] for j in b.jobs()})
        # Every jobbridge connection to the database is TLS (this psql is not: it is no TLS
        # client, so it is left out by its own pid).
        ssl_rows = jbtest.psql(
            "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()")
        rows = [r.split("|") for r in ssl_rows.splitlines() if r]
        print(f"database connections: {rows}", file=sys.stderr)
        self.assertTrue(rows)
        self.assertTrue(all(r[0] == "t" for r in rows), rows)
        conns = rabbit_connections()
        print(f"broker connections (user, ssl, peer port): {conns}", file=sys.stderr)
        self.assertTrue(conns)
        self.assertTrue(all(c[1] == "true" for c in conns), conns)
        self.assertEqual(b.stop(), 0)

    def wait_error(self, b, needle):
        b.wait_log(needle, 60)
        return b.logs()

    def test_wrong_ca_for_the_broker(self):
        env, _ = tls_env()
        b = self.bridge(f"{CERTS}/other-ca.pem")
        b.start(wait_consuming=False, env=env)
        logs = self.wait_error(b, "not signed by a trusted CA (amqp.tls.ca_file)")
        self.assertNotIn('"consuming"', logs)
        # Never a plain fallback: the broker has no connection at all from jobbridge.
        self.assertEqual(rabbit_connections(), [])
        b.kill9()

    def test_wrong_host_name_for_the_broker(self):
        env, ca = tls_env(amqp_host="127.0.0.1")
        b = self.bridge(ca)
        b.start(wait_consuming=False, env=env)
        logs = self.wait_error(b, "does not name the URL's host")
        self.assertNotIn('"consuming"', logs)
        self.assertEqual(rabbit_connections(), [])
        b.kill9()

    def run_db_error(self, env, ca):
        """jobbridge migrate over a database URL that must fail its check: its message."""
        b = self.bridge(ca)
        out = subprocess.run([BIN, "migrate", "--config", b.config], capture_output=True,
                             text=True, timeout=60, env=dict(os.environ, **env))
        self.assertNotEqual(out.returncode, 0, out.stdout)
        return out.stderr

    def test_wrong_ca_for_the_database(self):
        env, ca = tls_env(db_ca="other-ca.pem")
        err = self.run_db_error(env, ca)
        print(f"wrong CA: {err.strip()}", file=sys.stderr)
        self.assertIn("certificate verify failed", err)

    def test_wrong_host_name_for_the_database(self):
        env, ca = tls_env(db_host="127.0.0.1")
        err = self.run_db_error(env, ca)
        print(f"wrong host: {err.strip()}", file=sys.stderr)
        self.assertIn('does not match host name "127.0.0.1"', err)


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
