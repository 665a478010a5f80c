"""Spec <-> Renku payload mapping, as pure functions that know the API's quirks (CONTRACT.md).

- Responses leave null fields out: an absent key means null.
- On PATCH, a key left out (or null) is unchanged, except `command`/`args`, where null clears;
  `""` clears `working_directory`/`mount_directory`; `description` can only be emptied ("").
- POST needs `environment_image_source: "image"`; defaults apply to what is left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.spec import GlobalEnvironmentSpec

# Renku's defaults for fields a spec leaves out: the declared state is Renku's default.
RENKU_DEFAULTS: dict[str, Any] = {
    "description": "",
    "default_url": "/lab",
    "uid": 1000,
    "gid": 1000,
    "port": 8080,
    "working_directory": None,
    "mount_directory": None,
    "command": None,
    "args": None,
    "strip_path_prefix": False,
    "is_archived": False,
}
FIELDS = ("name", "container_image", *RENKU_DEFAULTS)
_CLEAR_WITH_EMPTY = {"working_directory", "mount_directory", "description"}

Declared = dict[str, Any]


@dataclass(frozen=True)
class FieldDiff:
    """One field where Renku differs from the declared state."""

    field: str
    declared: Any
    actual: Any

    def describe(self) -> str:
        return f"{self.field}: declared {self.declared!r}, Renku has {self.actual!r}"


def declared_state(spec: GlobalEnvironmentSpec, default_name: str, image: str) -> Declared:
    """Every Renku field with the value the spec declares (Renku's default where unset).

    `image` is what to publish: spec.image, or the digest-pinned reference.
    """
    values: dict[str, Any] = {
        "name": spec.name or default_name,
        "container_image": image,
        "description": spec.description,
        "default_url": spec.default_url,
        "uid": spec.uid,
        "gid": spec.gid,
        "port": spec.port,
        "working_directory": spec.working_directory,
        "mount_directory": spec.mount_directory,
        "command": list(spec.command) if spec.command is not None else None,
        "args": list(spec.args) if spec.args is not None else None,
        "strip_path_prefix": spec.strip_path_prefix,
        "is_archived": spec.archived,
    }
    return {k: (RENKU_DEFAULTS.get(k) if v is None else v) for k, v in values.items()}


def observed_state(response: Mapping[str, Any]) -> Declared:
    """A Renku response in the same comparable form (absent = null, then defaults for nulls
    that Renku itself would fill)."""
    state = {field: response.get(field) for field in FIELDS}
    if state["description"] is None:
        state["description"] = ""
    for field in ("default_url", "uid", "gid", "port", "strip_path_prefix", "is_archived"):
        if state[field] is None:
            state[field] = RENKU_DEFAULTS[field]
    # "" is how a directory is cleared: should a server echo it back, it still means unset.
    for field in ("working_directory", "mount_directory"):
        if state[field] == "":
            state[field] = None
    return state


def diff(declared: Declared, observed: Declared) -> list[FieldDiff]:
    return [
        FieldDiff(field, declared[field], observed.get(field))
        for field in FIELDS
        if declared[field] != observed.get(field)
    ]


def create_payload(declared: Declared) -> dict[str, Any]:
    """POST body: nulls left out (they are Renku's defaults anyway)."""
    body = {k: v for k, v in declared.items() if v is not None and v != ""}
    body["environment_image_source"] = "image"
    return body


def patch_payload(changes: list[FieldDiff]) -> dict[str, Any]:
    """Minimal PATCH body that turns Renku's state into the declared one."""
    body: dict[str, Any] = {}
    for change in changes:
        value = change.declared
        if value is None and change.field in _CLEAR_WITH_EMPTY:
            value = ""
        body[change.field] = value
    return body


def fingerprint(declared: Declared) -> str:
    """Stable hash of a declared state: what was published, for drift and idempotency."""
    canonical = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def describe_drift(changes: list[FieldDiff]) -> str:
    return "; ".join(change.describe() for change in changes)
