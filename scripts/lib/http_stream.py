"""http_stream: HTTP/1.1 message framing on asyncio streams, for scripts/s3-proxy.

Heads are parsed only to learn where a message ends (Content-Length, chunked,
or the connection's end) and whether the connection stays open; bodies are
copied as they arrive, byte for byte, chunk sizes, extensions and trailers
included. Python 3 standard library only.
"""

import asyncio

MAX_HEAD = 256 * 1024  # a request or response head longer than this is refused
COPY_CHUNK = 256 * 1024


class HttpError(Exception):
    """The peer sent something this proxy cannot frame: the connection ends."""


class Head:
    """A parsed request or response head; `raw` is what is forwarded, unchanged."""

    def __init__(self, raw):
        self.raw = raw
        lines = raw.split(b"\r\n")
        self.start = lines[0].split(b" ", 2)
        if len(self.start) < 2:
            raise HttpError("bad start line %r" % lines[0][:80])
        self.headers = []
        for line in lines[1:]:
            if not line or line[:1] in (b" ", b"\t"):
                continue  # the end, or an obsolete folded continuation line
            name, sep, value = line.partition(b":")
            if not sep:
                raise HttpError("bad header line %r" % line[:80])
            self.headers.append((name.strip().lower(), value.strip()))

    def get_all(self, name):
        return [v for n, v in self.headers if n == name]

    def tokens(self, name):
        return {t.strip().lower() for v in self.get_all(name) for t in v.split(b",")}

    def chunked(self):
        te = self.get_all(b"transfer-encoding")
        return bool(te) and te[-1].split(b",")[-1].strip().lower() == b"chunked"

    def content_length(self):
        values = {v for v in self.get_all(b"content-length")}
        if not values:
            return None
        if len(values) > 1:
            raise HttpError("conflicting Content-Length")
        try:
            n = int(values.pop())
        except ValueError:
            raise HttpError("bad Content-Length")
        if n < 0:
            raise HttpError("negative Content-Length")
        return n

    def version(self, index):
        return self.start[index].upper() if index < len(self.start) else b""

    def keeps_alive(self, version_index):
        """Whether the sender expects the connection to stay open after this message."""
        conn = self.tokens(b"connection")
        if b"close" in conn:
            return False
        return self.version(version_index) == b"HTTP/1.1" or b"keep-alive" in conn


async def read_head(reader):
    """The next head (bytes up to and including the blank line), or None at a
    clean EOF before any byte. Blank lines before a request line are kept."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise HttpError("connection closed inside a head")
    except asyncio.LimitOverrunError:
        raise HttpError("head longer than %d bytes" % MAX_HEAD)
    return raw


def strip_leading_blank(raw):
    """(leading CRLFs, the rest): RFC 9112 lets a client send blank lines
    between requests; they are forwarded but are not part of the head."""
    rest = raw.lstrip(b"\r\n")
    return raw[:len(raw) - len(rest)], rest


async def copy_exact(reader, writer, n):
    while n > 0:
        data = await reader.read(min(n, COPY_CHUNK))
        if not data:
            raise HttpError("connection closed inside a body")
        n -= len(data)
        if writer is not None:
            writer.write(data)
            await writer.drain()


async def copy_line(reader, writer):
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise HttpError("connection closed inside a chunked body")
    except asyncio.LimitOverrunError:
        raise HttpError("chunk line too long")
    if writer is not None:
        writer.write(line)
    return line


async def copy_chunked(reader, writer):
    """Copies a chunked body as it is sent (sizes, extensions, trailers)."""
    while True:
        line = await copy_line(reader, writer)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise HttpError("bad chunk size line %r" % line[:80])
        if size == 0:
            while (await copy_line(reader, writer)) != b"\r\n":
                pass
            if writer is not None:
                await writer.drain()
            return
        await copy_exact(reader, writer, size + 2)


async def copy_body(reader, writer, head, is_request, no_body=False):
    """Copies one message body; returns False when the body ends only with
    the connection (a response with neither length nor chunking)."""
    if no_body:
        return True
    if head.chunked():
        await copy_chunked(reader, writer)
        return True
    n = head.content_length()
    if n is not None:
        await copy_exact(reader, writer, n)
        return True
    if is_request:
        return True  # no framing on a request: no body
    while True:
        data = await reader.read(COPY_CHUNK)
        if not data:
            return False
        writer.write(data)
        await writer.drain()
