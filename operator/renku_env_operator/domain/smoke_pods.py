"""Bookkeeping over smoke pods as the API lists them: which is ours, current, stale or garbage.

Pure: the state of a smoke test lives on its pods (labels and annotations, see smokepod.py),
so that a restarted operator picks up where it left off. These functions read it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..api.status import SmokeTestStatus
from ..config import OPERATOR_NAME
from . import smokepod as sp

Pod = Mapping[str, Any]

STARTED_AT = "renku.io/smoke-started-at"
FIRST_READY_AT = "renku.io/smoke-first-ready-at"
RESULT = "renku.io/smoke-result"
"""On a kept (failed) pod: the final SmokeTestStatus as JSON, for a restarted operator."""
IMAGE = "renku.io/smoke-image"
OURS = f"{sp.MANAGED_BY}={OPERATOR_NAME},{sp.SMOKE_TEST}=true"
"""Selector of every smoke pod of this operator."""
HOLDS_SLOT = f"{OURS},{sp.ROLE}=session,!{sp.FINISHED}"
"""Selector of the smoke pods that count against smoke_max_concurrent."""
PROBE_SUFFIX = "-probe"


def selector(uid: str, purpose: sp.Purpose | None = None) -> str:
    """Selector of one GlobalEnvironment's smoke pods (of one purpose, when given)."""
    text = f"{OURS},{sp.GLOBAL_ENVIRONMENT_UID}={uid}"
    return f"{text},{sp.PURPOSE}={purpose}" if purpose else text


def holds_slot(pod: Pod) -> bool:
    """A session pod without a verdict yet, not being deleted."""
    found = labels(pod)
    return found.get(sp.ROLE) == "session" and sp.FINISHED not in found and alive(pod)


def alive(pod: Pod) -> bool:
    """Not being deleted (a drained node's pod is replaced, not judged)."""
    return not dig(pod, "metadata", "deletionTimestamp")


def is_current(pod: Pod, generation: int, spec_hash: str) -> bool:
    """Whether the pod tests this generation with this image and spec."""
    found = labels(pod)
    return found.get(sp.GENERATION) == str(generation) and found.get(sp.SPEC_HASH) == spec_hash


def stale(pods: Sequence[Pod], keep: str | None) -> list[str]:
    """Pods without a verdict that are not the session pod `keep` or its probe pod."""
    kept = {keep, f"{keep}{PROBE_SUFFIX}"} if keep else set()
    active = [p for p in pods if alive(p) and sp.FINISHED not in labels(p)]
    return [name(p) for p in active if name(p) not in kept]


def garbage(
    pods: Sequence[Pod],
    now: datetime,
    keep_failed_seconds: float,
    live_uids: Collection[str] | None,
) -> list[str]:
    """Failed pods kept long enough, pods of superseded generations, probe pods whose session
    pod has a verdict, and (given `live_uids`) pods of GlobalEnvironments that are gone."""
    newest: dict[tuple[str, str], int] = {}
    for pod in pods:
        newest[_owner_key(pod)] = max(newest.get(_owner_key(pod), 0), generation(pod))
    sessions = {name(p) for p in pods if holds_slot(p)}
    doomed = []
    for pod in pods:
        found = labels(pod)
        finished = found.get(sp.FINISHED, "")
        expired = finished.isdigit() and now.timestamp() - int(finished) >= keep_failed_seconds
        orphan = live_uids is not None and found.get(sp.GLOBAL_ENVIRONMENT_UID) not in live_uids
        superseded = generation(pod) < newest[_owner_key(pod)]
        lonely = found.get(sp.ROLE) == "probe" and session_of(pod) not in sessions
        if expired or orphan or superseded or lonely:
            doomed.append(name(pod))
    return doomed


def stored_result(pod: Pod | None, generation: int, image: str) -> SmokeTestStatus | None:
    """The verdict kept on a finished pod, when it is for this generation and image."""
    stored = annotation(pod, RESULT) if pod is not None else None
    if stored is None:
        return None
    result = SmokeTestStatus.model_validate_json(stored)
    return result if (result.generation, result.image) == (generation, image) else None


def terminated_containers(pod: Pod) -> list[str]:
    """Names of the containers that have finished."""
    statuses = dig(pod, "status", "containerStatuses") or []
    return [s["name"] for s in statuses if (s.get("state") or {}).get("terminated")]


def generation(pod: Pod) -> int:
    """The generation label (0 when missing)."""
    value = labels(pod).get(sp.GENERATION, "")
    return int(value) if value.isdigit() else 0


def session_of(pod: Pod) -> str:
    """The session pod a probe pod belongs to (by name)."""
    return name(pod).removesuffix(PROBE_SUFFIX)


def env_value(pod: Pod, variable: str) -> str | None:
    """A variable of the first container."""
    containers = dig(pod, "spec", "containers") or [{}]
    env = containers[0].get("env") or []
    return next((str(e.get("value")) for e in env if e.get("name") == variable), None)


def phase(pod: Pod) -> str:
    """The pod's phase, for messages."""
    return str(dig(pod, "status", "phase") or "no status")


def labels(pod: Pod) -> dict[str, str]:
    """The pod's labels."""
    return dict(dig(pod, "metadata", "labels") or {})


def annotation(pod: Pod | None, key: str) -> str | None:
    """One annotation of the pod."""
    value = dig(pod or {}, "metadata", "annotations", key)
    return str(value) if value is not None else None


def name(pod: Pod) -> str:
    """The pod's name."""
    return str(dig(pod, "metadata", "name"))


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 / RFC 3339 time (UTC when it names no zone), None for none."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """A time as the status shows it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dig(obj: Mapping[str, Any], *keys: str) -> Any:
    """obj[k1][k2]..., None where a level is missing."""
    value: Any = obj
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _owner_key(pod: Pod) -> tuple[str, str]:
    found = labels(pod)
    return found.get(sp.GLOBAL_ENVIRONMENT_UID, ""), found.get(sp.PURPOSE, "")
