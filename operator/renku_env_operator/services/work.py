"""The state of one reconcile pass: the object, its status as it evolves, the Events to post."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
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


class Slots:
    """The reconcile slots: at most `total` passes at work, at most `share` of one namespace.

    A pass gives its slot (and its namespace's share) back while it waits on the network
    (`waiting`): a hung Renku or a slow registry then holds no slot, only a place in that
    dependency's own queue, which is bounded by `share` too. So no team, and no dependency,
    can take every slot, and a pass that needs neither never waits behind them.
    """

    def __init__(self, total: int, share: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.share = max(1, min(share, total))
        self._all = asyncio.Semaphore(total)
        self._queues: dict[str, asyncio.Semaphore] = {}
        self._users: dict[str, int] = {}
        self._clock = clock
        self.busy = 0
        self.full_since = float("inf")
        """Since when every slot has been taken (inf: some slot is free)."""

    def health(self, stuck_after: float) -> dict[str, object]:
        """What the liveness probe shows; `stuck` when every slot has been taken, and none
        given back, for `stuck_after` seconds (no pass can make progress then: waits on the
        network hold no slot, so it is the operator itself, and a restart is the remedy)."""
        full = max(self._clock() - self.full_since, 0.0)
        waits = {
            key.removeprefix("dependency "): users
            for key, users in self._users.items()
            if key.startswith("dependency ")
        }
        return {
            "slots": f"{self.busy}/{self.total}",
            "waitingOn": waits,
            "stuck": full >= stuck_after,
            "secondsAllSlotsBusy": round(full, 1),
        }

    @contextlib.asynccontextmanager
    async def hold(self, namespace: str) -> AsyncIterator[None]:
        """One pass of an object in `namespace`, with a slot while it works."""
        with self._using(f"namespace {namespace}") as mine:
            hold = _Hold(self, mine)
            await hold.take()
            token = _HELD.set(hold)
            try:
                yield
            finally:
                _HELD.reset(token)
                hold.give_back()

    @contextlib.contextmanager
    def _using(self, key: str) -> Iterator[asyncio.Semaphore]:
        # One semaphore per key while anyone uses it: a thousand namespaces cost nothing idle.
        queue = self._queues.setdefault(key, asyncio.Semaphore(self.share))
        self._users[key] = self._users.get(key, 0) + 1
        try:
            yield queue
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._queues[key]


class _Hold:
    """A pass's namespace share and slot, taken in that order (never the other way round)."""

    def __init__(self, slots: Slots, namespace: asyncio.Semaphore) -> None:
        self.slots = slots
        self.namespace = namespace
        self.held = False

    async def take(self) -> None:
        await self.namespace.acquire()
        try:
            await self.slots._all.acquire()
        except BaseException:
            self.namespace.release()
            raise
        self.held = True
        self.slots.busy += 1
        if self.slots.busy >= self.slots.total:
            self.slots.full_since = self.slots._clock()

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self.slots.busy -= 1
            self.slots.full_since = float("inf")
            self.slots._all.release()
            self.namespace.release()


_HELD: ContextVar[_Hold | None] = ContextVar("reconcile_slot", default=None)


@contextlib.asynccontextmanager
async def waiting(dependency: str) -> AsyncIterator[None]:
    """Wait on the network (Renku, a registry) without holding a reconcile slot.

    The slot is given back for the wait and taken again after it; at most `share` passes
    wait on one dependency at once (the others queue, holding nothing). Outside a pass
    (tests, retiring) and inside another wait: a no-op.
    """
    hold = _HELD.get()
    if hold is None or not hold.held:
        yield
        return
    hold.give_back()
    try:
        with hold.slots._using(f"dependency {dependency}") as queue:
            async with queue:
                yield
    except Exception:
        await hold.take()  # the pass goes on (it reports the failure): with a slot again
        raise
    except BaseException:
        raise  # cancelled: the pass ends here, it needs no slot
    else:
        await hold.take()
