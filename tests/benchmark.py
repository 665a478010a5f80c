"""Benchmark: the real operator on the emulated API server and the Renku double.

Prints figures, asserts nothing (`make bench`). Measures, for N GlobalEnvironments (smoke tests
off, so Renku's side is what is timed): time until all are Ready, Renku requests per object,
list requests per drift interval (one for all objects is the design), and the process's peak
memory; then the operator's own cost of a steady-state reconcile over 1,000 objects. The
emulated API server (kmock, one Python event loop) is the bottleneck beyond ~50 objects: its
figures are the operator plus the emulator, not a real API server.

    .venv/bin/python -m tests.benchmark [N]    (or: make bench)
"""

from __future__ import annotations

import asyncio
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import kmock
import kubernetes.config.kube_config

from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.kube import KubeClient
from renku_env_operator.config import Settings
from renku_env_operator.runner import run_operator
from renku_env_operator.services.objects import Objects
from renku_env_operator.services.reconciler import ObjectRef, Reconciler
from tests.support.kube import GENV, Kube, make_emulator, write_kubeconfig
from tests.support.kube_emulator import KubeEmulator
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.operator_fixtures import NAMESPACE, genv, has_condition, test_settings
from tests.support.operator_runner import OperatorThread, configure_for_emulator
from tests.support.renku_double import RenkuDouble

DRIFT_INTERVAL = 2.0


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bench(count: int) -> dict[str, Any]:
    emulator = make_emulator()
    with RenkuDouble() as renku, tempfile.TemporaryDirectory() as tmp:
        async with emulator, kmock.Server(emulator) as server:
            config = write_kubeconfig(Path(tmp) / "kubeconfig", str(server.url).rstrip("/"))
            # kubernetes.config reads $KUBECONFIG at import: point its default at the emulator.
            os.environ["KUBECONFIG"] = str(config)
            kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(config)
            kube = Kube(emulator, server, config)
            settings = test_settings(
                renku,
                drift_interval_seconds=DRIFT_INTERVAL,
                smoke_poll_seconds=2.0,
                retry_backoff_seconds=15.0,
                log_level="WARNING",
            )

            def target(stop: threading.Event, ready: threading.Event) -> None:
                run_operator(
                    settings, stop_flag=stop, ready_flag=ready, tune=configure_for_emulator
                )

            async with OperatorThread(target, ready_timeout=30, stop_timeout=30):
                await kube.wait_watching(GENV, NAMESPACE)
                started = time.monotonic()
                for index in range(count):
                    await kube.create(genv(f"env-{index:04d}", smokeTest={"enabled": False}))
                for index in range(count):
                    await kube.wait_for(
                        GENV,
                        NAMESPACE,
                        f"env-{index:04d}",
                        has_condition("Ready", "True"),
                        timeout=120,
                    )
                all_ready = time.monotonic() - started
                writes = renku.count("POST") + renku.count("PATCH")
                renku.clear_requests()
                steady_from = time.monotonic()
                await asyncio.sleep(DRIFT_INTERVAL * 5)  # a benchmark measures over time on purpose
                steady = time.monotonic() - steady_from
                lists = renku.count("GET", "/api/data/environments")
    return {
        "objects": count,
        "seconds until all Ready": round(all_ready, 2),
        "objects Ready per second": round(count / all_ready, 1),
        "Renku writes per object": round(writes / count, 2),
        "list requests per drift interval (all objects)": round(
            lists / (steady / DRIFT_INTERVAL), 2
        ),
        "Renku requests per object per interval, steady": round(
            renku.count() / count / (steady / DRIFT_INTERVAL), 3
        ),
        "peak RSS (MiB)": round(peak_rss_mib(), 1),
    }


async def bench_reconcile(count: int, seconds: float = 2.0) -> dict[str, Any]:
    """The operator's own cost of a steady-state reconcile (in-memory Renku; the ownership
    records on the emulator are read once per object, then come from the cache)."""
    emulator = make_emulator()
    with tempfile.TemporaryDirectory() as tmp:
        async with emulator, kmock.Server(emulator) as server:
            config = write_kubeconfig(Path(tmp) / "kubeconfig", str(server.url).rstrip("/"))
            kube = KubeClient.from_environment(str(config))
            claims = ClaimsClient(kube.api_client, NAMESPACE)
            try:
                return await _bench_reconcile(count, seconds, claims, emulator)
            finally:
                await kube.close()


async def _bench_reconcile(
    count: int, seconds: float, claims: ClaimsClient, emulator: KubeEmulator
) -> dict[str, Any]:
    renku = MemoryRenku()
    reconciler = Reconciler(Settings(image_checks=False), publisher_for(renku, claims), None, None)
    spec = {"image": "ghcr.io/example/env:1.0.0", "smokeTest": {"enabled": False}}
    refs = [ObjectRef("renku", f"env-{i}", f"uid-{i}", 1) for i in range(count)]
    objects, status = Objects(), {}
    for ref in refs:
        outcome = await reconciler.reconcile(
            ref, spec, GlobalEnvironmentStatus(), objects.get(ref.uid)
        )
        status[ref.uid] = outcome.status
    renku.log.clear()
    writes_before = len(emulator.log.entries)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for ref in refs:
            await reconciler.reconcile(ref, spec, status[ref.uid], objects.get(ref.uid))
            calls += 1
    elapsed = time.perf_counter() - started
    return {
        "steady reconciles (pure, in-memory Renku)": calls,
        "microseconds per steady reconcile": round(elapsed / calls * 1e6),
        "Renku calls during them": len(renku.log),
        "claim writes during them": len(emulator.log.entries) - writes_before,
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    results = asyncio.run(bench(count)) | asyncio.run(bench_reconcile(1000))
    for key, value in results.items():
        print(f"{key:50s} {value}")


if __name__ == "__main__":
    main()
