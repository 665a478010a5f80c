"""The scale benchmark: the real operator, N GlobalEnvironments, three processes.

- the emulated API server in its own process (``tests.benchmark.emulator``), which counts the
  operator's requests;
- the operator in its own process (``tests.benchmark.operator_process``): its RSS and CPU
  time are its own;
- this process: the Renku double (its own thread and event loop, it counts Renku requests)
  and the driver, which plays ``kubectl`` and reads the counters.

Phases: create N objects (smoke tests off), wait until all are Ready, steady state for S
seconds, edit one description and time it to Renku's PATCH, the same on one more object whose
smoke test is on (the emulator's fake kubelet passes its pods), delete all and time it to the
last finalizer released. It prints figures and asserts nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import aiohttp

from tests.benchmark import profile
from tests.benchmark.emulator import DRIVER_AGENT, SMOKE_EDIT
from tests.support.kube import write_kubeconfig
from tests.support.operator_fixtures import NAMESPACE, genv, operator_settings_values
from tests.support.renku_double import RenkuDouble

GENV_PATH = f"/apis/renku.io/v1alpha1/namespaces/{NAMESPACE}/globalenvironments"
ENVS = "/api/data/environments"
GENV_WRITES = tuple(
    f"{verb} {what}"
    for verb in ("PATCH", "PUT", "POST")
    for what in ("globalenvironments", "globalenvironments/status")
)
JSON = "application/json"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IN_FLIGHT = 16  # the driver's concurrent requests (kubectl apply -f dir/ is sequential)


@dataclass(frozen=True)
class Options:
    objects: int
    steady_seconds: float
    drift_interval: float
    settle_seconds: float
    phase_timeout: float
    profile_dir: Path | None
    tracemalloc: bool
    log_path: Path | None


@dataclass
class Proc:
    """A child process and what /proc says about it."""

    process: asyncio.subprocess.Process
    name: str
    samples: list[tuple[float, float]] = field(default_factory=list)  # (t, RSS MiB)

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self, key: str) -> float:
        """A ``/proc/PID/status`` size (VmRSS, VmHWM) in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
        raise LookupError(key)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.process.returncode is None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies (Linux PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def _child_env(kubeconfig: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


class Bench:
    def __init__(self, options: Options, renku: RenkuDouble, tmp: Path) -> None:
        self.options = options
        self.renku = renku
        self.tmp = tmp
        self.results: dict[str, Any] = {}
        self.api = ""
        self.control = ""
        self.emulator: Proc | None = None
        self.operator: Proc | None = None
        self.session: aiohttp.ClientSession | None = None

    # -- processes --------------------------------------------------------------------------

    async def start_emulator(self) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.benchmark.emulator",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=_child_env(),
            preexec_fn=_die_with_parent,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        urls = json.loads(line)
        self.api, self.control = urls["api"], urls["control"]
        self.emulator = Proc(process, "emulator")

    async def start_operator(self, log: IO[bytes], **overrides: Any) -> None:
        values = (
            operator_settings_values(
                self.renku.url,
                self.renku.admin_token,
                drift_interval_seconds=self.options.drift_interval,
                smoke_poll_seconds=2.0,
                retry_backoff_seconds=15.0,
                renku_timeout_seconds=10.0,
                renku_retry_attempts=3,
                log_level="WARNING",
            )
            | overrides
        )
        kubeconfig = write_kubeconfig(self.tmp / "kubeconfig", self.api)
        env = _child_env(kubeconfig)
        if self.options.profile_dir:
            env["BENCH_CENSUS"] = str(self.options.profile_dir / "operator-census.txt")
        if self.options.tracemalloc and self.options.profile_dir:
            env["BENCH_TRACEMALLOC"] = str(self.options.profile_dir / "operator-tracemalloc.txt")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.benchmark.operator_process",
            json.dumps(values),
            stdout=log,
            stderr=log,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.operator = Proc(process, "operator")

    async def stop(self) -> None:
        if self.operator is not None and self.operator.alive():
            self.operator.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.operator.process.wait(), 30)
            except TimeoutError:
                self.operator.process.kill()
                await self.operator.process.wait()
        if self.emulator is not None and self.emulator.alive():
            assert self.emulator.process.stdin is not None
            self.emulator.process.stdin.close()
            try:
                await asyncio.wait_for(self.emulator.process.wait(), 10)
            except TimeoutError:
                self.emulator.process.kill()
                await self.emulator.process.wait()

    # -- the API server ---------------------------------------------------------------------

    def client(self) -> aiohttp.ClientSession:
        assert self.session is not None
        return self.session

    def census(self) -> None:
        """With --profile: the operator writes its live objects by type (operator-census.txt)."""
        if self.options.profile_dir and self.operator is not None:
            self.operator.process.send_signal(signal.SIGUSR2)

    async def stats(self) -> dict[str, Any]:
        settle = {"settle": str(self.options.settle_seconds)}
        async with self.client().get(f"{self.control}/stats", params=settle) as response:
            found: dict[str, Any] = await response.json()
            return found

    async def call(self, method: str, path: str, body: Any, content_type: str) -> Any:
        headers = {"Content-Type": content_type}
        data = json.dumps(body) if body is not None else None
        url = self.api + path
        async with self.client().request(method, url, data=data, headers=headers) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {payload}")
            return payload

    async def each(self, calls: list[Callable[[], Awaitable[Any]]]) -> None:
        """Run the calls, IN_FLIGHT at a time."""
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(call: Callable[[], Awaitable[Any]]) -> None:
            async with gate:
                await call()

        await asyncio.gather(*(one(call) for call in calls))

    async def until(
        self, what: str, check: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any]:
        """Poll the emulator's counters (a benchmark may poll) until ``check`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if check(stats):
                return stats
            if self.operator is not None and not self.operator.alive():
                raise RuntimeError(f"the operator exited while waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not reached in {timeout:.0f} s; last {stats}")
            await asyncio.sleep(0.25)

    # -- phases -----------------------------------------------------------------------------

    def names(self) -> list[str]:
        return [f"env-{index:04d}" for index in range(self.options.objects)]

    async def phase_ready(self) -> None:
        count, opts = self.options.objects, self.options
        assert self.operator is not None
        assert self.emulator is not None
        await self.until(
            "the operator's watch",
            lambda s: f"globalenvironments:{NAMESPACE}" in s["watches"],
            60,
        )
        before = await self.stats()
        self.results["operator RSS idle, watching, 0 objects (MiB)"] = round(
            self.operator.status("VmRSS"), 1
        )
        cpu = self.operator.cpu_seconds(), self.emulator.cpu_seconds()
        renku_before = len(self.renku.requests)
        with profile.recording(opts.profile_dir, "ready", self.operator, self.emulator):
            started = time.monotonic()
            manifests = [genv(name, smokeTest={"enabled": False}) for name in self.names()]
            await self.each(
                [partial(self.call, "POST", GENV_PATH, body, JSON) for body in manifests]
            )
            applied = time.monotonic() - started
            after = await self.until(
                f"{count} Ready", lambda s: s["tracked_ready"] >= count, opts.phase_timeout
            )
        elapsed = time.monotonic() - started
        writes = _diff(after["requests"], before["requests"])
        every_write = _writes(writes)
        renku_writes = [
            r for r in self.renku.requests[renku_before:] if r.method in ("POST", "PATCH")
        ]
        to_ready = after["seconds_to_ready"]
        self.results |= {
            "objects": count,
            "seconds to create them (driver, 16 in flight)": round(applied, 1),
            "seconds until all Ready": round(elapsed, 1),
            "objects Ready per second": round(count / elapsed, 1),
            "seconds create->Ready per object: median / p95 / max": (
                f"{statistics.median(to_ready):.1f} / {_p95(to_ready):.1f} / {max(to_ready):.1f}"
            ),
            "Kubernetes writes per object until Ready (its own)": round(
                after["writes_to_ready"] / count, 2
            ),
            "Kubernetes writes per object during the whole phase": round(
                sum(writes.get(k, 0) for k in GENV_WRITES) / count, 2
            ),
            "  of which (per object)": _per(writes, GENV_WRITES, count),
            "Events posted per object": round(writes.get("POST events", 0) / count, 2),
            "  by reason (per object)": _events(writes, count),
            "all operator writes per object (any resource but Events, as issue 23 counts)": round(
                sum(every_write.values()) / count, 2
            ),
            "  by verb and resource (per object)": _per(every_write, tuple(every_write), count),
            "all operator requests to the API server per object": round(
                sum(_requests(writes).values()) / count, 1
            ),
            "  by verb and resource, reads included (per object)": _per(
                writes, tuple(sorted(_requests(writes))), count
            ),
            "Renku writes per object": round(len(renku_writes) / count, 2),
            "operator RSS when all Ready (MiB)": round(self.operator.status("VmRSS"), 1),
            "CPU seconds in this phase: operator / emulator": (
                f"{self.operator.cpu_seconds() - cpu[0]:.1f}"
                f" / {self.emulator.cpu_seconds() - cpu[1]:.1f}"
            ),
        }
        self.census()

    async def phase_steady(self) -> None:
        opts = self.options
        assert self.operator is not None
        assert self.emulator is not None
        await asyncio.sleep(opts.settle_seconds)  # a benchmark measures over time on purpose
        async with self.client().post(f"{self.control}/reset"):
            pass
        before = await self.stats()
        key = f"Kubernetes writes per object until settled (Ready + {opts.settle_seconds:g} s)"
        self.results[key] = round(before["writes_to_settled"] / opts.objects, 2)
        self.results["  the first writes to env-0000, in order"] = before["trail"]
        renku_before = len(self.renku.requests)
        cpu = self.operator.cpu_seconds()
        started = time.monotonic()
        rss = [round(self.operator.status("VmRSS"))]
        step = max(5.0, opts.steady_seconds / 10)
        with profile.recording(opts.profile_dir, "steady", self.operator, self.emulator):
            while (left := opts.steady_seconds - (time.monotonic() - started)) > 0:
                await asyncio.sleep(min(step, left))
                rss.append(round(self.operator.status("VmRSS")))
        elapsed = time.monotonic() - started
        after = await self.stats()
        writes = _diff(after["requests"], before["requests"])
        every_write = _writes(writes)
        renku = self.renku.requests[renku_before:]
        intervals = elapsed / opts.drift_interval
        kinds: dict[str, int] = {}
        for request in renku:
            path = ENVS + "/{id}" if request.path.startswith(ENVS + "/") else request.path
            key = f"{request.method} {path}"
            kinds[key] = kinds.get(key, 0) + 1
        minutes = elapsed / 60
        self.results |= {
            "steady state: seconds measured (drift interval)": (
                f"{elapsed:.0f} ({opts.drift_interval:g} s)"
            ),
            "Kubernetes writes per minute, steady": round(
                sum(writes.get(k, 0) for k in GENV_WRITES) / minutes, 1
            ),
            "  of which (per minute)": _per(writes, GENV_WRITES, minutes),
            "Events posted per minute, steady": round(writes.get("POST events", 0) / minutes, 1),
            "  by reason (per minute)": _events(writes, minutes),
            "  objects with an Event of that reason (whole run)": after["event_objects"],
            "all operator writes per minute, steady (any resource but Events)": round(
                sum(every_write.values()) / minutes, 1
            ),
            "  by verb and resource (per minute)": _per(every_write, tuple(every_write), minutes),
            "all operator requests to the API server per minute, steady": round(
                sum(_requests(writes).values()) / minutes, 1
            ),
            "Renku list requests per drift interval": round(
                kinds.get(f"GET {ENVS}", 0) / intervals, 2
            ),
            "Renku requests per drift interval, by kind": {
                key: round(value / intervals, 2) for key, value in sorted(kinds.items())
            },
            "Renku requests per object per interval, steady": round(
                len(renku) / self.options.objects / intervals, 3
            ),
            "operator RSS after steady state (MiB)": rss[-1],
            f"operator RSS every {step:.0f} s of steady state (MiB)": rss,
            "latest write bodies, by kind (steady)": (
                after["recent_writes"] if sum(writes.get(k, 0) for k in GENV_WRITES) else {}
            ),
            "operator CPU in steady state (% of one core)": round(
                (self.operator.cpu_seconds() - cpu) / elapsed * 100, 1
            ),
        }
        self.census()

    async def phase_edit_smoke(self) -> None:
        """The same edit on an object whose smoke test is on (the kubelet passes it)."""
        spec = {
            "image": "ghcr.io/example/env:1.0.0",
            "port": 8888,
            "defaultUrl": "/",
            "workingDirectory": "/home/renku/work",
            "mountDirectory": "/home/renku/work",
            "smokeTest": {"timeoutSeconds": 120},  # stableSeconds: the default
        }
        body = genv(SMOKE_EDIT) | {"spec": spec}
        started = time.monotonic()
        await self.call("POST", GENV_PATH, body, JSON)
        try:
            await self.until(
                "the smoke-tested object Ready",
                lambda s: s["ready_names"].get(SMOKE_EDIT) is not None,
                self.options.phase_timeout,
            )
        except TimeoutError:
            self.results["smoke test on: seconds from apply to Ready"] = "never Ready"
            return
        self.results["smoke test on: seconds from apply to Ready"] = round(
            time.monotonic() - started, 1
        )
        key = "smoke test on: seconds from a description edit to Renku's PATCH"
        self.results[key] = await self.edit(SMOKE_EDIT)

    async def phase_edit(self) -> None:
        figure = await self.edit(self.names()[0])
        self.results["seconds from a description edit to Renku's PATCH"] = figure

    async def edit(self, name: str) -> str:
        """Edit the description; the seconds until Renku's double sees the PATCH."""
        path = f"{GENV_PATH}/{name}"
        obj = await self.call("GET", path, None, "application/json")
        renku_id = obj.get("status", {}).get("renkuId")
        description = f"edited by the benchmark at {time.time():.3f}"
        started = time.monotonic()
        patch = {"spec": {"description": description}}
        await self.call("PATCH", path, patch, "application/merge-patch+json")

        def arrived(renku: RenkuDouble) -> bool:
            return any(
                r.method == "PATCH"
                and r.path == f"{ENVS}/{renku_id}"
                and isinstance(r.body, dict)
                and r.body.get("description") == description
                for r in renku.requests[-50:]
            )

        timeout = self.options.phase_timeout
        try:
            await self.renku.wait_until_async(arrived, timeout)
        except (TimeoutError, AssertionError):
            return f"> {timeout:.0f} (never arrived)"
        return f"{time.monotonic() - started:.2f}"

    async def phase_delete(self) -> None:
        assert self.operator is not None
        renku_before = len(self.renku.requests)
        with profile.recording(self.options.profile_dir, "delete", self.operator, self.emulator):
            started = time.monotonic()
            paths = [f"{GENV_PATH}/{name}" for name in [*self.names(), SMOKE_EDIT]]
            await self.each([partial(self.call, "DELETE", path, None, JSON) for path in paths])
            await self.until("all deleted", lambda s: s["present"] == 0, self.options.phase_timeout)
        renku = self.renku.requests[renku_before:]
        self.results |= {
            "seconds to delete all (last finalizer released)": round(time.monotonic() - started, 1),
            "Renku requests during deletion, per object": round(
                len(renku) / self.options.objects, 2
            ),
            "operator peak RSS (VmHWM, MiB)": round(self.operator.status("VmHWM"), 1),
        }
        stats = await self.stats()
        lost = stats["requests"].get("writes that removed status.renkuId", 0)
        self.results["operator writes that removed status.renkuId (whole run)"] = lost
        if lost:
            self.results["  samples of them"] = stats["lost_id_samples"]

    async def run(self) -> dict[str, Any]:
        log_path = self.options.log_path or self.tmp / "operator.log"
        with open(log_path, "wb") as log:
            try:
                async with aiohttp.ClientSession(headers={"User-Agent": DRIVER_AGENT}) as session:
                    self.session = session
                    await self.start_emulator()
                    await self.start_operator(log)
                    await self.phase_ready()
                    await self.phase_steady()
                    await self.phase_edit()
                    await self.phase_edit_smoke()
                    if self.options.tracemalloc and self.operator is not None:
                        self.operator.process.send_signal(signal.SIGUSR1)
                    await self.phase_delete()
            except BaseException:
                tail = Path(log_path).read_text(errors="replace").splitlines()[-20:]
                print("\n".join(["the operator's last log lines:", *tail]), file=sys.stderr)
                raise
            finally:
                await self.stop()
        return self.results


def _diff(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in after.items()}


def _per(counts: Mapping[str, int], keys: tuple[str, ...], by: float) -> dict[str, float]:
    return {key: round(counts[key] / by, 2) for key in keys if counts.get(key)}


def _requests(counts: Mapping[str, int]) -> dict[str, int]:
    """The API server requests by "VERB resource" (the emulator's other counters left out)."""
    return {key: value for key, value in counts.items() if value and key.split(" ", 1)[0].isupper()}


def _writes(counts: Mapping[str, int]) -> dict[str, int]:
    """Writes to any resource but Events: what issue 23 counted on a real API server."""
    return {
        key: value
        for key, value in sorted(_requests(counts).items())
        if key.split(" ", 1)[0] in WRITE_VERBS and key != "POST events"
    }


def _events(counts: Mapping[str, int], by: float) -> dict[str, float]:
    return {
        key.removeprefix("Event "): round(value / by, 2)
        for key, value in sorted(counts.items())
        if key.startswith("Event ") and value
    }


def _p95(values: list[float]) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * 0.95))]


async def bench_scale(options: Options) -> dict[str, Any]:
    with RenkuDouble() as renku, tempfile.TemporaryDirectory() as tmp:
        return await Bench(options, renku, Path(tmp)).run()
