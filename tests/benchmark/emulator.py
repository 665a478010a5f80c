"""The emulated API server in its own process, counting what the operator writes.

Run by the benchmark (``python -m tests.benchmark.emulator``); prints one JSON line with its
URLs, then serves until stdin closes. Two servers on one event loop:

- the API server (``KubeEmulator``, the integration suite's emulator, with the same serving
  semantics but no kmock request history: see ``CountingEmulator._handle``), with the suite's
  fake kubelet, which passes the smoke test of the object ``SMOKE_EDIT`` only;
- a control server for the benchmark: ``GET /stats`` (counters) and ``POST /reset`` (forget
  the latest write bodies).

Writes are counted per request (PATCH/PUT/POST on GlobalEnvironments and their status) when
they do not come from the benchmark's own client or the kubelet (``NOT_OPERATOR``): a
no-op patch costs the API server as much as any other, so it counts too. Per object, the
writes until its Ready condition is first True are kept apart ("writes to Ready").
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.kube import GENV, Kube, make_emulator
from tests.support.kube_emulator import KubeEmulator
from tests.support.kube_meta import Obj
from tests.support.kubelet import Kubelet, scenario

DRIVER_AGENT = "renku-env-operator-bench"
# Not the operator: the benchmark's driver, and the fake kubelet (kmock's own client).
NOT_OPERATOR = (DRIVER_AGENT, "kmock/")
SMOKE_EDIT = "smoke-edit"  # the one object whose smoke test the fake kubelet passes
# What the smoke test's probe pod prints (as in tests/integration/test_smoke_flow.py).
PROBE_LOG = "\n".join(
    [
        "renku-probe user 1000 1000 1000 1000",
        "renku-probe mount writable /home/renku/work",
        "renku-probe workdir writable /home/renku/work",
        "renku-probe shipped-count 0 /home/renku/work",
    ]
)
WRITES = frozenset({"PATCH", "PUT", "POST"})


def _ready(obj: Obj | None) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _touched(body: Any) -> str:
    """What a write changes, in short: status keys, metadata keys and their names."""
    if isinstance(body, list):  # a JSON patch
        return ",".join(f"{op.get('op')} {op.get('path')}" for op in body if isinstance(op, dict))
    if not isinstance(body, dict):
        return "?"
    parts = [f"status.{key}" for key in sorted(body.get("status") or {})]
    for key, value in sorted((body.get("metadata") or {}).items()):
        names = sorted(value) if isinstance(value, dict) else value
        parts.append(f"metadata.{key}={names}")
    return ", ".join(parts) or ",".join(sorted(body))


def _renku_id(obj: Obj | None) -> str | None:
    found = (obj or {}).get("status", {}).get("renkuId")
    return str(found) if found else None


@attrs.define
class _Life:
    """One GlobalEnvironment's figures, kept by the emulator."""

    created: float
    writes_to_ready: int = 0
    ready_at: float | None = None
    writes: list[float] = attrs.field(factory=list)  # when the operator wrote it
    trail: list[str] = attrs.field(factory=list)  # what its first writes touched


@attrs.define
class Counters:
    """What the operator did to the API server (reset by ``POST /reset``)."""

    requests: Counter[str] = attrs.field(factory=Counter)  # "PATCH globalenvironments/status"
    lives: dict[str, _Life] = attrs.field(factory=dict)  # by object name
    # Operator writes that removed status.renkuId (a stale view written back): a few bodies.
    lost_ids: list[Any] = attrs.field(factory=list)
    event_objects: dict[str, set[str]] = attrs.field(factory=dict)  # reason: object names
    # The latest bodies of the operator's writes to GlobalEnvironments, by "METHOD what".
    recent: dict[str, list[Any]] = attrs.field(factory=dict)

    def stats(self, emulator: KubeEmulator, settle: float) -> dict[str, Any]:
        present = [
            obj.raw
            for (resource, _, _), obj in emulator.objects.items()
            if resource == GENV and not obj.deleted
        ]
        ready_at = [life.ready_at - life.created for life in self.lives.values() if life.ready_at]
        return {
            "now": time.monotonic(),  # CLOCK_MONOTONIC: comparable with the driver's clock
            "requests": dict(self.requests),
            "present": len(present),
            "ready": sum(1 for obj in present if _ready(obj)),
            "finalized": sum(1 for obj in present if obj["metadata"].get("finalizers")),
            "tracked": len(self.lives),
            "tracked_ready": len(ready_at),
            "writes_to_ready": sum(
                life.writes_to_ready for life in self.lives.values() if life.ready_at
            ),
            "seconds_to_ready": sorted(ready_at),
            "trail": self.lives["env-0000"].trail if "env-0000" in self.lives else [],
            "ready_names": {
                name: life.ready_at
                for name, life in self.lives.items()
                if name == SMOKE_EDIT and life.ready_at
            },
            # Writes from create until `settle` seconds after Ready (the last steps of the
            # first visit land after Ready): "writes from apply until it settles".
            "writes_to_settled": sum(
                sum(1 for t in life.writes if t <= life.ready_at + settle)
                for life in self.lives.values()
                if life.ready_at
            ),
            "watch_events": len(emulator.log.entries),
            "lost_id_samples": self.lost_ids[:3],
            "recent_writes": self.recent,
            "event_objects": {reason: len(names) for reason, names in self.event_objects.items()},
            "watches": sorted(
                {
                    f"{w.resource and w.resource.plural}:{w.namespace}"
                    for w in emulator.log.active_watches
                }
            ),
        }


@attrs.define(kw_only=True)
class CountingEmulator(KubeEmulator):
    """The integration suite's emulator, plus the operator's request counters."""

    counters: Counters = attrs.field(factory=Counters, init=False)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        # kmock finds a request's reaction by testing it against every reaction's view of the
        # WHOLE request history (``request in view``): O(requests so far) per request, which
        # made the emulator the benchmark's limit (quadratic). The benchmark asserts nothing
        # on kmock's history, so it keeps only this request (matched before the next await);
        # serving is unchanged. The suite's emulator keeps the history for its assertions.
        self._requests[:] = [request]
        for payload in self._payloads:
            payload._requests.clear()
        driver = request.headers.get("User-Agent", "").startswith(NOT_OPERATOR)
        method = str(request.method.value).upper() if request.method else "?"
        resource = request.resource.plural if request.resource else "?"
        what = f"{resource}/{request.subresource}" if request.subresource else str(resource)
        if not driver:
            self.counters.requests[f"{method} {what}"] += 1
            if request.resource == GENV and method in WRITES:
                recent = self.counters.recent.setdefault(f"{method} {what}", [])
                recent[:] = [*recent[-1:], request.data]
            if what == "events" and method == "POST" and isinstance(request.data, dict):
                reason = request.data.get("reason")
                self.counters.requests[f"Event {reason}"] += 1
                about = (request.data.get("involvedObject") or {}).get("name")
                self.counters.event_objects.setdefault(str(reason), set()).add(str(about))
        if request.resource == GENV and method == "POST" and driver:
            name = (request.data or {}).get("metadata", {}).get("name", "")
            self.counters.lives[name] = _Life(created=time.monotonic())
        tracked = request.resource == GENV and method in WRITES and not driver and request.name
        before = self.peek(GENV, request.namespace, request.name or "") if tracked else None
        response = await super()._handle(request)
        if tracked and _renku_id(before):
            after = self.peek(GENV, request.namespace, request.name or "")
            if after is not None and not _renku_id(after):
                self.counters.requests["writes that removed status.renkuId"] += 1
                self.counters.lost_ids.append({"path": request.url.path, "body": request.data})
        if tracked and request.name:
            life = self.counters.lives.get(request.name)
            if life is not None:
                life.writes.append(time.monotonic())
                if len(life.trail) < 12:
                    ready = (
                        " (now Ready)"
                        if _ready(self.peek(GENV, request.namespace, request.name))
                        else ""
                    )
                    life.trail.append(f"{method} {what} {_touched(request.data)}{ready}")
            if life is not None and life.ready_at is None:
                life.writes_to_ready += 1
                if _ready(self.peek(GENV, request.namespace, request.name)):
                    life.ready_at = time.monotonic()
        return response


async def serve() -> None:
    counting = make_emulator(CountingEmulator)
    assert isinstance(counting, CountingEmulator)
    control = aiohttp.web.Application()

    async def stats(request: aiohttp.web.Request) -> aiohttp.web.Response:
        settle = float(request.query.get("settle", "0"))
        return aiohttp.web.json_response(counting.counters.stats(counting, settle))

    async def reset(_: aiohttp.web.Request) -> aiohttp.web.Response:
        counting.counters.recent.clear()  # counters stay cumulative: the driver diffs them
        return aiohttp.web.json_response({})

    control.router.add_get("/stats", stats)
    control.router.add_post("/reset", reset)
    runner = aiohttp.web.AppRunner(control, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    control_port = runner.addresses[0][1]
    async with counting, kmock.Server(counting) as server:
        kubelet = Kubelet(Kube(counting, server, Path(os.devnull)))
        session = {ROLE: "session", GLOBAL_ENVIRONMENT: SMOKE_EDIT}
        kubelet.plan(session, scenario("ready", port=8888), once=False)
        probe = {ROLE: "probe", GLOBAL_ENVIRONMENT: SMOKE_EDIT}
        kubelet.plan(probe, scenario("completed", log=PROBE_LOG), once=False)
        await kubelet.start()
        api = str(server.url).rstrip("/")
        print(json.dumps({"api": api, "control": f"http://127.0.0.1:{control_port}"}), flush=True)
        # Serve until the benchmark closes our stdin (or dies: the pipe closes with it).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await kubelet.stop()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
