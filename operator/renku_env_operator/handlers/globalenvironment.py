"""kopf handlers for GlobalEnvironment: thin adapters around the objects' owners.

A daemon per object is its owner (services/owner.py): kopf spawns it when the object appears,
keeps its `body` live, adds the finalizer the daemon needs, stops it on deletion, when the
operator exits and when a peer with a higher priority takes over (HA). A watch event only wakes
the owner; the delete handler retires the object. No kopf change handler runs, so kopf keeps no
diff-base or progress annotations on the objects while they live.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import kopf

from .. import metrics
from ..api import crd
from ..config import Settings
from .context import OperatorContext

__all__ = ["OWNER", "RESOURCE", "post_event", "register"]

RESOURCE = (crd.GROUP, crd.VERSION, crd.PLURAL)
OWNER = "owner"
STUCK_SECONDS = 600.0
"""Every slot taken, none given back this long: the operator cannot make progress. Longer than
any pass's own work (network waits hold no slot; a registry check ends at its deadline)."""


def _context(memo: kopf.Memo) -> OperatorContext:
    context = memo["context"]
    if not isinstance(context, OperatorContext):
        raise kopf.PermanentError("operator context missing: start-up did not finish")
    return context


def post_event(
    body: Mapping[str, Any], type_: Literal["Normal", "Warning"], reason: str, message: str
) -> None:
    """An Event through kopf's poster (it needs only apiVersion, kind and metadata)."""
    kopf.event(body, type=type_, reason=reason, message=message)  # type: ignore[arg-type]


def register(registry: kopf.OperatorRegistry, config: Settings) -> None:
    # async on purpose: kopf runs a sync handler in a worker thread, and neither the owners'
    # asyncio.Event nor the records' dict may be touched from outside the event loop.
    @kopf.on.event(*RESOURCE, id="wake", registry=registry)
    async def on_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        context = _context(memo)
        if type == "DELETED":
            context.owners.gone(str(body.metadata.uid))
        else:
            context.owners.wake(body)

    # cancellation_polling: how soon kopf notices that a stopped owner has exited (deletion).
    @kopf.daemon(
        *RESOURCE,
        id=OWNER,
        registry=registry,
        cancellation_timeout=max(30.0, config.renku_timeout_seconds * 2),
        cancellation_polling=0.5,
    )
    async def own(body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
        context = _context(memo)
        if context.closing:
            return
        await context.owners.own(body, stopped.is_set, stopped.wait)

    @kopf.on.delete(*RESOURCE, id="retire", registry=registry)
    async def on_delete(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
        context = _context(memo)
        started, result = time.monotonic(), "error"
        try:
            retry_after, message = await context.owners.retire(body, attempt=retry + 1)
            result = "success" if retry_after is None else "retry"
        finally:
            metrics.RECONCILES.labels("retire", result).inc()
            metrics.RECONCILE_DURATION.labels("retire").observe(time.monotonic() - started)
        if retry_after is not None:
            raise kopf.TemporaryError(message, delay=retry_after)

    @kopf.on.probe(id="reconcile", registry=registry)
    async def reconcile_probe(memo: kopf.Memo, **_: Any) -> dict[str, object]:
        """Part of /healthz: the slots and what passes wait on; it fails (HTTP 500, the
        liveness probe restarts the pod) when no pass has made progress for STUCK_SECONDS."""
        context = memo.get("context")
        if not isinstance(context, OperatorContext):
            return {"slots": "starting"}
        health = context.owners.slots.health(STUCK_SECONDS)
        if health["stuck"]:
            raise RuntimeError(f"no reconcile pass has made progress: {health}")
        return health
