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
from . import images, paths

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
        manifest = _Manifest.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems.extend(_from_pydantic(exc))
        return problems
    problems.extend(_cross_field(manifest.metadata.name, manifest.spec))
    problems.extend(spec_errors(manifest.spec))
    problems.extend(spec_warnings(manifest.spec))
    return problems


def validate_spec(spec: Mapping[str, Any]) -> tuple[GlobalEnvironmentSpec | None, list[Problem]]:
    """The operator's check of a live object's spec (the API server already applied the CRD)."""
    try:
        parsed = GlobalEnvironmentSpec.model_validate(dict(spec), by_alias=True, by_name=False)
    except ValidationError as exc:
        return None, _from_pydantic(exc, prefix=("spec",))
    return parsed, spec_errors(parsed) + spec_warnings(parsed)


def _cross_field(name: str, spec: GlobalEnvironmentSpec) -> list[Problem]:
    if not rules.NAME_FITS_RENKU.check((spec.name, name)):
        return [Problem(("metadata", "name"), rules.NAME_FITS_RENKU.message)]
    return []


def spec_errors(spec: GlobalEnvironmentSpec) -> list[Problem]:
    """What a schema cannot say: the full image grammar and npm semver ranges."""
    errors: list[Problem] = []
    image_problem = images.image_reference_problem(spec.image)
    if image_problem:
        errors.append(Problem(("spec", "image"), image_problem))
    update_range = spec.image_policy.update_range if spec.image_policy else None
    if update_range is not None:
        try:
            images.validate_version_range(update_range)
        except images.InvalidVersionRange as exc:
            errors.append(Problem(("spec", "imagePolicy", "updateRange"), str(exc)))
    return errors


def spec_warnings(spec: GlobalEnvironmentSpec) -> list[Problem]:
    """What Renku accepts but users would regret: only the operator can tell."""
    return [
        Problem(("spec", note.field), note.message, "warning") for note in paths.path_notes(spec)
    ]


def _from_pydantic(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        path = (*prefix, *_path(err))
        problems.append(Problem(path, _explain(err, path)))
    return problems


def _path(err: ErrorDetails) -> tuple[str | int, ...]:
    # pydantic inserts validator names into the location of Annotated/union types; drop them.
    return tuple(p for p in err["loc"] if isinstance(p, int) or not re.search(r"[\[\]]", p))


# What each pydantic type error expected, in YAML words (the user writes YAML, not Python).
_EXPECTED = {
    "int_type": "an integer",
    "bool_type": "a boolean (true or false)",
    "string_type": "a string",
    "list_type": "a list",
    "model_type": "a mapping of fields",
    "dict_type": "a mapping",
}


def _explain(err: ErrorDetails, loc: tuple[str | int, ...]) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return _unknown_field(loc)
    if kind == "missing":
        return "is required: add it"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "literal_error":
        return f"{msg} (values are case-sensitive)"
    if kind in _EXPECTED:
        return _wrong_type(_EXPECTED[kind], err["input"])
    if kind == "string_pattern_mismatch" and loc[-1] == "renkuId":
        return (
            "must be a Renku environment id: 26 upper-case characters (a ULID) from the admin panel"
        )
    if kind == "string_pattern_mismatch" and loc == ("metadata", "name"):
        return (
            "must be a lower-case DNS name: letters a-z, digits, '-' and '.', starting and "
            "ending with a letter or digit (the display name goes in spec.name)"
        )
    if kind == "too_short" and loc[-1] in {"command", "args"}:
        return f"{msg}: leave {loc[-1]} out to keep the image's own"
    return msg


def _yaml_type(value: Any) -> str:
    # bool before int: bool is an int in Python.
    for python_type, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (Mapping, "mapping"),
        (list, "list"),
    ):
        if isinstance(value, python_type):
            return name
    return "null" if value is None else type(value).__name__


def _wrong_type(expected: str, value: Any) -> str:
    got = _yaml_type(value)
    if value is None:
        return f"is empty (null), must be {expected}: fill it in"
    text = f"must be {expected}, got {got}"
    if got in {"string", "integer", "number"}:
        text += f" {value!r}"
    elif got == "boolean":
        text += f" {str(value).lower()}"
    if got == "string" and expected in {_EXPECTED["int_type"], _EXPECTED["bool_type"]}:
        return f"{text}: remove the quotes"
    if expected == _EXPECTED["string_type"]:
        return f"{text}: quote it (YAML reads 8888, 3.12, yes and no as numbers and booleans)"
    if expected == _EXPECTED["list_type"]:
        return f'{text}: write a YAML list, for example ["/bin/sh", "-c"]'
    return text


# Field names admins bring from Renku's API or from Dockerfiles, keyed by normalised spelling.
_MIX_UPS = {
    "containerimage": "image",
    "isarchived": "archived",
    "workdir": "workingDirectory",
    "entrypoint": "command",
    "cmd": "args",
    "user": "uid",
    "group": "gid",
    "expose": "port",
}


def _unknown_field(loc: tuple[str | int, ...]) -> str:
    field = str(loc[-1])
    close = _suggest(field, _known_fields(loc[:-1]))
    hint = f"did you mean {close!r}?" if close else "remove it or check the spelling"
    return f"unknown field {field!r}: {hint}"


def _suggest(field: str, known: list[str]) -> str | None:
    """The known field the admin most likely meant: same letters, a prefix, or a near miss."""

    def norm(name: str) -> str:
        return re.sub(r"[-_]", "", name).lower()

    by_norm = {norm(name): name for name in known}
    typed = norm(field)
    if typed in by_norm:
        return by_norm[typed]
    if _MIX_UPS.get(typed) in known:
        return _MIX_UPS[typed]
    prefixed = [name for key, name in by_norm.items() if len(typed) >= 3 and key.startswith(typed)]
    if len(prefixed) == 1:
        return prefixed[0]
    close = difflib.get_close_matches(typed, list(by_norm), n=1)
    return by_norm[close[0]] if close else None


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
