"""The kubelet helper's building blocks: the state of a driven pod and composable steps.

A step is an async callable taking the ``PodRun``; it changes the run's state, writes the pod
status (as a real kubelet/scheduler would) and posts the Events they would post. Scenarios in
``tests/support/kubelet.py`` are lists of these steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from tests.support import kube_podstatus as shapes
from tests.support.kube import PODS, Kube
from tests.support.kube_meta import Obj, dig, now_rfc3339
from tests.support.kube_pods import ProxyAnswer

GPU_MESSAGE = (
    "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
    "available: 3 No preemption victims found for incoming pod."
)
EVICTED_MESSAGE = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91044Ki. "
    "Container main was using 2412Mi, request is 0, has larger consumption of memory. "
)
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def not_found_message(image: str) -> str:
    """containerd's ErrImagePull message for a missing tag (the registry's manifest unknown)."""
    ref = shapes.normalized_image(image)
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {ref}: not found'
    )


def auth_message(image: str, *, docker_hub: bool = False) -> str:
    """containerd's ErrImagePull message when the registry wants credentials."""
    ref = shapes.normalized_image(image)
    head = f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": '
    if docker_hub:
        return head + (
            f'failed to resolve reference "{ref}": pull access denied, repository does not '
            "exist or may require authorization: server message: insufficient_scope: "
            "authorization failed"
        )
    host = ref.split("/", 1)[0]
    return head + (
        f'failed to resolve reference "{ref}": unexpected status from HEAD request to '
        f"https://{host}/v2/: 401 Unauthorized: unauthorized: authentication required"
    )


@attrs.define
class PodRun:
    """The state of one pod being driven; steps change it and ``write()`` it as the status."""

    kube: Kube
    pod: Obj
    phase: str = "Pending"
    scheduled: Obj | None = None
    state: Obj = attrs.field(factory=lambda: shapes.waiting("ContainerCreating"))
    last_state: Obj | None = None
    ready: bool = False
    restarts: int = 0
    extra: Obj = attrs.field(factory=dict)

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The pod's name."""
        return str(self.pod["metadata"]["name"])

    @property
    def specs(self) -> list[Obj]:
        """The pod's ``spec.containers``."""
        containers: list[Obj] = dig(self.pod, "spec.containers") or []
        return containers

    @property
    def image(self) -> str:
        """The first container's image."""
        return str(self.specs[0]["image"])

    async def write(self) -> None:
        """Replace the pod's status with the current state (a JSON patch on ``/status``)."""
        containers = [
            shapes.container_status(
                self.pod,
                spec,
                self.state,
                ready=self.ready,
                restarts=self.restarts,
                last_state=self.last_state,
            )
            for spec in self.specs
        ]
        status = shapes.pod_status(
            self.pod,
            phase=self.phase,
            containers=containers,
            scheduled=self.scheduled,
            extra=self.extra,
        )
        op = [{"op": "add", "path": "/status", "value": status}]
        self.pod = await self.kube.patch(PODS, self.namespace, self.name, op, subresource="status")

    async def event(self, reason: str, message: str, **kwargs: Any) -> None:
        """Post an Event about the pod (kubelet by default, ``component=`` to change)."""
        await self.kube.create(shapes.event(self.pod, reason, message, **kwargs))


Step = Callable[[PodRun], Awaitable[None]]


def scheduled() -> Step:
    """The scheduler binds the pod to a node; the kubelet starts pulling the image."""

    async def step(run: PodRun) -> None:
        run.scheduled = shapes.condition("PodScheduled", True)
        await run.write()
        node = shapes.NODE
        msg = f"Successfully assigned {run.namespace}/{run.name} to {node}"
        await run.event("Scheduled", msg, component="default-scheduler")
        await run.event("Pulling", f'Pulling image "{run.image}"', container=run.specs[0]["name"])

    return step


def unschedulable(message: str = GPU_MESSAGE) -> Step:
    """The scheduler finds no node: PodScheduled False/Unschedulable + FailedScheduling."""

    async def step(run: PodRun) -> None:
        run.scheduled = shapes.condition("PodScheduled", False, "Unschedulable", message)
        await run.write()
        await run.event("FailedScheduling", message, type_="Warning", component="default-scheduler")

    return step


def pull_failed(message_for: Callable[[str], str]) -> Step:
    """ErrImagePull, then ImagePullBackOff, with the kubelet's Failed/BackOff events.

    ``message_for(image)`` gives the runtime's error, e.g. ``not_found_message``.
    """

    async def step(run: PodRun) -> None:
        ref, name = run.image, run.specs[0]["name"]
        message = message_for(ref)
        run.state = shapes.waiting("ErrImagePull", message)
        await run.write()
        await run.event(
            "Failed", f'Failed to pull image "{ref}": {message}', type_="Warning", container=name
        )
        await run.event("Failed", "Error: ErrImagePull", type_="Warning", container=name)
        # Kubelets since 1.30 keep the pull error in the back-off message.
        backoff = f'Back-off pulling image "{ref}": ErrImagePull: {message}'
        run.state = shapes.waiting("ImagePullBackOff", backoff)
        await run.write()
        await run.event("BackOff", f'Back-off pulling image "{ref}"', container=name)
        await run.event("Failed", "Error: ImagePullBackOff", type_="Warning", container=name)

    return step


def started(*, ready: bool = True, unhealthy: bool = False) -> Step:
    """The container runs; Ready if ``ready``; ``unhealthy`` adds a failed-probe Event."""

    async def step(run: PodRun) -> None:
        name = run.specs[0]["name"]
        run.phase, run.state, run.ready = "Running", shapes.running(), ready
        await run.write()
        if not run.restarts:
            await run.event(
                "Pulled", f'Successfully pulled image "{run.image}" in 1.2s', container=name
            )
        await run.event("Created", f"Created container: {name}", container=name)
        await run.event("Started", f"Started container {name}", container=name)
        if unhealthy:
            url = f"http://{shapes.POD_IP}:8888/"
            probe = f'Readiness probe failed: Get "{url}": dial tcp: connect: connection refused'
            await run.event("Unhealthy", probe, type_="Warning", container=name)

    return step


def exited(exit_code: int, reason: str = "Error") -> Step:
    """The container exits (reason Error, OOMKilled or Completed); restartPolicy decides next."""

    async def step(run: PodRun) -> None:
        since = dig(run.state, "running.startedAt") or now_rfc3339()
        cid = shapes.container_id(run.pod, run.specs[0]["name"], run.restarts)
        run.state, run.ready = shapes.terminated(exit_code, reason, since, cid), False
        if dig(run.pod, "spec.restartPolicy") in ("Never", "OnFailure") and exit_code == 0:
            run.phase = "Succeeded"
        elif dig(run.pod, "spec.restartPolicy") == "Never":
            run.phase = "Failed"
        await run.write()

    return step


def backoff() -> Step:
    """CrashLoopBackOff after an exit: the exit moves to ``lastState``, restartCount grows."""

    async def step(run: PodRun) -> None:
        name, meta = run.specs[0]["name"], run.pod["metadata"]
        pod_ref = f"{run.name}_{run.namespace}({meta['uid']})"
        delay = 10 * 2 ** min(run.restarts, 4)
        run.last_state, run.restarts = run.state, run.restarts + 1
        msg = f"back-off {delay}s restarting failed container={name} pod={pod_ref}"
        run.state = shapes.waiting("CrashLoopBackOff", msg)
        await run.write()
        text = f"Back-off restarting failed container {name} in pod {pod_ref}"
        await run.event("BackOff", text, type_="Warning", container=name)

    return step


def pod_failed(reason: str, message: str, *, event_type: str = "Warning") -> Step:
    """The whole pod fails: phase Failed with ``status.reason`` (Evicted, DeadlineExceeded)."""

    async def step(run: PodRun) -> None:
        since = dig(run.state, "running.startedAt") or now_rfc3339()
        cid = shapes.container_id(run.pod, run.specs[0]["name"], run.restarts)
        run.phase, run.ready = "Failed", False
        run.state = shapes.terminated(137, "Error", since, cid)
        run.extra = {"reason": reason, "message": message}
        await run.write()
        await run.event(reason, message, type_=event_type)

    return step


def logs(current: str | None, previous: str | None = None) -> Step:
    """What ``pods/log`` answers from now on (``previous`` for ``?previous=true``)."""

    async def step(run: PodRun) -> None:
        run.kube.set_pod_logs(run.namespace, run.name, current, previous)

    return step


def proxy(port: int, status: int = 200, body: bytes | str = b"", path: str | None = None) -> Step:
    """What ``pods/{name}:{port}/proxy{path}`` answers from now on (any path if None)."""

    async def step(run: PodRun) -> None:
        run.kube.set_proxy_answer(run.namespace, run.name, port, ProxyAnswer(status, body), path)

    return step


def hold(gate: asyncio.Event) -> Step:
    """Pause the scenario until the test sets ``gate`` (to observe an intermediate state)."""

    async def step(run: PodRun) -> None:
        await gate.wait()

    return step
