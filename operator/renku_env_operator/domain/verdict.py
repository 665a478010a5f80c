"""The verdict on a smoke pod, from what the kubelet and the scheduler report.

Pure: takes the pod as the API returns it (a dict), its Events and the tail of its log, and says
whether the test still runs, passed or failed, with a CamelCase reason and a message that tells
the admin what to fix. Passing means what Renku needs: ready by Renku's own readiness probe,
and still ready with no restart `stable_seconds` after it first became ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ..api.status import CheckStatus
from .pod_failures import (
    DEFINITIVE_PULL_REASONS,
    container_failure,
    pull_failure,
    terminated_failure,
)
from .session_url import api_server_error, judge_session_url, session_url_path, unproxied_location
from .smokepod import SESSION_CONTAINER

__all__ = [
    "Verdict",
    "api_server_error",
    "judge",
    "judge_session_url",
    "session_status",
    "session_url_path",
    "unproxied_location",
]

State = Literal["Running", "Passed", "Failed"]
Pod = Mapping[str, Any]
Event = Mapping[str, Any]

# Which check a failure reason belongs to.
_CHECK_OF = {
    "Unschedulable": "Scheduled",
    "ImageNotFound": "Pull",
    "ImageNotPublic": "Pull",
    "ImagePullFailed": "Pull",
    "ImagePullTimeout": "Pull",
    "ImageInvalid": "Pull",
    "NoMatchingPlatform": "Pull",
    "NeverReady": "Ready",
    "Unstable": "Stable",
    "Evicted": "Pod",
    "DeadlineExceeded": "Pod",
    "PodFailed": "Pod",
}


@dataclass(frozen=True)
class Verdict:
    """Where a smoke test stands."""

    state: State
    reason: str
    """CamelCase: a progress step while Running, Passed, or the failure."""
    message: str
    checks: list[CheckStatus] = field(default_factory=list)
    first_ready_at: datetime | None = None
    """When the pod was first seen ready (keep it for the next call)."""


def judge(
    pod: Pod,
    events: Sequence[Event],
    log_tail: str | None,
    *,
    now: datetime,
    started_at: datetime,
    timeout_seconds: float,
    stable_seconds: float,
    first_ready_at: datetime | None,
) -> Verdict:
    """The verdict on a smoke pod now."""
    container = session_status(pod)
    progress = _progress_checks(pod, container, first_ready_at)
    failure = _failure(pod, container, events, log_tail, first_ready_at)
    if failure is not None:
        reason, message = failure
        return _failed(reason, message, progress, first_ready_at)
    if container is not None and container.get("ready") is True:
        first = first_ready_at or now
        ready_for = (now - first).total_seconds()
        if ready_for >= stable_seconds:
            stable = f"ready for {ready_for:.0f}s with no restart"
            checks = [*_passed(progress, "Ready", "passed Renku's readiness probe")]
            checks.append(CheckStatus(name="Stable", result="Passed", message=stable))
            message = f"The session became ready and stayed ready: {stable}."
            return Verdict("Passed", "Passed", message, checks, first)
        left = stable_seconds - ready_for
        message = f"Ready; checking that it stays ready with no restart ({left:.0f}s to go)."
        return Verdict("Running", "Ready", message, _passed(progress, "Ready", "ready"), first)
    if first_ready_at is not None:
        message = _unready_message(pod, events)
        return _failed("Unstable", message, progress, first_ready_at)
    if (now - started_at).total_seconds() >= timeout_seconds:
        reason, message = _timed_out(pod, container, events, log_tail, timeout_seconds)
        return _failed(reason, message, progress, None)
    reason, message = _in_progress(pod, container, events)
    return Verdict("Running", reason, message, progress, None)


def session_status(pod: Pod) -> Mapping[str, Any] | None:
    """The status of the session container (the first one if it is named otherwise)."""
    statuses: list[Mapping[str, Any]] = _dig(pod, "status", "containerStatuses") or []
    named = [s for s in statuses if s.get("name") == SESSION_CONTAINER]
    return next(iter(named or statuses), None)


def _failure(
    pod: Pod,
    container: Mapping[str, Any] | None,
    events: Sequence[Event],
    log_tail: str | None,
    first_ready_at: datetime | None,
) -> tuple[str, str] | None:
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        return _pod_failure(status)
    if container is None:
        return None
    pull = pull_failure(container, events)
    if pull is not None and pull[0] in DEFINITIVE_PULL_REASONS:
        return pull
    failure = container_failure(pod, container, log_tail)
    if failure is not None and first_ready_at is not None:
        # It was ready, then crashed or restarted: not what a user can work in.
        return "Unstable", f"after it became ready, {failure[1]}"
    return failure


def _pod_failure(status: Mapping[str, Any]) -> tuple[str, str]:
    reason, message = status.get("reason") or "", status.get("message") or ""
    if reason == "Evicted":
        return "Evicted", (
            f"the kubelet evicted the pod: {message}; a session would be evicted the same way: "
            "check the node's free memory and disk, or raise the smoke pod's requests"
        )
    if reason == "DeadlineExceeded":
        return "DeadlineExceeded", (
            f"the pod ran out of time ({message or 'activeDeadlineSeconds'}) before a verdict: "
            "the operator was away or too slow; the test is re-run on the next change"
        )
    terminated = [
        s.get("state", {}).get("terminated") for s in status.get("containerStatuses") or []
    ]
    detail = next((terminated_failure(t, None, None) for t in terminated if t), message)
    return "PodFailed", f"the pod stopped ({status.get('phase')}): {detail or reason}"


def _timed_out(
    pod: Pod,
    container: Mapping[str, Any] | None,
    events: Sequence[Event],
    log_tail: str | None,
    timeout: float,
) -> tuple[str, str]:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "True":
        why = (scheduled or {}).get("message") or _last_event(events, "FailedScheduling")
        return "Unschedulable", (
            f"no node could run the pod within {timeout:.0f}s: {why or 'not scheduled'}; free "
            "resources, or adjust the operator's smoke node selector, tolerations or requests "
            "(RENKU_ENV_OPERATOR_SMOKE_*)"
        )
    pull = pull_failure(container or {}, events)
    if pull is not None:
        return pull
    state = (container or {}).get("state") or {}
    if "running" in state:
        port = _probe_port(pod)
        tail = _log_lines(log_tail)
        return "NeverReady", (
            f"the container runs, but nothing accepted TCP on 0.0.0.0:{port} within "
            f"{timeout:.0f}s (Renku's readiness probe: tcpSocket on port {port}, 5 successes "
            f"5s apart): the server must bind 0.0.0.0 (not 127.0.0.1 or localhost) and listen "
            f"on spec.port ({port}).{_probe_note(events)}{tail}"
        )
    if _last_event(events, "Pulling") and not _last_event(events, "Pulled"):
        return "ImagePullTimeout", (
            f"the image was still being pulled after {timeout:.0f}s: it is large or its registry "
            "is slow; raise spec.smokeTest.timeoutSeconds (sessions would start as slowly)"
        )
    waiting = state.get("waiting") or {}
    what = ": ".join(str(v) for v in (waiting.get("reason"), waiting.get("message")) if v)
    return "StartTimeout", (
        f"the container did not start within {timeout:.0f}s ({what or 'no container status'}); "
        f"last events: {_event_summary(events)}"
    )


def _in_progress(
    pod: Pod, container: Mapping[str, Any] | None, events: Sequence[Event]
) -> tuple[str, str]:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is None or scheduled.get("status") != "True":
        why = (scheduled or {}).get("message")
        return "Scheduling", f"Waiting for a node{f': {why}' if why else ''}."
    pull = pull_failure(container or {}, events)
    if pull is not None:
        return "Pulling", f"Pulling the image fails, the kubelet retries: {pull[1]}"
    state = (container or {}).get("state") or {}
    if "running" in state:
        return (
            "Starting",
            f"Running; waiting for the server to accept TCP on port {_probe_port(pod)}.",
        )
    if _last_event(events, "Pulling") and not _last_event(events, "Pulled"):
        return "Pulling", "Pulling the image."
    return "Creating", "Creating the container."


def _unready_message(pod: Pod, events: Sequence[Event]) -> str:
    return (
        f"the pod became ready, then stopped passing the readiness probe (TCP on port "
        f"{_probe_port(pod)}) without a restart: the server stops listening or hangs shortly "
        f"after start-up.{_probe_note(events)}"
    )


def _progress_checks(
    pod: Pod, container: Mapping[str, Any] | None, first_ready_at: datetime | None
) -> list[CheckStatus]:
    checks = []
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "True":
        node = _dig(pod, "spec", "nodeName")
        checks.append(CheckStatus(name="Scheduled", result="Passed", message=f"on node {node}"))
    state = (container or {}).get("state") or {}
    if (container or {}).get("imageID") or "running" in state or "terminated" in state:
        image = (container or {}).get("imageID") or (container or {}).get("image") or "image"
        checks.append(CheckStatus(name="Pull", result="Passed", message=f"pulled {image}"))
    if "running" in state or first_ready_at is not None:
        checks.append(CheckStatus(name="Start", result="Passed", message="the container runs"))
    return checks


def _passed(checks: list[CheckStatus], name: str, message: str) -> list[CheckStatus]:
    return [*checks, CheckStatus(name=name, result="Passed", message=message)]


def _failed(
    reason: str, message: str, progress: list[CheckStatus], first_ready_at: datetime | None
) -> Verdict:
    check = _CHECK_OF.get(reason, "Start")
    checks = [c for c in progress if c.name != check]
    if first_ready_at is not None and check != "Ready":
        checks = _passed(checks, "Ready", "passed Renku's readiness probe")
    checks.append(CheckStatus(name=check, result="Failed", message=message))
    return Verdict("Failed", reason, message, checks, first_ready_at)


def _condition(pod: Pod, type_: str) -> Mapping[str, Any] | None:
    conditions = _dig(pod, "status", "conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def _probe_port(pod: Pod) -> Any:
    container: Mapping[str, Any] = next(iter(_dig(pod, "spec", "containers") or []), {})
    return _dig(container, "readinessProbe", "tcpSocket", "port") or "?"


def _probe_note(events: Sequence[Event]) -> str:
    unhealthy = _last_event(events, "Unhealthy")
    return f" Last probe result: {unhealthy}." if unhealthy else ""


def _last_event(events: Sequence[Event], reason: str) -> str | None:
    matching = [e for e in events if e.get("reason") == reason]
    return str(matching[-1].get("message") or reason) if matching else None


def _event_summary(events: Sequence[Event]) -> str:
    return "; ".join(f"{e.get('reason')}: {e.get('message')}" for e in events[-3:]) or "none"


def _log_lines(log_tail: str | None, lines: int = 10) -> str:
    if not log_tail or not log_tail.strip():
        return ""
    tail = "\n".join(log_tail.strip().splitlines()[-lines:])[-1500:]
    return f" Last log lines:\n{tail}"


def _dig(obj: Mapping[str, Any], *keys: str) -> Any:
    value: Any = obj
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value
