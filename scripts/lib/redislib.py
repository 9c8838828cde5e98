"""redislib: a redis-server of the scripts' own, and a few commands to it
(Python 3, stdlib only). Used by scripts/queue-cost, scripts/queue-capacity
and scripts/test-deploy.

RedisServer starts Debian's redis-server on a free loopback port, with its
append-only file in a scratch directory (as the tests and the README's
recipe run it: nothing is lost when it restarts), waits until it answers
PING, and stops it by its pid at exit (SIGTERM, SIGKILL after 5 s). call()
speaks RESP over a socket, so no client package is needed.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import benchlib as bl


def missing():
    """Why no redis-server can be started here, or None."""
    if not shutil.which("redis-server"):
        return "redis-server is not installed (scripts/setup installs it)"
    return None


def free_port():
    """A loopback port nobody listens on now (the server may still lose a
    race for it: start() then tries another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """redis-server on 127.0.0.1:<free port>, AOF in `directory`, stopped at exit."""

    def __init__(self, directory, appendonly=True, password=""):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.password = password
        self.proc = None
        bl.on_exit(self.stop)
        for _ in range(5):
            self.port = free_port()
            if self._start():
                return
        bl.die(f"redis-server did not start; its log:\n{bl.log_tail(self.dir / 'redis.log')}")

    def _start(self):
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.dir),
             "--daemonize", "no"] + (["--requirepass", self.password] if self.password else []),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # lost the port to someone else, or failed
            try:
                if self.call("PING") == "PONG":
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        return False

    def url(self, batch):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{batch}"

    def call(self, *args):
        """One command on a fresh connection; the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            reader = Reader(s)
            if self.password:
                s.sendall(encode(("AUTH", self.password)))
                reader.reply()
            s.sendall(encode(args))
            return reader.reply()

    def info(self, section):
        """INFO <section> as a dict of strings."""
        out = {}
        for line in self.call("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def used_memory(self):
        return int(self.info("memory")["used_memory"])

    def cpu_seconds(self):
        return bl.process_cpu_seconds(self.proc.pid) if self.proc else float("nan")

    def stop(self):
        """By its pid only."""
        if self.proc is not None:
            bl.stop_process(self.proc)
            self.proc = None


def encode(args):
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class Reader:
    """RESP2 replies from a socket: simple strings and bulk strings as str,
    integers as int, arrays as lists, nil as None; an error raises."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(65536, n + 2 - len(self.buf)))
            if not chunk:
                raise OSError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"redis: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._bytes(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError(f"redis: unexpected reply {line[:40]!r}")


def batch_keys(batch):
    """The keys of a batch (coordinator/redis_batch.h), by their short names."""
    names = ("jobs", "results", "dead", "seen", "stats", "nodes", "beats", "enqueuers")
    return {n: f"thumbmill:{{{batch}}}:{n}" for n in names}


def batch_done(server, batch):
    """ok + failed + skipped of the batch's stats hash."""
    stats = server.call("HGETALL", batch_keys(batch)["stats"]) or []
    d = dict(zip(stats[::2], stats[1::2]))
    return sum(int(d.get(k, 0)) for k in ("ok", "failed", "skipped"))

