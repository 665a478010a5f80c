"""A fake kubelet (and scheduler) that drives pods in the emulator through scripted scenarios.

Usage (``pytest_plugins = ["tests.support.kube", "tests.support.kubelet"]``)::

    async def test_x(kube: Kube, kubelet: Kubelet) -> None:
        kubelet.plan({"renku.io/environment": "python"}, scenario("crashloop", exit_code=3))
        ...  # the operator creates a pod with that label; the kubelet plays the scenario on it
        await kubelet.wait_done("ns", pod_name)

It reacts to pod creation from the emulator's event log (no polling). A plan applies to the next
matching pod (``once=True``) or to all of them. Scenarios are lists of steps (``kube_steps``),
composable: ``[*scenario("ready"), hold(gate), pod_failed("Evicted", EVICTED_MESSAGE)]``. All
containers of a pod share the scenario's state (our session pods have one container). Pods
without a plan stay Pending, as on a cluster without nodes.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import attrs
import pytest_asyncio

from tests.support.kube import PODS, Kube, KubeApiError
from tests.support.kube_meta import Obj, matches_labels
from tests.support.kube_steps import (
    DEADLINE_MESSAGE,
    EVICTED_MESSAGE,
    GPU_MESSAGE,
    PodRun,
    Step,
    auth_message,
    backoff,
    exited,
    logs,
    not_found_message,
    pod_failed,
    proxy,
    pull_failed,
    scheduled,
    started,
    unschedulable,
)


def _ready(log: str = "", port: int = 8888, status: int = 200, body: str = "ok") -> list[Step]:
    return [logs(log), proxy(port, status, body), scheduled(), started(ready=True)]


def _never_ready(log: str = "") -> list[Step]:
    return [logs(log), scheduled(), started(ready=False, unhealthy=True)]


def _crashloop(
    exit_code: int = 1, log: str = "", restarts: int = 1, reason: str = "Error"
) -> list[Step]:
    first = [scheduled(), logs(log), started(ready=False), exited(exit_code, reason)]
    again = [started(ready=False), exited(exit_code, reason), backoff()]
    return [*first, logs(log, log), backoff(), *again * (restarts - 1)]


def _oom(log: str = "", restarts: int = 1) -> list[Step]:
    return _crashloop(137, log, restarts, reason="OOMKilled")


def _image_not_found() -> list[Step]:
    return [scheduled(), pull_failed(not_found_message)]


def _image_auth(docker_hub: bool = False) -> list[Step]:
    return [scheduled(), pull_failed(functools.partial(auth_message, docker_hub=docker_hub))]


def _unschedulable(message: str = GPU_MESSAGE) -> list[Step]:
    return [unschedulable(message)]


def _evicted(message: str = EVICTED_MESSAGE) -> list[Step]:
    return [*_ready(), pod_failed("Evicted", message)]


def _deadline() -> list[Step]:
    return [*_ready(), pod_failed("DeadlineExceeded", DEADLINE_MESSAGE, event_type="Normal")]


def _completed(log: str = "") -> list[Step]:
    return [scheduled(), logs(log), started(ready=False), exited(0, "Completed")]


SCENARIOS: dict[str, Callable[..., list[Step]]] = {
    "ready": _ready,
    "never_ready": _never_ready,
    "crashloop": _crashloop,
    "oom": _oom,
    "image_not_found": _image_not_found,
    "image_auth": _image_auth,
    "unschedulable": _unschedulable,
    "evicted": _evicted,
    "deadline": _deadline,
    "completed": _completed,
}


def scenario(name: str, **params: Any) -> list[Step]:
    """The steps of a named scenario (see ``SCENARIOS``), e.g. ``scenario("oom", log="...")``."""
    return SCENARIOS[name](**params)


@attrs.define
class Plan:
    """Steps for the next pod (or every pod, ``once=False``) whose labels match ``selector``."""

    selector: Mapping[str, str] | str
    steps: Sequence[Step]
    once: bool = True

    def matches(self, pod: Obj) -> bool:
        """Whether the pod's labels match (a dict means equality on each key)."""
        labels = pod["metadata"].get("labels") or {}
        if isinstance(self.selector, str):
            return matches_labels(labels, self.selector)
        return all(labels.get(key) == value for key, value in self.selector.items())


@attrs.define
class Kubelet:
    """Plays scenarios on pods as they are created in the emulator."""

    kube: Kube
    plans: list[Plan] = attrs.field(factory=list)
    runs: dict[tuple[str, str], asyncio.Task[None]] = attrs.field(factory=dict)
    _follower: asyncio.Task[None] | None = None

    scenario = staticmethod(scenario)

    def plan(
        self, selector: Mapping[str, str] | str, steps: Sequence[Step], *, once: bool = True
    ) -> None:
        """Drive the next pod matching ``selector`` (all of them if ``once=False``)."""
        self.plans.append(Plan(selector, steps, once))

    async def start(self) -> None:
        """Follow pod creations from the start of the emulator's log."""
        self._follower = asyncio.create_task(self._follow(), name="kubelet")

    async def stop(self) -> None:
        """Stop following and driving; re-raise what failed in a scenario."""
        tasks = [t for t in [self._follower, *self.runs.values()] if t is not None]
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise ExceptionGroup("the kubelet's scenarios failed", errors)

    async def wait_done(self, namespace: str, name: str, *, timeout: float = 5.0) -> None:
        """Await the end of the scenario of a pod (which must have matched a plan)."""
        task = await self.kube.until(
            lambda: self.runs.get((namespace, name)),
            timeout=timeout,
            what=lambda: f"the kubelet to pick up pod {namespace}/{name}",
        )
        await asyncio.wait_for(asyncio.shield(task), timeout)

    async def _follow(self) -> None:
        cursor, log = 0, self.kube.emulator.log
        while True:
            batch = await log.since(cursor)
            cursor += len(batch)
            pods = [e.object for e in batch if e.resource == PODS and e.type == "ADDED"]
            for pod in pods:
                self._adopt(pod)
            if pods:  # wake up wait_done(), which waits for the run to exist
                await log.notify()

    def _adopt(self, pod: Obj) -> None:
        plan = next((p for p in self.plans if p.matches(pod)), None)
        if plan is None:
            return
        if plan.once:
            self.plans.remove(plan)
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.runs[key] = asyncio.create_task(self._run(pod, plan.steps), name=f"kubelet {key}")

    async def _run(self, pod: Obj, steps: Sequence[Step]) -> None:
        run = PodRun(self.kube, pod)
        for step in steps:
            try:
                await step(run)
            except KubeApiError as e:
                if e.status == 404:  # the pod was deleted meanwhile: a kubelet just stops
                    return
                raise


@pytest_asyncio.fixture
async def kubelet(kube: Kube) -> AsyncIterator[Kubelet]:
    """A started kubelet on the test's emulator; scenario failures fail the test at teardown."""
    helper = Kubelet(kube)
    await helper.start()
    yield helper
    await helper.stop()
