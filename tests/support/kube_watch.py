"""The read side of the emulator: its event log, selection of objects, and watch streams.

One ordered log of all writes (with their resourceVersions) serves every watcher: a watch from
``resourceVersion=N`` replays what happened after N, so nothing is lost between a client's list
and its watch. The same ``asyncio.Condition`` wakes watchers and the test helpers' waiters.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
from collections.abc import AsyncIterator, Iterable
from typing import Any

import attrs
import kmock

from tests.support import kube_meta as meta
from tests.support.kube_meta import Obj


@attrs.frozen
class WatchEvent:
    """One entry of the log: what a watcher of ``resource`` receives."""

    rv: int
    resource: kmock.resource
    type: str
    object: Obj


def _event_rv(event: WatchEvent) -> int:
    return event.rv


def selected(request: kmock.Request, obj: Obj) -> bool:
    """Whether a list/watch request (namespace, label and field selectors) covers the object."""
    namespace = request.namespace
    if namespace is not None and meta.dig(obj, "metadata.namespace") != namespace:
        return False
    labels = meta.dig(obj, "metadata.labels")
    if not meta.matches_labels(labels, request.params.get("labelSelector")):
        return False
    return meta.matches_fields(obj, request.params.get("fieldSelector"))


@attrs.define
class EventLog:
    """All writes in order; waiters and watchers wake up on each append."""

    entries: list[WatchEvent] = attrs.field(factory=list)
    changed: asyncio.Condition = attrs.field(factory=asyncio.Condition)
    active_watches: list[kmock.Request] = attrs.field(factory=list)

    async def append(self, event: WatchEvent) -> None:
        """Log a write and wake everybody up."""
        self.entries.append(event)
        await self.notify()

    async def notify(self) -> None:
        """Wake up all waiters (to re-check their conditions)."""
        async with self.changed:
            self.changed.notify_all()

    async def since(self, cursor: int) -> list[WatchEvent]:
        """Await and return the entries after position ``cursor`` (at least one)."""
        async with self.changed:
            await self.changed.wait_for(lambda: len(self.entries) > cursor)
        return self.entries[cursor:]

    def cursor_after(self, rv: int) -> int:
        """The position of the first entry newer than resourceVersion ``rv``."""
        return bisect.bisect_right(self.entries, rv, key=_event_rv)

    async def watch(
        self, request: kmock.Request, cursor: int, snapshot: Iterable[Obj], rv: int
    ) -> AsyncIterator[Any]:
        """Stream ADDED for the snapshot, then the logged events the request selects.

        Ends normally after ``timeoutSeconds`` (as the real server does).
        """
        streaming = request.params.get("sendInitialEvents") == "true"
        timeout = float(request.params.get("timeoutSeconds", 0)) or None
        self.active_watches.append(request)
        try:
            await self.notify()  # wake up Kube.wait_watching()
            for obj in snapshot:
                yield {"type": "ADDED", "object": obj}
            if streaming:  # the bookmark that ends the initial events
                end = {"k8s.io/initial-events-end": "true"}
                yield {
                    "type": "BOOKMARK",
                    "object": {"metadata": {"resourceVersion": str(rv), "annotations": end}},
                }
            async with asyncio.timeout(timeout):
                while True:
                    batch = await self.since(cursor)
                    cursor += len(batch)
                    for event in batch:
                        if event.resource == request.resource and selected(request, event.object):
                            yield {"type": event.type, "object": copy.deepcopy(event.object)}
        except TimeoutError:
            return
        finally:
            self.active_watches.remove(request)
