"""A TCP proxy for PostgreSQL's wire protocol that can lose a reply after a commit.

It listens on a free loopback port and forwards every connection to the test server. A trap,
once armed, watches the messages clients send: when one of the given type contains every given
byte string (a prepared statement's name in a Bind message, say), the server's reply to it is
held back up to and including ReadyForQuery ('Z'). If the trap fires, that reply is dropped and
both sides of the connection are closed: the server has committed the statement, the client
never learns it (as after a network cut, a failover or a crash after the commit). A trap with
need_rows fires only on a reply that carries at least one row (DataRow, 'D'); a reply without
rows is passed on and the trap stays armed. Each trap fires once. A trap with delay_s delivers
the reply it holds that many seconds late instead of dropping it (a slow network, a stalled
server), and the connection goes on.

A black hole, once armed, silences the connections open at that moment, as a silent network cut
does (a failover, a dropped route): nothing is forwarded either way, nothing is closed, and the
kernel drops their packets (an nftables rule on the client's port, so jobbridge's TCP gets no
acknowledgement either: a proxy that only stopped reading would still have its kernel answer
keepalives and acknowledge data). Connections made afterwards are forwarded as usual. Lifting
it removes the rule, then closes those connections. It needs root and nft; BlackHoleUnavailable
says why when it cannot be armed.

The proxy answers SSLRequest and GSSENCRequest itself with 'N' (no encryption), so both
streams are plain typed messages after the startup packet.

    proxy = Proxy(target_port)           # listening at once on 127.0.0.1:proxy.port
    trap = proxy.trap("B", [b"jb_claim_any"], need_rows=True)
    ... trap.fired.wait(30) ...
    hole = proxy.black_hole()            # the connections open now go silent
    ... hole.lift() ...
    proxy.close()

usage as a program: pgproxy.py TARGET_PORT (forwards until interrupted, no traps)
"""
import atexit
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class Trap:
    def __init__(self, msg_type, needles, need_rows, delay_s=None):
        self.delay_s = delay_s
        self.msg_type = msg_type.encode() if isinstance(msg_type, str) else msg_type
        self.needles = list(needles)
        self.need_rows = need_rows
        self.fired = threading.Event()
        self.lock = threading.Lock()

    def matches(self, msg_type, body):
        return (not self.fired.is_set() and msg_type == self.msg_type
                and all(n in body for n in self.needles))


class BlackHoleUnavailable(Exception):
    pass


class BlackHole:
    """The links silenced together; see the module's doc."""

    def __init__(self, proxy, links):
        self.proxy = proxy
        self.links = links
        self.table = f"jbproxy_{proxy.port}_{id(self) & 0xffff}"
        self.lifted = False
        nft = shutil.which("nft")
        if nft is None:
            raise BlackHoleUnavailable("nft is not installed (Debian package nftables)")
        ports = ", ".join(str(link.client_port) for link in links) or "0"
        script = (f"add table inet {self.table}\n"
                  f"add chain inet {self.table} in {{ type filter hook input priority -300; }}\n"
                  f"add rule inet {self.table} in tcp dport {proxy.port} tcp sport {{ {ports} }} drop\n"
                  f"add rule inet {self.table} in tcp sport {proxy.port} tcp dport {{ {ports} }} drop\n")
        out = subprocess.run([nft, "-f", "-"], input=script, capture_output=True, text=True)
        if out.returncode != 0:
            raise BlackHoleUnavailable(f"nft refused the rule: {out.stderr.strip()}")
        for link in links:
            link.silent = True
        atexit.register(self.lift)
        proxy.log(f"black hole armed for {len(links)} connections (ports {ports})")

    def lift(self):
        if self.lifted:
            return
        self.lifted = True
        subprocess.run(["nft", "delete", "table", "inet", self.table], capture_output=True)
        for link in self.links:
            link.close()
        self.proxy.log("black hole lifted: its connections closed")


def _read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


class _Link:
    """One client connection and its server connection, with a pump each way."""

    def __init__(self, proxy, client, server):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.pending = None  # the trap whose reply is being held back
        self.silent = False  # in a black hole: nothing is forwarded
        self.client_port = client.getpeername()[1]
        self.lock = threading.Lock()
        self.closed = False

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def client_to_server(self):
        try:
            while True:  # the startup packet: no type byte
                head = _read_exact(self.client, 4)
                (length,) = struct.unpack("!I", head)
                body = _read_exact(self.client, length - 4)
                code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    self.client.sendall(b"N")
                    continue
                self.server.sendall(head + body)
                break
            while True:
                head = _read_exact(self.client, 5)
                msg_type = head[:1]
                (length,) = struct.unpack("!I", head[1:])
                body = _read_exact(self.client, length - 4)
                if self.silent:
                    continue
                for trap in self.proxy.traps():
                    if trap.matches(msg_type, body):
                        with self.lock:
                            self.pending = trap
                        break
                self.server.sendall(head + body)
        except (EOFError, OSError):
            pass
        self.close()

    def server_to_client(self):
        held = []
        try:
            while True:
                head = _read_exact(self.server, 5)
                (length,) = struct.unpack("!I", head[1:])
                msg = head + _read_exact(self.server, length - 4)
                if self.silent:
                    continue
                with self.lock:
                    trap = self.pending
                if trap is None:
                    self.client.sendall(msg)
                    continue
                held.append(msg)
                if msg[:1] != b"Z":
                    continue
                rows = any(m[:1] == b"D" for m in held)
                fire = False
                with trap.lock:
                    if not trap.fired.is_set() and (rows or not trap.need_rows):
                        trap.fired.set()
                        fire = True
                with self.lock:
                    self.pending = None
                if fire and trap.delay_s is not None:
                    self.proxy.log(f"reply delayed by {trap.delay_s}s")
                    time.sleep(trap.delay_s)
                elif fire:
                    self.proxy.log(f"reply lost after commit ({len(held)} messages dropped)")
                    break
                self.client.sendall(b"".join(held))
                held = []
        except (EOFError, OSError):
            pass
        self.close()


class Proxy:
    def __init__(self, target_port, target_host="127.0.0.1", verbose=False):
        self.target = (target_host, int(target_port))
        self.verbose = verbose
        self._traps = []
        self._lock = threading.Lock()
        self._links = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._stopped = False
        self._holes = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def log(self, text):
        if self.verbose:
            print(f"pgproxy: {text}", file=sys.stderr)

    def url(self, base_url):
        """base_url (postgresql://user@host:port/db) with the proxy's address instead."""
        scheme, rest = base_url.split("://", 1)
        auth, _, tail = rest.rpartition("@")
        _, _, path = tail.partition("/")
        return f"{scheme}://{auth + '@' if auth else ''}127.0.0.1:{self.port}/{path}"

    def trap(self, msg_type, needles, need_rows=False, delay_s=None):
        t = Trap(msg_type, needles, need_rows, delay_s)
        with self._lock:
            self._traps.append(t)
        return t

    def black_hole(self):
        """Silences every connection open now (see the module's doc); returns the BlackHole."""
        with self._lock:
            links = [link for link in self._links if not link.closed]
        hole = BlackHole(self, links)
        with self._lock:
            self._holes.append(hole)
        return hole

    def traps(self):
        with self._lock:
            return [t for t in self._traps if not t.fired.is_set()]

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client, server)
            with self._lock:
                self._links.append(link)
            threading.Thread(target=link.client_to_server, daemon=True).start()
            threading.Thread(target=link.server_to_client, daemon=True).start()

    def close(self):
        self._stopped = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            links, self._links = self._links, []
            holes, self._holes = self._holes, []
        for hole in holes:
            hole.lift()
        for link in links:
            link.close()


if __name__ == "__main__":
    p = Proxy(sys.argv[1], verbose=True)
    print(f"pgproxy: 127.0.0.1:{p.port} -> 127.0.0.1:{sys.argv[1]}", file=sys.stderr)
    threading.Event().wait()
