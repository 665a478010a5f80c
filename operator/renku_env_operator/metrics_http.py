"""The Prometheus endpoint, served on the operator's event loop with bounded connections.

prometheus_client's `start_http_server` keeps one thread per connection and never times an
idle one out: 300 idle connections from any pod were 302 threads (issue 19 finding 8). Here
aiohttp serves the registry (prometheus_client's own aiohttp handler: content negotiation,
gzip, `name[]` filters) and every connection is bounded:

- a request must arrive within `timeout` seconds of connecting (aiohttp's keep-alive timer,
  which also runs before the first request), else the connection is closed;
- one request per connection (`Connection: close`, as prometheus_client's HTTP/1.0 server
  did), so an answered connection ends at once;
- no connection lives longer than twice `timeout` (a client that never reads its answer);
- at most `max_connections` at once: a new one closes the oldest, preferring one that has sent
  nothing yet, so idle connections can never keep a scrape out.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PATH = "/metrics"


class _Bounded(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, a deadline and a place in the table."""

    def __init__(self, server: MetricsServer, inner: asyncio.Protocol) -> None:
        self.server = server
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.heard = False  # any byte received: an idle one is closed first when full
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._admit(self)
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(2 * self.server.timeout, self.abort)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.heard = True
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.server._release(self)
        self.inner.connection_lost(exc)

    def abort(self) -> None:
        # abort(), not close(): close() waits for a reader that may never read.
        if self.transport is not None:
            self.transport.abort()


class MetricsServer:
    """`await start()`, `await stop()`; `port` is the bound port (0 asks for a free one)."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - scraped from other pods; the NetworkPolicy limits who
        timeout: float = 10.0,
        max_connections: int = 32,
        registry: Collector = REGISTRY,
    ) -> None:
        self.host, self.port = host, port
        self.timeout = timeout
        self.max_connections = max_connections
        self.registry = registry
        self.open: collections.OrderedDict[_Bounded, None] = collections.OrderedDict()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        metrics = make_aiohttp_handler(self.registry)

        async def handler(request: web.Request) -> web.StreamResponse:
            response = await metrics(request)
            response.force_close()  # one request per connection
            return response

        app = web.Application()
        app.router.add_get(PATH, handler)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, keepalive_timeout=self.timeout
        )
        await self._runner.setup()
        inner = self._runner.server
        assert inner is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Bounded(self, inner()),
            self.host,
            self.port,
            reuse_address=True,
            backlog=self.max_connections,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.debug("metrics on %s:%d%s", self.host, self.port, PATH)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.open):
                connection.abort()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def _admit(self, connection: _Bounded) -> None:
        if len(self.open) >= self.max_connections:
            silent = next((c for c in self.open if not c.heard), None)
            victim = silent or next(iter(self.open))
            self.open.pop(victim)
            victim.abort()
        self.open[connection] = None

    def _release(self, connection: _Bounded) -> None:
        self.open.pop(connection, None)
