"""Validation of a GlobalEnvironment manifest: the same rules as the CRD, plus the operator's own.

Pure: takes the parsed document, returns problems with a field path and what to do. Used by
`renku-env-operator validate` and, for the spec, by the operator itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from ..api import crd, rules
from ..api.spec import GlobalEnvironmentSpec

Severity = Literal["error", "warning"]
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@dataclass(frozen=True)
class Problem:
    """One finding, located by a path of keys/indexes into the document."""

    path: tuple[str | int, ...]
    message: str
    severity: Severity = "error"

    @property
    def field(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text or "(document)"


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)
    namespace: str | None = Field(default=None, min_length=1, max_length=63)


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: _Metadata
    spec: GlobalEnvironmentSpec
    status: dict[str, Any] | None = None


def is_global_environment(document: Any) -> bool:
    """Whether a parsed YAML document claims to be a GlobalEnvironment (any version)."""
    if not isinstance(document, Mapping):
        return False
    api_version = str(document.get("apiVersion", ""))
    return document.get("kind") == crd.KIND and api_version.startswith(f"{crd.GROUP}/")


def validate_manifest(document: Mapping[str, Any]) -> list[Problem]:
    """Every problem of one GlobalEnvironment document, errors first."""
    problems: list[Problem] = []
    if document.get("apiVersion") != crd.API_VERSION:
        problems.append(
            Problem(("apiVersion",), f"must be {crd.API_VERSION}, the only served version")
        )
    try:
        manifest = _Manifest.model_validate(document)
    except ValidationError as exc:
        problems.extend(_from_pydantic(exc))
        return problems
    problems.extend(_cross_field(manifest.metadata.name, manifest.spec))
    problems.extend(spec_warnings(manifest.spec))
    return problems


def validate_spec(spec: Mapping[str, Any]) -> tuple[GlobalEnvironmentSpec | None, list[Problem]]:
    """The operator's check of a live object's spec (the API server already applied the CRD)."""
    try:
        parsed = GlobalEnvironmentSpec.model_validate(dict(spec))
    except ValidationError as exc:
        return None, [Problem(("spec", *p.path), p.message) for p in _from_pydantic(exc)]
    return parsed, spec_warnings(parsed)


def _cross_field(name: str, spec: GlobalEnvironmentSpec) -> list[Problem]:
    if not rules.NAME_FITS_RENKU.check((spec.name, name)):
        return [Problem(("metadata", "name"), rules.NAME_FITS_RENKU.message)]
    return []


def spec_warnings(spec: GlobalEnvironmentSpec) -> list[Problem]:
    """What Renku accepts but users would regret: only the operator can tell."""
    warnings: list[Problem] = []
    work, mount = spec.working_directory, spec.mount_directory
    if work and mount and not _inside(work, mount):
        warnings.append(
            Problem(
                ("spec", "workingDirectory"),
                f"{work} is not inside mountDirectory {mount}: Renku starts the session in "
                f"{mount} instead, and anything written outside {mount} is lost when a session "
                "is paused and resumed. Put workingDirectory below mountDirectory.",
                "warning",
            )
        )
    if mount == "/":
        warnings.append(
            Problem(
                ("spec", "mountDirectory"),
                "Renku replaces a mount directory of / with /work: set /work (or the real "
                "home directory) explicitly so that sessions behave as declared.",
                "warning",
            )
        )
    return warnings


def _inside(path: str, parent: str) -> bool:
    path, parent = path.rstrip("/") or "/", parent.rstrip("/") or "/"
    return parent in {"/", path} or path.startswith(parent + "/")


def _from_pydantic(exc: ValidationError) -> list[Problem]:
    return [Problem(_path(err), _explain(err)) for err in exc.errors(include_url=False)]


def _path(err: ErrorDetails) -> tuple[str | int, ...]:
    # pydantic inserts validator names into the location of Annotated/union types; drop them.
    return tuple(p for p in err["loc"] if isinstance(p, int) or not re.search(r"[\[\]]", p))


def _explain(err: ErrorDetails) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return _unknown_field(err)
    if kind == "missing":
        return "is required: add it"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{msg} (values are case-sensitive)"
    if kind in {"int_type", "bool_type", "string_type", "list_type", "model_type", "dict_type"}:
        return f"{msg}, got {type(err['input']).__name__} {err['input']!r}: remove the quotes or fix the type"
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "renkuId":
        return (
            "must be a Renku environment id: 26 upper-case characters (a ULID) from the admin panel"
        )
    return msg


def _unknown_field(err: ErrorDetails) -> str:
    field = str(err["loc"][-1])
    known = _known_fields(err["loc"][:-1])
    close = difflib.get_close_matches(field, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "remove it or check the spelling"
    return f"unknown field {field!r}: {hint}"


def _known_fields(parent: tuple[str | int, ...]) -> list[str]:
    schema: dict[str, Any] = {"properties": {"spec": crd.spec_schema()}}
    if not parent:
        return ["apiVersion", "kind", "metadata", "spec", "status"]
    for part in parent:
        if isinstance(part, int):
            schema = schema.get("items", {})
        else:
            schema = schema.get("properties", {}).get(part, {})
    return list(schema.get("properties", {}))
