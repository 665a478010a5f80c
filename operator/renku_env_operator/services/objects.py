"""One record per GlobalEnvironment: everything this process knows about it, in one place.

The owner of an object (services/owner.py) is the only code that changes its record; the gates
and the publisher read and set their clocks in it through `Work.memo`. `Objects.forget` is the
one place where a record ends, so a new per-object fact is a new field here, never a new map.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..api.status import Condition, ImageStatus, SmokeTestStatus

if TYPE_CHECKING:
    from .ownership import IdClaim


@dataclass(eq=False)
class ObjectState:
    """What one GlobalEnvironment's owner remembers between passes (a few hundred bytes)."""

    uid: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a reconcile pass and by retire: one piece of work at a time per object."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by a watch event: the owner looks at the object again."""

    view: Mapping[str, Any] | None = None
    """The live body kopf keeps current for the owner (a reference to kopf's, not a copy)."""
    status: dict[str, Any] | None = None
    """The status as the API server holds it after this owner's last write (None: not yet)."""
    status_rv: str | None = None
    """The resourceVersion that write produced."""
    written_at: float = float("-inf")
    """When this owner last wrote status (a running test's progress waits a while after)."""

    retry_at: float = 0.0
    """Publisher: no Renku write before this time (monotonic), after a failure."""
    checked_at: float = float("-inf")
    """Publisher: when Renku was last compared with the declared state."""
    image_checked_at: float | None = None
    """Image gate: when the registry was last asked (None: not since start)."""
    image_reference: str | None = None
    """Image gate: the reference that look-up was for."""
    image_has_update: bool = False
    """Image gate: a newer version exists (the available-updates gauge counts these)."""
    facts_known: bool = False
    """Whether `image` and `smoke_test` below are this process's own (set by the first pass;
    before it, a status is only believed where the operator's claims confirm it)."""
    image: ImageStatus | None = None
    """The image facts the registry gave this process (update test included): the gates decide
    from these, never from status.image, which anyone with rights on the status may write."""
    smoke_test: SmokeTestStatus | None = None
    """The smoke test as this process ran or confirmed it: decisions come from here, never
    from status.smokeTest."""
    conditions: list[Condition] | None = None
    """The conditions this process last produced: each pass starts from these, not from the
    status's (which anyone with rights on the status may edit)."""
    ready: str | None = None
    """The Ready status last written (the globalenvironments gauge counts these)."""
    unreadable: frozenset[str] = frozenset()
    """Status fields reported as unreadable, so that the Event is posted once."""
    claims: list[IdClaim] | None = None
    """Ownership: the Renku ids this object owns, as last read or written (None: read them).
    Saves reads only: every write to Renku is verified against the API server."""
    answered_attempt: str | None = None
    """Ownership: the create attempt (its start) whose POST this process saw answered, even
    with an error: not in flight any more, whatever its age."""

    def set_ready(self, ready: str | None) -> None:
        metrics.move_ready(self.ready, ready)
        self.ready = ready

    def set_has_update(self, has_update: bool) -> None:
        metrics.move_updates(self.image_has_update, has_update)
        self.image_has_update = has_update


class Objects:
    """The records of the objects this process owns, by uid."""

    def __init__(self) -> None:
        self._by_uid: dict[str, ObjectState] = {}
        metrics.reset_object_gauges()

    def __len__(self) -> int:
        return len(self._by_uid)

    def __contains__(self, uid: object) -> bool:
        return uid in self._by_uid

    def get(self, uid: str) -> ObjectState:
        """The record of `uid`, made on first use."""
        state = self._by_uid.get(uid)
        if state is None:
            state = self._by_uid[uid] = ObjectState(uid)
        return state

    def peek(self, uid: str) -> ObjectState | None:
        return self._by_uid.get(uid)

    def forget(self, uid: str) -> None:
        """The object is gone: drop its record, and its share of the gauges."""
        state = self._by_uid.pop(uid, None)
        if state is None:
            return
        state.set_ready(None)
        state.set_has_update(False)
