"""recording_upstream: a small HTTP/1.1 origin on 127.0.0.1 for scripts/test-s3-proxy.

It records every byte it receives and sends, per connection, and every
request head in arrival order, so a test can compare what a client sent with
what arrived through a proxy. Threads; Python 3 standard library only.
"""

import hashlib
import socket
import threading
import time

DEADLINE = 30.0  # seconds wait_requests waits by default


class Conn:
    """What one connection carried, both ways, byte for byte."""

    def __init__(self):
        self.received = bytearray()
        self.sent = bytearray()
        self.drop_next = False  # close without answering the next request


class Upstream:
    """PUT stores the body under the path; GET and HEAD return it: with
    Content-Length, or chunked with an extension and a trailer under
    /chunked/, or close-delimited under /close/. /stall/ never answers;
    /idle-close/ closes the connection after its answer (an idle timeout);
    after /drop-next/ the connection is closed, unanswered, when the next
    request arrives. A request with Expect: 100-continue gets a 100 first."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Condition()
        self.conns = []
        self.requests = []  # (method, path, {lowercase header: value})
        self.objects = {}
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            c = Conn()
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self.serve, args=(s, c), daemon=True).start()

    def wait_requests(self, pred, timeout=DEADLINE):
        end = time.monotonic() + timeout
        with self.lock:
            while not pred(self.requests):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.lock.wait(left)
            return True

    def count(self, method, path):
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == method and p == path)

    def serve(self, s, c):
        buf = bytearray()

        def fill():
            data = s.recv(65536)
            if not data:
                raise EOFError
            c.received.extend(data)
            buf.extend(data)

        def take_until(sep):
            while sep not in buf:
                fill()
            i = buf.index(sep) + len(sep)
            out = bytes(buf[:i])
            del buf[:i]
            return out

        def take(n):
            while len(buf) < n:
                fill()
            out = bytes(buf[:n])
            del buf[:n]
            return out

        def send(data):
            c.sent.extend(data)
            s.sendall(data)

        try:
            while True:
                head = take_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
                method, path, _ = head[0].split(" ", 2)
                headers = {}
                for line in head[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                with self.lock:
                    self.requests.append((method, path, headers))
                    self.lock.notify_all()
                if c.drop_next:
                    break
                if headers.get("expect", "").lower() == "100-continue":
                    send(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = b""
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(take_until(b"\r\n").split(b";")[0], 16)
                        if size == 0:
                            while take_until(b"\r\n") != b"\r\n":
                                pass
                            break
                        parts.append(take(size + 2)[:-2])
                    body = b"".join(parts)
                elif "content-length" in headers:
                    body = take(int(headers["content-length"]))
                if path.startswith("/stall/"):  # never answers; ends when the client leaves
                    while s.recv(65536):
                        pass
                    break
                c.drop_next = path.startswith("/drop-next/")
                if not self.respond(method, path, headers, body, send):
                    break
        except (EOFError, OSError, ValueError):
            pass
        finally:
            s.close()

    def respond(self, method, path, headers, body, send):
        """Sends the answer; returns whether the connection stays open."""
        key = path.split("?")[0]
        for prefix in ("/chunked", "/close", "/idle-close", "/drop-next"):
            if key.startswith(prefix + "/"):
                key = key[len(prefix):]
        if method == "PUT":
            with self.lock:
                self.objects[key] = body
            send(b'HTTP/1.1 200 OK\r\nETag: "%s"\r\nContent-Length: 0\r\n\r\n'
                 % hashlib.md5(body).hexdigest().encode())
            return True
        with self.lock:
            obj = self.objects.get(key)
        if obj is None:
            send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return True
        if path.startswith("/chunked/"):
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
            if method == "HEAD":
                send(head)
                return True
            half = len(obj) // 2
            send(head + b"%x;ext=1\r\n" % half + obj[:half] + b"\r\n"
                 + b"%X\r\n" % (len(obj) - half) + obj[half:] + b"\r\n"
                 + b"0\r\nX-Sum: %s\r\n\r\n" % hashlib.sha256(obj).hexdigest().encode())
            return True
        if path.startswith("/idle-close/"):  # closes after a framed answer, as on an idle timeout
            send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(obj) + obj)
            return False
        if path.startswith("/close/"):
            send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + (b"" if method == "HEAD" else obj))
            return False
        send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nx-Odd-CASE: a\r\nx-odd-case: b\r\n\r\n"
             % len(obj) + (b"" if method == "HEAD" else obj))
        return True
