"""HTTP plumbing for the registry client: metrics, retry decisions, size-limited reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

import httpx

from .. import metrics

# 408 and 429 are the server asking us to come back; 5xx are the server's own trouble.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class TransientStatus(Exception):
    """A response worth retrying; carries the Retry-After delay when the server gave one."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = float(retry_after) if retry_after and retry_after.isdigit() else None


class BodyTooLarge(Exception):
    """A response body went over the caller's limit; reading stopped there."""


def retry_hook(max_wait: float) -> Callable[[Exception], bool | float]:
    """stamina's `on`: retry transport errors and transient statuses.

    A Retry-After longer than `max_wait` is not waited for: the error goes up at once and the
    caller (kopf) retries later, instead of a handler sleeping for minutes.
    """

    def decide(error: Exception) -> bool | float:
        if isinstance(error, httpx.TransportError):
            return True
        if isinstance(error, TransientStatus):
            if error.retry_after is None:
                return True
            return error.retry_after if error.retry_after <= max_wait else False
        return False

    return decide


async def read_limited(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The body of a streamed response, reading no more than `limit` bytes.

    Over the limit: BodyTooLarge, or (`truncate`) the first `limit` bytes, for error bodies
    that are only looked at for their error codes.
    """
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity: a compressed body's decompressed size would be unbounded.
        raise BodyTooLarge(f"compressed with {encoding}, which was not asked for")
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"declared {declared} bytes")
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():  # identity only: see above
        total += len(chunk)
        if total > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (total - limit)])
                break
            raise BodyTooLarge(f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def settle(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """Read a response of the auth flow within `limit`, close it, and leave that as its content.

    httpx reads every response an auth flow answers (the 401, the token answer) in full before
    sending the next request; with the content already there, it reads nothing more.
    """
    try:
        body = await read_limited(response, limit, truncate=truncate)
    finally:
        await response.aclose()
    response._content = body  # what httpx's aread() returns from now on
    return body


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts every request (token requests and redirects included) in REGISTRY_REQUESTS."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            metrics.REGISTRY_REQUESTS.labels(request.method, "error").inc()
            raise
        metrics.REGISTRY_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class ReadBudget:
    """The bytes of answers being read at once, across every check: a reader reserves what it
    may read (the declared length, else its limit) before reading, and waits its turn (first
    come, first served) when the budget is spent. Checks wait on any number of registries at
    once, so without it their bodies together would bound nothing.

    Reservations are taken whole, never grown while held, so readers cannot deadlock; a wait
    ends with the check's own deadline.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        size = min(size, self.total)
        if self._waiters or self.free < size:
            entry = (size, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await entry[1]
            except BaseException:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                elif entry[1].done() and not entry[1].cancelled():
                    self._give_back(size)  # granted, then cancelled before it could read
                raise
        else:
            self.free -= size
        try:
            yield
        finally:
            self._give_back(size)

    def _give_back(self, size: int) -> None:
        self.free += size
        while self._waiters and self._waiters[0][0] <= self.free:
            wanted, future = self._waiters.popleft()
            if not future.done():
                self.free -= wanted
                future.set_result(None)
