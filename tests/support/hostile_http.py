"""A misbehaving HTTP server on loopback, for the registry client's defences.

Routes are set per test (`server.route(path, handler)`); a handler gets the request handler and
writes what it likes: redirects anywhere, a 300 MiB body produced lazily, a byte every half
second. The server counts the requests per path and the body bytes it managed to write, so a
test can assert what the client did NOT fetch. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[["Request"], None]
MIB = 1024 * 1024


class Request(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            self.server.requests[f"{self.command} {path}"] += 1
        handler = self.server.routes.get(path, self.server.fallback)
        if handler is None:
            self.answer(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')
            return
        handler(self)

    def answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def stream(self, status: int, chunks: Iterable[bytes], **headers: str) -> None:
        """A chunked body, written until the client hangs up; counted in `sent`."""
        self.send_response(status)
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        try:
            for chunk in chunks:
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.flush()
                with self.server.lock:
                    self.server.sent[self.path.split("?", 1)[0]] += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def huge(total: int = 300 * MIB, chunk: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes of JSON-ish filler, produced as they are asked for."""
    block = b" " * chunk
    for _ in range(total // chunk):
        yield block


def drip(byte: bytes = b" ", every: float = 0.5, count: int = 1000) -> Iterator[bytes]:
    """One byte every `every` seconds: under any per-read timeout, forever in effect."""
    for _ in range(count):
        yield byte
        time.sleep(every)


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Request)
        self.routes: dict[str, Handler] = {}
        self.fallback: Handler | None = None  # for paths no route names
        self.requests: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the client hung up: its choice
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()
