"""Realistic pod status shapes, as a kubelet (containerd runtime) and the scheduler write them.

Pure builders used by the kubelet helper. Shapes follow ``kubectl get pod -o yaml`` of real
clusters (Kubernetes 1.30+): conditions, container states, ``lastState``, ``imageID`` digests.
"""

from __future__ import annotations

import hashlib
from typing import Any

from tests.support.kube_meta import Obj, dig, now_rfc3339

NODE = "node-1"
HOST_IP = "10.0.0.11"
POD_IP = "10.244.1.23"
CONDITION_TYPES = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


def normalized_image(image: str) -> str:
    """The image as the kubelet reports it: Docker Hub names expanded, ``:latest`` added."""
    first, _, rest = image.partition("/")
    if not rest:
        image = f"docker.io/library/{image}"
    elif "." not in first and ":" not in first and first != "localhost":
        image = f"docker.io/{image}"
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in last else f"{image}:latest"


def image_id(image: str) -> str:
    """A repo digest for the image (stable per image name): ``repo@sha256:...``."""
    repo = normalized_image(image).split("@")[0].rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def condition(type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> Obj:
    """One pod condition; ``lastProbeTime`` is always null on pods."""
    cond: Obj = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None}
    cond["lastTransitionTime"] = now_rfc3339()
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def waiting(reason: str, message: str | None = None) -> Obj:
    """``state.waiting``: ContainerCreating, ErrImagePull, ImagePullBackOff, CrashLoopBackOff."""
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running(started_at: str | None = None) -> Obj:
    """``state.running``."""
    return {"running": {"startedAt": started_at or now_rfc3339()}}


def terminated(exit_code: int, reason: str, started_at: str, container_id: str) -> Obj:
    """``state.terminated``: reason Error, OOMKilled or Completed."""
    return {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": now_rfc3339(),
            "containerID": container_id,
        }
    }


def container_id(pod: Obj, name: str, restarts: int) -> str:
    """A containerd container id, stable per pod, container and restart."""
    seed = f"{dig(pod, 'metadata.uid')}/{name}/{restarts}".encode()
    return f"containerd://{hashlib.sha256(seed).hexdigest()}"


def container_status(
    pod: Obj,
    spec: Obj,
    state: Obj,
    *,
    ready: bool = False,
    restarts: int = 0,
    last_state: Obj | None = None,
) -> Obj:
    """One entry of ``containerStatuses`` for container ``spec`` of ``pod``."""
    started = "running" in state
    status: Obj = {
        "name": spec["name"],
        "image": normalized_image(spec["image"]),
        "imageID": "" if "waiting" in state and not restarts else image_id(spec["image"]),
        "ready": ready,
        "started": started,
        "restartCount": restarts,
        "state": state,
        "lastState": last_state or {},
    }
    if started or "terminated" in state or restarts:
        status["containerID"] = container_id(pod, spec["name"], restarts)
    return status


def pod_status(
    pod: Obj,
    *,
    phase: str,
    containers: list[Obj],
    scheduled: Obj | None = None,
    extra: dict[str, Any] | None = None,
) -> Obj:
    """A whole pod ``status``; Ready/ContainersReady follow the containers' ``ready`` flags."""
    scheduled = scheduled or condition("PodScheduled", True)
    if scheduled["status"] != "True":
        return {"phase": "Pending", "conditions": [scheduled], "qosClass": _qos(pod)}
    unready = [c["name"] for c in containers if not c["ready"]]
    msg = f"containers with unready status: [{' '.join(unready)}]" if unready else None
    reason = "ContainersNotReady" if unready else None
    any_started = any(c["started"] or c["restartCount"] for c in containers)
    conditions = [
        condition("PodReadyToStartContainers", any_started or phase == "Running"),
        condition("Initialized", True),
        condition("Ready", not unready, reason, msg),
        condition("ContainersReady", not unready, reason, msg),
        scheduled,
    ]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": POD_IP,
        "podIPs": [{"ip": POD_IP}],
        "startTime": dig(pod, "metadata.creationTimestamp") or now_rfc3339(),
        "containerStatuses": containers,
        "qosClass": _qos(pod),
    }
    return {**status, **(extra or {})}


def _qos(pod: Obj) -> str:
    qos: str = dig(pod, "status.qosClass") or "BestEffort"
    return qos


def event(
    pod: Obj,
    reason: str,
    message: str,
    *,
    type_: str = "Normal",
    component: str = "kubelet",
    container: str | None = None,
) -> Obj:
    """A core/v1 Event about the pod, as the kubelet or ``default-scheduler`` posts it."""
    meta = pod["metadata"]
    involved: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    now = now_rfc3339()
    host = {"host": NODE} if component == "kubelet" else {}
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace")},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component, **host},
        "reportingComponent": component,
        "reportingInstance": NODE if component == "kubelet" else "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
