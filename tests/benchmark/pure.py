"""The operator's own cost of a steady-state reconcile: no API server, no HTTP.

It calls the reconcile service directly over 1,000 objects with an in-memory Renku, so the
figure is the pipeline's CPU cost alone (what remains when I/O is free).
"""

from __future__ import annotations

import time
from typing import Any

from renku_env_operator.config import Settings
from renku_env_operator.services.reconciler import ObjectRef, Reconciler
from tests.support.memory_renku import MemoryRenku, publisher_for


async def bench_reconcile(count: int, seconds: float = 2.0) -> dict[str, Any]:
    """Reconcile ``count`` unchanged objects again and again for ``seconds``."""
    renku = MemoryRenku()
    reconciler = Reconciler(Settings(image_checks=False), publisher_for(renku), None, None)
    spec = {"image": "ghcr.io/example/env:1.0.0", "smokeTest": {"enabled": False}}
    refs = [ObjectRef("renku", f"env-{i}", f"uid-{i}", 1) for i in range(count)]
    status = {}
    for ref in refs:
        outcome = await reconciler.reconcile(ref, spec, {}, claimed=())
        status[ref.uid] = outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    renku.log.clear()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for ref in refs:
            await reconciler.reconcile(ref, spec, status[ref.uid], claimed=())
            calls += 1
    elapsed = time.perf_counter() - started
    return {
        "steady reconciles (pure, in-memory Renku, 1,000 objects)": calls,
        "microseconds per steady reconcile": round(elapsed / calls * 1e6),
        "Renku calls during them": len(renku.log),
    }
