"""The operator's own cost of a steady-state reconcile: no HTTP to Renku, no status writes.

It calls the reconcile service directly over N objects with an in-memory Renku, so the figure
is the pipeline's CPU cost alone (what remains when I/O is free). The ownership records live
on an emulated API server: read once per object, then they come from the operator's cache.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import kmock

from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.kube import KubeClient
from renku_env_operator.config import Settings
from renku_env_operator.services.objects import Objects
from renku_env_operator.services.reconciler import ObjectRef, Reconciler
from tests.benchmark.emulator import CountingEmulator
from tests.support.kube import make_emulator, write_kubeconfig
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.operator_fixtures import NAMESPACE


async def bench_reconcile(count: int, seconds: float = 2.0) -> dict[str, Any]:
    """Reconcile ``count`` unchanged objects again and again for ``seconds``."""
    # The benchmark's emulator: kmock's request history would make the set-up quadratic.
    emulator = make_emulator(factory=CountingEmulator)
    assert isinstance(emulator, CountingEmulator)
    with tempfile.TemporaryDirectory() as tmp:
        async with emulator, kmock.Server(emulator) as server:
            config = write_kubeconfig(Path(tmp) / "kubeconfig", str(server.url).rstrip("/"))
            kube = KubeClient.from_environment(str(config))
            try:
                claims = ClaimsClient(kube, NAMESPACE)
                return await _bench(count, seconds, claims, emulator)
            finally:
                await kube.close()


async def _bench(
    count: int, seconds: float, claims: ClaimsClient, emulator: CountingEmulator
) -> dict[str, Any]:
    renku = MemoryRenku()
    reconciler = Reconciler(Settings(image_checks=False), publisher_for(renku, claims), None, None)
    spec = {"image": "ghcr.io/example/env:1.0.0", "smokeTest": {"enabled": False}}
    refs = [ObjectRef(NAMESPACE, f"env-{i}", f"uid-{i}", 1) for i in range(count)]
    objects, status = Objects(), {}
    for ref in refs:
        first = await reconciler.reconcile(
            ref, spec, GlobalEnvironmentStatus(), objects.get(ref.uid)
        )
        status[ref.uid] = first.status
    renku.log.clear()
    requests_before = sum(emulator.counters.requests.values())
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for ref in refs:
            await reconciler.reconcile(ref, spec, status[ref.uid], objects.get(ref.uid))
            calls += 1
    elapsed = time.perf_counter() - started
    return {
        f"steady reconciles (pure, in-memory Renku, {count:,} objects)": calls,
        "microseconds per steady reconcile": round(elapsed / calls * 1e6),
        "Renku calls during them": len(renku.log),
        "API server requests during them (claims)": (
            sum(emulator.counters.requests.values()) - requests_before
        ),
    }
