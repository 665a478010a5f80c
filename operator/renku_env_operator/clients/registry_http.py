"""HTTP plumbing for the registry client: metrics, retry decisions, size-limited reads."""

from __future__ import annotations

import asyncio
import contextlib
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
    may read (the declared length, else its limit) before reading, and waits when the budget
    is spent. Checks wait on any number of registries at once, so without it their answers
    together would be bounded by nothing.

    - One registry (`key`) holds at most `per_key` of it: a registry that drips its answers
      cannot take the whole budget for its checks' deadline.
    - Answers up to `small` bytes never wait (registries declare their manifests' and configs'
      lengths, a few KiB): the answers of an honest registry are read at once, whatever other
      registries hold. They are bounded by the checks in flight.
    - Reservations are taken whole, never grown while held, so readers cannot deadlock; a
      wait ends with the check's own deadline.
    """

    def __init__(self, total: int, *, per_key: int | None = None, small: int = 64 * 1024) -> None:
        self.total = total
        self.per_key = per_key if per_key is not None else max(total // 4, 1)
        self.small = small
        self.used = 0
        self._by_key: dict[str, int] = {}
        self._waiters: list[tuple[int, str, asyncio.Future[None]]] = []

    @property
    def free(self) -> int:
        return self.total - self.used

    def _fits(self, size: int, key: str) -> bool:
        return self.used + size <= self.total and self._by_key.get(key, 0) + size <= self.per_key

    def _take(self, size: int, key: str) -> None:
        self.used += size
        self._by_key[key] = self._by_key.get(key, 0) + size

    @contextlib.asynccontextmanager
    async def reserve(self, size: int, key: str = "") -> AsyncIterator[None]:
        if size <= self.small:
            yield
            return
        size = min(size, self.per_key, self.total)
        if self._fits(size, key):
            self._take(size, key)
        else:
            entry = (size, key, asyncio.get_running_loop().create_future())
            self._waiters.append(entry)
            try:
                await entry[2]
            except BaseException:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                elif entry[2].done() and not entry[2].cancelled():
                    self._give_back(size, key)  # granted, then cancelled before it could read
                raise
        try:
            yield
        finally:
            self._give_back(size, key)

    def _give_back(self, size: int, key: str) -> None:
        self.used -= size
        left = self._by_key[key] - size
        if left:
            self._by_key[key] = left
        else:
            del self._by_key[key]  # no entry is kept for a registry that holds nothing
        for entry in list(self._waiters):  # in order; one registry's waiters never block others
            wanted, owner, future = entry
            if self._fits(wanted, owner):
                self._waiters.remove(entry)
                if not future.done():
                    self._take(wanted, owner)
                    future.set_result(None)
