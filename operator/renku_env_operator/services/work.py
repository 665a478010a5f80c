"""The state of one reconcile: the object, its status as it evolves, the Events to post."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..api.status import Condition, ConditionStatus, GlobalEnvironmentStatus
from ..domain import conditions as cond


@dataclass(frozen=True)
class ObjectRef:
    """The GlobalEnvironment being reconciled."""

    namespace: str
    name: str
    uid: str
    generation: int
    retest: str | None = None
    """Value of the renku.io/retest annotation: a new value asks for a new smoke test."""
    created: str | None = None
    """metadata.creationTimestamp (set by the API server): objects older than the ownership
    records may have their status.renkuId migrated into a record."""


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass
class Outcome:
    status: GlobalEnvironmentStatus
    events: list[Event] = field(default_factory=list)
    retry_after: float | None = None
    message: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    """The status the reconcile started from (as written), which may be newer than the view
    kopf has: a patch must also cover keys that differ from it."""
    written: dict[str, Any] = field(default_factory=dict)
    """Status keys written directly during the reconcile (before kopf's patch)."""


@dataclass
class Work:
    """Mutable scratch state of one reconcile."""

    ref: ObjectRef
    status: GlobalEnvironmentStatus
    conditions: list[Condition]
    events: list[Event] = field(default_factory=list)
    written: dict[str, Any] = field(default_factory=dict)

    def note_written(self, status: Mapping[str, Any]) -> None:
        """Status keys just written straight to the API server (not through kopf's patch)."""
        self.written.update(status)

    def condition(
        self,
        type_: str,
        status: ConditionStatus,
        reason: str,
        msg: str,
        *,
        announce: bool = True,
    ) -> None:
        """Set a condition; a new False one is also a Warning Event unless the caller posts
        its own (`announce=False`)."""
        old = cond.find(self.conditions, type_)
        self.conditions = cond.set_condition(
            self.conditions, type_, status, reason, msg, self.ref.generation
        )
        changed = old is None or (old.status, old.reason, old.message) != (status, reason, msg)
        if announce and changed and status == "False" and reason not in {"Pending"}:
            self.events.append(Event("Warning", reason, f"{type_}: {msg}"))

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))


def parse_status(raw: Mapping[str, Any]) -> GlobalEnvironmentStatus:
    """The stored status; fields of older operator versions are ignored, not fatal."""
    known = {k: v for k, v in dict(raw).items() if k in _STATUS_ALIASES}
    return GlobalEnvironmentStatus.model_validate(known)


_STATUS_ALIASES = {f.alias or name for name, f in GlobalEnvironmentStatus.model_fields.items()}


class StatusMemory:
    """What this operator last wrote to each object's status, to see through stale views.

    A timer can fire before the watch delivers the status patch of an earlier reconcile: its
    body then shows a status this operator itself produced or started from before. The
    operator is the only writer of status, so its latest result is the truth then (a stale
    view once made a timer create a second environment in Renku, or restart a smoke test
    whose pod had already passed and been deleted). A view it never saw is taken as it is.
    """

    DEPTH = 16

    def __init__(self) -> None:
        self._seen: dict[str, deque[dict[str, Any]]] = {}
        self._latest: dict[str, GlobalEnvironmentStatus] = {}

    def current(self, uid: str, raw_status: Mapping[str, Any]) -> GlobalEnvironmentStatus:
        view = dict(raw_status)
        latest = self._latest.get(uid)
        if latest is not None and view in self._seen.get(uid, ()):
            return latest
        return parse_status(view)

    def remember(self, uid: str, raw_status: Mapping[str, Any], outcome: Outcome) -> None:
        """Record a reconcile: the view it had, what it started from, what it wrote directly
        on the way (the server passes through those states), and what it produced."""
        seen = self._seen.setdefault(uid, deque(maxlen=self.DEPTH))
        view = copy.deepcopy(dict(raw_status))
        seen.append(view)
        if outcome.written:
            seen.append(_merged(view, outcome.written))
            seen.append(_merged(outcome.base, outcome.written))
        seen.append(outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json"))
        self._latest[uid] = outcome.status

    def forget(self, uid: str) -> None:
        self._seen.pop(uid, None)
        self._latest.pop(uid, None)


def _merged(status: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level JSON merge patch, as the API server applies our direct status writes."""
    merged = {**copy.deepcopy(dict(status)), **copy.deepcopy(dict(patch))}
    return {key: value for key, value in merged.items() if value is not None}
