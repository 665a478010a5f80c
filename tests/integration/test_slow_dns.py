"""Finding 5 of issue 19: a user's slow registry DNS must not stall Kubernetes calls.

getaddrinfo blocks a thread for as long as the lookup takes, and cancelling the wait leaves
the thread blocked. The fake resolver below blocks every lookup of `*.slow.test` until the
test ends (or a 3 s deadline), as a registry's unanswered DNS would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.kube import KubeClient
from renku_env_operator.clients.registry_net import resolve
from tests.support.kube import Kube

LOOKUPS = 32  # more than any default thread pool holds (min(32, cores + 4))


class SlowDns:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = 0
        self._lock = threading.Lock()


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDns]:
    dns = SlowDns()
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".slow.test"):
            with dns._lock:
                dns.blocked += 1
            dns.release.wait(3.0)
            raise socket.gaierror(socket.EAI_AGAIN, "timed out")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield dns
    dns.release.set()


async def test_slow_registry_dns_leaves_claims_get_fast(kube: Kube, slow_dns: SlowDns) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    claims = ClaimsClient(k, "renku")
    await claims.get("warm-up")  # the connection pool is open before the lookups start
    lookups = [asyncio.create_task(resolve(f"r{i}.slow.test", 443)) for i in range(LOOKUPS)]
    while slow_dns.blocked == 0:  # at least one lookup holds a thread
        await asyncio.sleep(0.01)
    started = time.monotonic()
    assert await claims.get("env-x") is None
    latency = time.monotonic() - started
    slow_dns.release.set()
    await asyncio.gather(*lookups, return_exceptions=True)
    await k.close()
    print(f"claims GET during {LOOKUPS} blocked lookups: {latency * 1000:.0f} ms")
    assert latency < 1.0
