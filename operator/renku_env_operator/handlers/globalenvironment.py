"""kopf handlers for GlobalEnvironment: thin adapters around the reconciler."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import kopf

from .. import metrics
from ..api import crd
from ..config import Settings
from ..services.reconciler import ObjectRef, Outcome
from .context import OperatorContext

RESOURCE = (crd.GROUP, crd.VERSION, crd.PLURAL)
# `kubectl annotate genv NAME renku.io/retest="$(date +%s)" --overwrite` runs the smoke test again.
RETEST_ANNOTATION = "renku.io/retest"


FAST_TIMER, SLOW_TIMER = "tick", "periodic"
_RUNNING = {"Pending", "Running"}


def in_flight(body: kopf.Body) -> bool:
    """Whether the object has work the fast timer must drive (read from the raw status)."""
    status = body.status
    if status.get("observedGeneration") != body.metadata.get("generation"):
        return True
    update_test = (status.get("image") or {}).get("updateTest") or {}
    smoke = status.get("smokeTest") or {}
    retest = body.metadata.annotations.get(RETEST_ANNOTATION)
    enabled = (body.spec.get("smokeTest") or {}).get("enabled", True) is not False
    asked = enabled and retest is not None and retest != smoke.get("trigger")
    return asked or smoke.get("result") in _RUNNING or update_test.get("result") in _RUNNING


def periodic_interval(config: Settings) -> float:
    """Often enough for drift checks, registry re-checks and retries after failures."""
    due = min(
        config.drift_interval_seconds,
        config.image_check_interval_seconds,
        config.retry_backoff_seconds,
    )
    return max(due, config.smoke_poll_seconds)


def _context(memo: kopf.Memo) -> OperatorContext:
    context = memo["context"]
    if not isinstance(context, OperatorContext):
        raise kopf.PermanentError("operator context missing: start-up did not finish")
    return context


def _ref(body: kopf.Body) -> ObjectRef:
    meta = body.metadata
    return ObjectRef(
        namespace=str(meta.namespace),
        name=str(meta.name),
        uid=str(meta.uid),
        generation=int(meta.get("generation") or 1),
        retest=body.metadata.annotations.get(RETEST_ANNOTATION),
        created=meta.get("creationTimestamp"),
    )


def apply_outcome(
    body: kopf.Body,
    patch: kopf.Patch,
    outcome: Outcome,
    old: Mapping[str, Any],
    logger: kopf.Logger | None = None,
) -> None:
    new_status = outcome.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    # Against both the view and what the reconcile started from: when the view lags behind
    # our own last write, a key may differ from the server's state but not from the view.
    for key, value in new_status.items():
        if old.get(key) != value or outcome.base.get(key) != value:
            patch.status[key] = value
    for key in {*old, *outcome.base, *outcome.written} - new_status.keys():
        patch.status[key] = None
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message[:1024])
        if logger is not None:
            # Info level: below kopf's posting level, so the line is not posted a second time.
            logger.info("%s %s: %s", event.type, event.reason, event.message)


async def reconcile(
    handler: str,
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
) -> None:
    context = _context(memo)
    if context.closing:
        return
    ref = _ref(body)
    started, result = time.monotonic(), "error"
    try:
        outcome = await context.reconciler.reconcile(ref, body.spec, body.status)
        apply_outcome(body, patch, outcome, body.status, logger)
        ready = next((c for c in outcome.status.conditions if c.type == "Ready"), None)
        context.ready.set(ref.uid, ready.status if ready else "Unknown")
        result = "success"
    finally:
        metrics.RECONCILES.labels(handler, result).inc()
        metrics.RECONCILE_DURATION.labels(handler).observe(time.monotonic() - started)


def register(registry: kopf.OperatorRegistry, config: Settings) -> None:
    @kopf.on.resume(*RESOURCE, id="reconcile", registry=registry)
    @kopf.on.create(*RESOURCE, id="reconcile", registry=registry)
    @kopf.on.update(*RESOURCE, id="reconcile", field="spec", registry=registry)
    async def on_change(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        await reconcile("change", body, patch, memo, kwargs["logger"])

    # Two timers: a fast one that acts only while work is in flight (a smoke test running, a
    # generation not yet processed), and a slow one for periodic work (drift, registry re-checks,
    # retries after failures). Idle objects then cost one cheap check per fast tick.
    @kopf.timer(*RESOURCE, id=FAST_TIMER, interval=config.smoke_poll_seconds, registry=registry)
    async def on_tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        if in_flight(body):
            await reconcile("tick", body, patch, memo, kwargs["logger"])

    @kopf.timer(*RESOURCE, id=SLOW_TIMER, interval=periodic_interval(config), registry=registry)
    async def on_periodic(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
    ) -> None:
        await reconcile("periodic", body, patch, memo, kwargs["logger"])

    @kopf.on.delete(*RESOURCE, id="retire", registry=registry)
    async def on_delete(
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        retry: int,
        logger: kopf.Logger,
        **_: Any,
    ) -> None:
        context = _context(memo)
        ref = _ref(body)
        outcome = await context.reconciler.retire(ref, body.spec, body.status, attempt=retry + 1)
        apply_outcome(body, patch, outcome, body.status, logger)
        if outcome.retry_after is not None:
            raise kopf.TemporaryError(outcome.message, delay=outcome.retry_after)
        await context.smoke.cancel(ref.uid)  # pods in another namespace have no owner to follow
        context.reconciler.forget(ref.uid)
        context.ready.forget(ref.uid)
