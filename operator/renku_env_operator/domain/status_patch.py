"""What a status write must send: a JSON merge patch (RFC 7386) from the status the API server
holds to the one wanted, and whether a change is only the progress of a running test."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

_RUNNING = ("Pending", "Running")
# Of a running test, what matters to anyone reading the status (and to a restarted operator).
_RUN_IDENTITY = ("result", "generation", "image", "podName", "session", "trigger")
_PROGRESS_CONDITIONS = ("SmokeTested", "Ready")
_CONFIRMATIONS = ("lastSyncTime",)


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (empty: nothing to write). Nested objects
    are patched key by key, so that a key `new` lacks is removed (null) wherever it is."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch


def worth_writing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` says something `old` does not. A drift check that found nothing only
    moves lastSyncTime: that alone is not written (steady state writes nothing)."""
    return _without(old, _CONFIRMATIONS) != _without(new, _CONFIRMATIONS)


def progress_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `new` differs from `old` only in the details of a test still running (its
    message, checks so far): such changes are written now and then, not on every poll."""
    return old != new and _settled_view(old) == _settled_view(new)


def _settled_view(status: Mapping[str, Any]) -> dict[str, Any]:
    view = dict(status)
    if _is_running(view.get("smokeTest")):
        view["smokeTest"] = _identity(view["smokeTest"])
    image = view.get("image")
    if isinstance(image, Mapping) and _is_running(image.get("updateTest")):
        view["image"] = {**image, "updateTest": _identity(image["updateTest"])}
    conditions = view.get("conditions")
    if isinstance(conditions, list):
        view["conditions"] = [_without_progress(c) for c in conditions]
    return view


def _is_running(test: object) -> bool:
    return isinstance(test, Mapping) and test.get("result") in _RUNNING


def _identity(test: Mapping[str, Any]) -> dict[str, Any]:
    return {key: test.get(key) for key in _RUN_IDENTITY}


def _without_progress(condition: object) -> object:
    if not isinstance(condition, Mapping):
        return condition
    if condition.get("type") in _PROGRESS_CONDITIONS and condition.get("status") == "Unknown":
        return {k: v for k, v in condition.items() if k not in ("message", "lastTransitionTime")}
    return condition


def _without(status: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in status.items() if key not in keys}
