"""The state of one reconcile pass: the object, its status as it evolves, the Events to post."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..api.status import Condition, ConditionStatus, GlobalEnvironmentStatus
from ..domain import conditions as cond
from .objects import ObjectState


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
    """Retire only: seconds until the next attempt (None: done)."""
    message: str = ""
    in_flight: bool = False
    """Work is under way (a smoke test running): look again soon."""


@dataclass
class Work:
    """Mutable scratch state of one reconcile."""

    ref: ObjectRef
    status: GlobalEnvironmentStatus
    conditions: list[Condition]
    events: list[Event] = field(default_factory=list)
    memo: ObjectState = field(default_factory=lambda: ObjectState(""))
    """The object's record: clocks and caches the gates and the publisher keep between passes."""

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
