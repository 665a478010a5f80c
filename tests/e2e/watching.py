"""Waiting for a state of the cluster: event-driven, bounded, with a clear timeout message.

A list gives the current state and its resourceVersion; a watch from there delivers every
change until the check holds or the deadline passes (the watch's server-side timeout is the
time left, so nothing blocks past the deadline; an expired version (410) means: list again).
A timeout raises ``TimeoutError`` naming what was awaited and the last state seen.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import GENV, REQUEST_TIMEOUT, Cluster, Obj, Ref, plain
from tests.e2e.genv import has_condition

Check = Callable[[Mapping[str, Obj]], bool]
"""A condition on the matching objects, by name."""


def summary(obj: Obj | None) -> str:
    """A short account of an object's state, for timeout messages."""
    if obj is None:
        return "absent"
    status = obj.get("status") or {}
    shown = {key: status[key] for key in ("phase", "conditions", "smokeTest") if key in status}
    text = json.dumps(shown or status, default=str)
    return text if len(text) <= 3000 else text[:3000] + "..."


def watch_until(
    cluster: Cluster,
    ref: Ref,
    namespace: str | None,
    check: Check,
    *,
    timeout: float,
    what: str,
    field_selector: str | None = None,
    label_selector: str | None = None,
) -> dict[str, Obj]:
    """Await a state of the matching objects for which `check` holds; return it."""
    resource = cluster.resource(ref)
    selector = {"field_selector": field_selector, "label_selector": label_selector}
    deadline = time.monotonic() + timeout
    state: dict[str, Obj] = {}
    while True:
        listing = plain(
            cluster.dynamic.get(
                resource, namespace=namespace, _request_timeout=REQUEST_TIMEOUT, **selector
            )
        )
        state = {item["metadata"]["name"]: dict(item) for item in listing.get("items") or []}
        if check(state):
            return state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        events = cluster.dynamic.watch(
            resource,
            namespace=namespace,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout=max(1, math.ceil(remaining)),
            **selector,
        )
        try:
            if _follow(events, state, check):
                return state
        except ApiException as exc:
            if exc.status != 410:
                raise
        if time.monotonic() >= deadline:
            break
    shown = {key: summary(obj) for key, obj in state.items()} or "nothing"
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}; last seen: {shown}")


def _follow(events: Any, state: dict[str, Obj], check: Check) -> bool:
    """Apply watch events to `state` until `check` holds (True) or the watch ends."""
    for event in events:
        obj = dict(event["raw_object"])
        if event["type"] == "DELETED":
            state.pop(obj["metadata"]["name"], None)
        else:
            state[obj["metadata"]["name"]] = obj
        if check(state):
            return True
    return False


def wait_for(
    cluster: Cluster,
    ref: Ref,
    namespace: str | None,
    name: str,
    predicate: Callable[[Obj | None], bool],
    *,
    timeout: float,
    what: str,
) -> Obj | None:
    """Await a state of one object (None: absent) for which `predicate` holds."""
    state = watch_until(
        cluster,
        ref,
        namespace,
        lambda objs: predicate(objs.get(name)),
        timeout=timeout,
        what=f"{ref[1]} {namespace or ''}/{name}: {what}",
        field_selector=f"metadata.name={name}",
    )
    return state.get(name)


async def wait_for_async(
    cluster: Cluster,
    ref: Ref,
    namespace: str | None,
    name: str,
    predicate: Callable[[Obj | None], bool],
    *,
    timeout: float,
    what: str,
) -> Obj | None:
    """`wait_for` in a worker thread, for async tests."""
    return await asyncio.to_thread(
        wait_for, cluster, ref, namespace, name, predicate, timeout=timeout, what=what
    )


async def watch_until_async(
    cluster: Cluster,
    ref: Ref,
    namespace: str | None,
    check: Check,
    *,
    timeout: float,
    what: str,
    field_selector: str | None = None,
    label_selector: str | None = None,
) -> dict[str, Obj]:
    """`watch_until` in a worker thread, for async tests."""
    return await asyncio.to_thread(
        watch_until,
        cluster,
        ref,
        namespace,
        check,
        timeout=timeout,
        what=what,
        field_selector=field_selector,
        label_selector=label_selector,
    )


async def until_ready(
    cluster: Cluster, namespace: str, name: str, *, timeout: float, what: str = "Ready"
) -> Obj:
    """The GlobalEnvironment once its Ready condition is True."""
    found = await wait_for_async(
        cluster, GENV, namespace, name, has_condition("Ready", "True"), timeout=timeout, what=what
    )
    assert found is not None
    return found


async def until_smoke_failed(cluster: Cluster, namespace: str, name: str, *, timeout: float) -> Obj:
    """The GlobalEnvironment once its smoke test failed and nothing was published."""

    def failed(obj: Obj | None) -> bool:
        return has_condition("SmokeTested", "False")(obj) and has_condition("Synced", "False")(obj)

    found = await wait_for_async(
        cluster, GENV, namespace, name, failed, timeout=timeout, what="SmokeTested and Synced False"
    )
    assert found is not None
    return found
