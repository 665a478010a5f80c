"""The handlers the operator registers with kopf."""

from __future__ import annotations

import inspect

from renku_env_operator.config import Settings
from renku_env_operator.runner import build_registry


def test_every_object_handler_runs_on_the_event_loop() -> None:
    # kopf runs a plain function in a worker thread: a handler that wakes an owner (an
    # asyncio.Event) or forgets a record (a dict the loop iterates) must be a coroutine.
    registry = build_registry(Settings())
    # kopf lists a registry's handlers only through these (private) parts.
    handlers = [
        *registry._watching.get_all_handlers(),
        *registry._spawning.get_all_handlers(),
        *registry._changing.get_all_handlers(),
    ]
    assert {h.id for h in handlers} >= {"wake", "owner", "retire"}
    in_threads = [h.id for h in handlers if not inspect.iscoroutinefunction(h.fn)]
    assert in_threads == []
