"""Renku environment -> GlobalEnvironment manifest: the inverse of `payload.declared_state`.

Pure. `renku-env-operator export` uses it so that an admin can move environments made in the
admin panel under the operator: each manifest carries `spec.renkuId` (applying it adopts the
environment instead of creating a second one) and every field Renku holds, so that adopting
changes nothing in Renku.

What it does not write: `smokeTest` (the operator's default smoke test runs, and an image that
fails it leaves Renku as it is), `imagePolicy`, `deletionPolicy`, `driftPolicy` (defaults).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api import crd
from .image_reference import InvalidImageReference, parse_image_reference
from .payload import RENKU_DEFAULTS

MAX_NAME = 63  # a DNS label: also fits the smoke pods' and labels' limits
_FALLBACK_NAME = "environment"


@dataclass(frozen=True)
class Exported:
    """One manifest and what the admin should look at before applying it."""

    manifest: dict[str, Any]
    pin_note: str | None  # why the image should be pinned to a version first

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def spec_from_environment(env: Mapping[str, Any]) -> dict[str, Any]:
    """The spec whose declared state is exactly what Renku holds (absent = null = default).

    Fields at Renku's default are left out (they declare the same state); booleans only when
    true; empty description and directories left out.
    """
    spec: dict[str, Any] = {"image": env["container_image"], "name": env["name"]}
    if env.get("description"):
        spec["description"] = env["description"]
    for key, field in (("default_url", "defaultUrl"), ("port", "port")):
        spec.update(_unless_default(env, key, field))
    for key in ("uid", "gid"):
        spec.update(_unless_default(env, key, key))
    for key, field in (
        ("working_directory", "workingDirectory"),
        ("mount_directory", "mountDirectory"),
    ):
        if env.get(key):
            spec[field] = env[key]
    for key in ("command", "args"):
        if env.get(key) is not None:
            spec[key] = list(env[key])
    if env.get("strip_path_prefix"):
        spec["stripPathPrefix"] = True
    if env.get("is_archived"):
        spec["archived"] = True
    spec["renkuId"] = env["id"]
    return spec


def _unless_default(env: Mapping[str, Any], key: str, field: str) -> dict[str, Any]:
    value = env.get(key)
    return {} if value is None or value == RENKU_DEFAULTS[key] else {field: value}


def dns_name(display_name: str) -> str:
    """A lower-case DNS label from a display name: 'Python/Jupyter 3.12' -> 'python-jupyter-3-12'."""
    ascii_text = unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:MAX_NAME].rstrip("-") or _FALLBACK_NAME


def unique_names(environments: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Renku id -> metadata.name, unique and stable: names that collide (Renku names need not
    be unique) get the end of their id as a suffix, so re-exporting gives the same names."""
    envs = sorted(environments, key=lambda e: str(e["id"]))
    base = {str(e["id"]): dns_name(str(e["name"])) for e in envs}
    counts: dict[str, int] = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    names: dict[str, str] = {}
    for env_id, name in base.items():
        suffix = env_id[-6:].lower()
        collides = counts[name] > 1
        names[env_id] = f"{name[: MAX_NAME - 7].rstrip('-')}-{suffix}" if collides else name
    return names


def pin_note(image: str) -> str | None:
    """Why an image should be pinned before it is put under the operator, or None."""
    try:
        reference = parse_image_reference(image)
    except InvalidImageReference as exc:
        return f"not a valid image reference ({exc}): fix it before applying"
    if reference.digest:
        return None
    if reference.tag is None:
        return (
            "this image has no tag, so it follows 'latest' and can change under running "
            f"sessions: pin a version, e.g. {reference.name}:<version>"
        )
    if reference.tag == "latest":
        return (
            "this image uses the tag 'latest', which can change under running sessions: pin a "
            f"version, e.g. {reference.name}:<version>"
        )
    return None


def export_manifests(
    environments: Iterable[Mapping[str, Any]], namespace: str | None = None
) -> list[Exported]:
    """One GlobalEnvironment per Renku environment, ordered by metadata.name."""
    envs = list(environments)
    names = unique_names(envs)
    exported = []
    for env in envs:
        metadata: dict[str, Any] = {"name": names[str(env["id"])]}
        if namespace:
            metadata["namespace"] = namespace
        manifest = {
            "apiVersion": crd.API_VERSION,
            "kind": crd.KIND,
            "metadata": metadata,
            "spec": spec_from_environment(env),
        }
        exported.append(Exported(manifest, pin_note(str(env["container_image"]))))
    return sorted(exported, key=lambda e: e.name)
