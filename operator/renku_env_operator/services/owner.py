"""The owner of each GlobalEnvironment in this process: its life, in one place.

    kubectl apply ──> kopf spawns the owner (a daemon, handlers/globalenvironment.py) and adds
                      the finalizer (write 1)
    owner: waits until the live body shows the finalizer      (nothing reaches Renku before)
       └─ loop: pass = read status -> Reconciler.reconcile -> write status if changed (write 2)
                sleep until woken (a watch event), a poll (work in flight) or the periodic look
    kubectl delete ─> kopf stops the owner; the delete handler retires under the same lock
                      (deletionPolicy, bounded attempts), kopf releases the finalizer
    DELETED event ──> Objects.forget(uid): the record, and its share of the gauges, end here

The owner writes status through one path (`_write`), and only when something changed: it
compares the wanted status with what the API server holds, which is its own last write until
the live view has caught up with that write, and the live view from then on (so that a change
made by someone else is seen, and a lagging view is never mistaken for the truth).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol

from .. import metrics
from ..api.status import GlobalEnvironmentStatus, read_status
from ..config import Settings
from ..domain import conditions as cond
from ..domain.status_patch import merge_patch, progress_only, worth_writing
from .objects import Objects, ObjectState
from .reconciler import Reconciler
from .work import Event, ObjectRef, Outcome, Slots

log = logging.getLogger(__name__)

# `kubectl annotate genv NAME renku.io/retest="$(date +%s)" --overwrite` runs the smoke test again.
RETEST_ANNOTATION = "renku.io/retest"
PROGRESS_WRITE_SECONDS = 30.0
"""A running test's progress (its message, the checks so far) is written at most this often;
its start and its verdict are written at once."""


class StatusPort(Protocol):
    """Where status is written (clients/globalenvironments.py)."""

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> str | None: ...


EventPoster = Callable[[Mapping[str, Any], Literal["Normal", "Warning"], str, str], None]
"""Posts a Kubernetes Event about an object (body, type, reason, message)."""


def ref_of(body: Mapping[str, Any]) -> ObjectRef:
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return ObjectRef(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        uid=str(meta.get("uid")),
        generation=int(meta.get("generation") or 1),
        retest=annotations.get(RETEST_ANNOTATION),
        created=meta.get("creationTimestamp"),
    )


def periodic_interval(config: Settings) -> float:
    """Often enough for drift checks, registry re-checks and retries after failures."""
    due = min(
        config.drift_interval_seconds,
        config.image_check_interval_seconds,
        config.retry_backoff_seconds,
    )
    return max(due, config.smoke_poll_seconds)


class Owners:
    """Runs every object's owner; holds their records (`objects`)."""

    def __init__(
        self,
        settings: Settings,
        reconciler: Reconciler,
        status: StatusPort,
        post_event: EventPoster,
        *,
        finalizer: str,
        cancel_smoke: Callable[[str], Awaitable[object]] | None = None,
        objects: Objects | None = None,
    ) -> None:
        self.settings = settings
        self.reconciler = reconciler
        # Shared with the ownership records' cache, so that one forget() ends everything.
        self.objects = objects if objects is not None else Objects()
        self._status = status
        self._post = post_event
        self._finalizer = finalizer
        self._cancel_smoke = cancel_smoke
        self.slots = Slots(
            settings.max_concurrent_reconciles, settings.max_concurrent_reconciles_per_namespace
        )

    # -- what the handlers call --------------------------------------------------------------

    def wake(self, body: Mapping[str, Any]) -> None:
        """A watch event: the owner looks again, unless the event is the echo of its own write."""
        uid = str((body.get("metadata") or {}).get("uid"))
        state = self.objects.peek(uid)
        if state is None:
            return  # no owner yet: it reads the body when it starts
        if (body.get("metadata") or {}).get("resourceVersion") != state.status_rv:
            state.wake.set()

    def gone(self, uid: str) -> None:
        """The object no longer exists in the API server."""
        self.objects.forget(uid)

    async def own(
        self,
        body: Mapping[str, Any],
        stopped: Callable[[], bool],
        until_stopped: Callable[[], Awaitable[object]],
    ) -> None:
        """The owner's life while this process holds the object: until kopf stops it (exit,
        an HA handover) or the object is being deleted."""
        uid = ref_of(body).uid
        state = self.objects.get(uid)
        state.view = body
        # One waiter for the owner's whole life turns kopf's stop flag into a wake-up: a
        # sleeping owner ends on the flag, and kopf cancels only an owner caught mid-pass.
        waiter = asyncio.ensure_future(until_stopped())
        waiter.add_done_callback(lambda _: state.wake.set())
        try:
            while not stopped():
                state.wake.clear()
                delay: float | None = None  # None: only a watch event wakes the owner
                meta = body.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    return  # the delete handler retires it, under the same lock
                # Nothing is done before the API server holds the finalizer: a write to Renku
                # must never happen for an object that could vanish without its clean-up.
                if self._finalizer in (meta.get("finalizers") or ()):
                    delay = await self.look(body)
                await _sleep(state.wake, delay)
        finally:
            waiter.cancel()

    async def look(self, body: Mapping[str, Any]) -> float:
        """One pass (after any other work on the object); returns when to look again.

        The slot comes before the lock: a pass waiting for its turn holds nothing, so that
        retiring never waits behind the queue. The slot is fair across namespaces and given
        back while the pass waits on the network (services/work.py)."""
        ref = ref_of(body)
        state = self.objects.get(ref.uid)
        state.view = body
        async with self.slots.hold(ref.namespace), state.lock:
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                return periodic_interval(self.settings)  # deleted while it waited: retire's
            return await self._pass(state, body)

    async def retire(self, body: Mapping[str, Any], attempt: int) -> tuple[float | None, str]:
        """Apply the deletion policy (after any pass in progress). Returns a retry delay (None:
        done) and the message saying why not. Never raises: kopf's retries stay bounded."""
        ref = ref_of(body)
        state = self.objects.get(ref.uid)
        state.view = state.view or body  # after a restart in the middle of a deletion
        async with state.lock:
            try:
                status = self._read(state, body)
                outcome = await self.reconciler.retire(
                    ref, body.get("spec") or {}, status, state, attempt
                )
            except Exception as exc:  # whatever it is: reported, retried, bounded
                log.exception("retiring %s/%s failed", ref.namespace, ref.name)
                return self._retire_failed(body, attempt, f"{type(exc).__name__}: {exc}")
            try:
                await self._settle(state, body, outcome)
            except Exception as exc:  # the status of an object on its way out
                log.warning("status of %s/%s not written: %s", ref.namespace, ref.name, exc)
                if outcome.retry_after is not None:
                    return self._retire_failed(body, attempt, f"{type(exc).__name__}: {exc}")
            if outcome.retry_after is None and self._cancel_smoke is not None:
                try:  # smoke pods live in another namespace: no owner reference removes them
                    await self._cancel_smoke(ref.uid)
                except Exception as exc:  # they end at their own deadline anyway
                    log.warning("smoke pods of %s/%s not deleted: %s", ref.namespace, ref.name, exc)
            return outcome.retry_after, outcome.message

    def _retire_failed(
        self, body: Mapping[str, Any], attempt: int, error: str
    ) -> tuple[float, str]:
        """An error outside the Renku calls (those report themselves): an Event, a retry."""
        limit = self.settings.delete_attempts
        blocked = attempt >= limit
        message = f"Retiring failed (attempt {attempt} of {limit}): {error}. " + (
            "Deletion is blocked until this is fixed." if blocked else "Will retry."
        )
        self._post(body, "Warning", "DeletionBlocked" if blocked else "Deleting", message)
        backoff = self.settings.retry_backoff_seconds
        return (backoff * 4 if blocked else backoff), message

    # -- one pass ----------------------------------------------------------------------------

    async def _pass(self, state: ObjectState, body: Mapping[str, Any]) -> float:
        """Reconcile once and write what changed; returns when to look again."""
        ref = ref_of(body)
        started, result = time.monotonic(), "error"
        try:
            status = self._read(state, body)
            outcome = await self.reconciler.reconcile(ref, body.get("spec") or {}, status, state)
            await self._settle(state, body, outcome)
            result = "success"
        except Exception as exc:  # the pipeline's own errors never get here
            log.exception("reconciling %s/%s failed", ref.namespace, ref.name)
            self._post(body, "Warning", "OperatorError", f"{type(exc).__name__}: {exc}")
            return self.settings.retry_backoff_seconds
        finally:
            metrics.RECONCILES.labels("pass", result).inc()
            metrics.RECONCILE_DURATION.labels("pass").observe(time.monotonic() - started)
        return self._next_look(state, outcome)

    def _read(self, state: ObjectState, body: Mapping[str, Any]) -> GlobalEnvironmentStatus:
        """The status as the server holds it, read leniently; what could not be read is
        reported once and dropped (the next write removes it)."""
        status, problems = read_status(self._known(state, body))
        unreadable = frozenset(problems)
        if unreadable and unreadable != state.unreadable:
            message = "Dropped status fields this operator cannot read: " + "; ".join(problems)
            self._post(body, "Warning", "StatusUnreadable", message[:1024])
        state.unreadable = unreadable
        return status

    def _known(self, state: ObjectState, body: Mapping[str, Any]) -> dict[str, Any]:
        """What the API server holds as status: the live view once it includes this owner's
        last write, else that write (the view still lags behind it)."""
        view = body.get("status") or {}
        version = (body.get("metadata") or {}).get("resourceVersion")
        if state.status is None or _includes(version, state.status_rv):
            return dict(view)
        return state.status

    async def _settle(self, state: ObjectState, body: Mapping[str, Any], outcome: Outcome) -> None:
        await self._write(state, body, outcome.status)
        for event in outcome.events:
            self._announce(body, event)
        ready = cond.find(outcome.status.conditions, cond.READY)
        state.set_ready(ready.status if ready else "Unknown")

    async def _write(
        self, state: ObjectState, body: Mapping[str, Any], status: GlobalEnvironmentStatus
    ) -> None:
        """The one path that writes status: only what changed, and a running test's progress
        only now and then."""
        ref = ref_of(body)
        old = self._known(state, body)
        new = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        patch = merge_patch(old, new)
        if not patch or not worth_writing(old, new):
            return
        now = time.monotonic()
        if progress_only(old, new) and now - state.written_at < PROGRESS_WRITE_SECONDS:
            return
        version = await self._status.patch_status(ref.namespace, ref.name, patch)
        state.status, state.status_rv, state.written_at = new, version, now

    def _announce(self, body: Mapping[str, Any], event: Event) -> None:
        self._post(body, event.type, event.reason, event.message[:1024])
        log.info("%s %s: %s", event.type, event.reason, event.message)

    def _next_look(self, state: ObjectState, outcome: Outcome) -> float:
        if outcome.in_flight:
            return self.settings.smoke_poll_seconds
        delay = periodic_interval(self.settings)
        retry_in = state.retry_at - time.monotonic()
        return max(min(delay, retry_in), 0.0) if retry_in > 0 else delay


def _includes(view_version: object, written_version: str | None) -> bool:
    """Whether a view at `view_version` already shows the write that produced
    `written_version`. resourceVersions are etcd revisions (integers) on every API server
    this runs against; anything else is compared for equality only."""
    if written_version is None:
        return True
    if view_version == written_version:
        return True
    try:
        return int(str(view_version)) >= int(written_version)
    except ValueError:
        return False


async def _sleep(wake: asyncio.Event, delay: float | None) -> None:
    """Until woken (a watch event, the stop flag) or `delay` seconds passed (None: no limit).

    One future and one timer while asleep, no task of its own: a thousand sleeping owners cost
    little."""
    if wake.is_set():
        return
    timer = asyncio.get_running_loop().call_later(delay, wake.set) if delay is not None else None
    try:
        await wake.wait()
    finally:
        if timer is not None:
            timer.cancel()
