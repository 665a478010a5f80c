"""Connections to registries that cannot be steered into the cluster.

The check sits where the socket is opened, in an httpcore network backend: the host name is
resolved once, every address it resolves to is judged (domain/outbound.py), and the connection
goes to an address that was judged. So DNS rebinding between a check and the connect does not
help (there is no second resolution), and every connection is covered: the registry, each
redirect hop and the Bearer token realm, whoever named them. TLS still verifies the certificate
against the host name (httpcore passes the origin's name as SNI, not the address).
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import httpcore
import httpx

from ..domain.outbound import AddressPolicy

Resolver = Callable[[str, int], Awaitable[list[str]]]
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


# getaddrinfo blocks a thread for as long as the registry's DNS takes, and a deadline cancels
# the wait, not the thread: lookups get a pool of their own, so a user's slow DNS delays only
# registry checks (queued here), never the Kubernetes calls (clients/kube.py has its own pool).
DNS_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")


class TargetRefused(Exception):
    """A connection the address rules do not allow; nothing was sent."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (an address literal resolves to itself)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.run_in_executor(
            DNS_EXECUTOR, functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        )
    except socket.gaierror as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, judges, then connects to a judged address only."""

    def __init__(
        self,
        inner: httpcore.AsyncNetworkBackend,
        policy: AddressPolicy,
        resolver: Resolver = resolve,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._resolve = resolver

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port)
        refusal = self._policy.refusal(host, port, addresses)
        if refusal is not None:
            raise TargetRefused(refusal)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as failed:  # try the next address, as a resolver would
                error = failed
        raise error or httpcore.ConnectError(f"cannot connect to {host}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise TargetRefused(f"unix socket {path}: registries are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(
    policy: AddressPolicy,
    *,
    resolver: Resolver = resolve,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection passes the address rules.

    httpx does not take a network backend, so it is set on the transport's pool: a test
    (tests/integration/test_registry_guard.py) fails if a new httpx moves it.
    """
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    if not isinstance(pool, httpcore.AsyncConnectionPool):  # pragma: no cover - no proxy here
        raise TypeError("unexpected httpx transport internals")
    backend = inner or pool._network_backend
    pool._network_backend = GuardedBackend(backend, policy, resolver)
    return transport
