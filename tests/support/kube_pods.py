"""Server-side pod behaviour of the emulator: the initial status, ``pods/log`` and ``pods/proxy``.

The answers of the two sub-resources are set per pod by the kubelet helper (``tests/support/
kubelet.py``), or directly by a test through ``KubeEmulator.pods``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock

from tests.support import kube_meta as meta
from tests.support.kube_meta import Obj

PODS = kmock.resource("", "v1", "pods")


@attrs.frozen
class ProxyAnswer:
    """What the pod's server answers through ``/pods/{name}:{port}/proxy/{path}``."""

    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"Content-Type": "text/html"})


@attrs.define
class PodLogs:
    """Log text of a pod's (first) container, now and before its last restart."""

    current: str | None = None
    previous: str | None = None


def is_sideband(request: kmock.Request) -> bool:
    """Whether the request is a GET of ``pods/log`` or ``pods/proxy[/...]``."""
    sub = request.subresource or ""
    is_pod = request.resource == PODS and request.method == kmock.method.GET
    return is_pod and (sub == "log" or sub == "proxy" or sub.startswith("proxy/"))


def qos_class(pod: Obj) -> str:
    """The pod's QoS class, as the API server computes it on create."""
    containers = meta.dig(pod, "spec.containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                return "Burstable"
    return "Guaranteed"


def initial_status(pod: Obj) -> Obj:
    """The status a freshly created pod has before the scheduler or a kubelet touch it."""
    return {"phase": "Pending", "qosClass": qos_class(pod)}


def _text(body: str, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(text=body, status=status, content_type="text/plain")


@attrs.define
class PodSideband:
    """Per-pod answers of ``pods/log`` and ``pods/proxy``, keyed by (namespace, name)."""

    logs: dict[tuple[str | None, str], PodLogs] = attrs.field(factory=dict)
    proxy: dict[tuple[str | None, str, int], dict[str | None, ProxyAnswer]] = attrs.field(
        factory=dict
    )

    kubelet_unreachable: bool = False
    """While True, every log read fails as when the API server cannot reach the node (500)."""

    def set_logs(
        self, namespace: str, name: str, current: str | None, previous: str | None = None
    ) -> None:
        """Set the log text; None means "no such log" (the container never started/restarted)."""
        self.logs[namespace, name] = PodLogs(current, previous)

    def set_proxy(
        self, namespace: str, name: str, port: int, answer: ProxyAnswer, path: str | None = None
    ) -> None:
        """Set the answer on a port, for one path (``/api``) or for any path (None)."""
        self.proxy.setdefault((namespace, name, port), {})[path] = answer

    def serve(self, request: kmock.Request, get_pod: Callable[[str], Obj]) -> aiohttp.web.Response:
        """Answer a sideband request; ``get_pod`` raises the API's 404 for a missing pod."""
        # The proxied name is "pod", "pod:port" or "scheme:pod:port".
        parts = (request.name or "").split(":")
        parts = parts[1:] if parts[0] in ("http", "https") else parts
        pod = get_pod(parts[0])
        port = parts[1] if len(parts) > 1 else ""
        if request.subresource == "log":
            return self._serve_log(request, pod)
        path = "/" + (request.subresource or "").removeprefix("proxy").lstrip("/")
        return self._serve_proxy(pod, int(port or 80), path)

    def _serve_log(self, request: kmock.Request, pod: Obj) -> aiohttp.web.Response:
        name = pod["metadata"]["name"]
        if self.kubelet_unreachable:  # what a real API server answers then
            msg = (
                f'Get "https://10.0.0.7:10250/containerLogs/{pod["metadata"].get("namespace")}/'
                f'{name}/session": dial tcp 10.0.0.7:10250: connect: connection refused'
            )
            raise meta.ApiError(500, "InternalError", msg, {})
        container = _container(pod, request.params.get("container"))
        logs = self.logs.get((pod["metadata"].get("namespace"), name), PodLogs())
        if request.params.get("previous") == "true":
            text = logs.previous
            if text is None:
                msg = f'previous terminated container "{container}" in pod "{name}" not found'
                raise meta.bad_request(msg)
        else:
            text = logs.current
            waiting = _waiting_reason(pod, container)
            if text is None and waiting:
                msg = f'container "{container}" in pod "{name}" is waiting to start: {waiting}'
                raise meta.bad_request(msg)
        lines = (text or "").splitlines(keepends=True)
        tail = request.params.get("tailLines")
        return _text("".join(lines[-int(tail) :] if tail else lines))

    def _serve_proxy(self, pod: Obj, port: int, path: str) -> aiohttp.web.Response:
        key = (pod["metadata"].get("namespace"), pod["metadata"]["name"], port)
        answers = self.proxy.get(key, {})
        answer = answers.get(path, answers.get(None))
        if answer is None:  # nothing listens there: what the API server's dialer reports
            ip = meta.dig(pod, "status.podIP") or "<none>"
            msg = (
                f"error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
            )
            raise meta.ApiError(503, "ServiceUnavailable", msg, {})
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        return aiohttp.web.Response(body=body, status=answer.status, headers=dict(answer.headers))


def _container(pod: Obj, wanted: str | None) -> str:
    names = [c["name"] for c in meta.dig(pod, "spec.containers") or []]
    name = pod["metadata"]["name"]
    if wanted is None and len(names) != 1:
        choices = " ".join(names)
        raise meta.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{choices}]"
        )
    if wanted is not None and wanted not in names:
        raise meta.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted or names[0]


def _waiting_reason(pod: Obj, container: str) -> str | None:
    statuses: list[dict[str, Any]] = meta.dig(pod, "status.containerStatuses") or []
    for status in statuses:
        if status.get("name") == container:
            reason: str | None = meta.dig(status, "state.waiting.reason")
            return reason
    return "ContainerCreating"  # no status yet: the kubelet has not started it
