"""Validation of a GlobalEnvironment manifest: the same rules as the CRD, plus the operator's own.

Pure: takes the parsed document, returns problems with a field path and what to do. Used by
`renku-env-operator validate` and, for the spec, by the operator itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
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
        return _value_error(loc, msg.removeprefix("Value error, "), err["input"])
    if kind in _LIMIT_TYPES:
        explained = _limit(loc, kind, err["input"])
        if explained:
            return explained
    if kind == "literal_error":
        return f"{msg} (values are case-sensitive)"
    if kind in _EXPECTED:
        return _wrong_type(_EXPECTED[kind], err["input"])
    if kind == "string_pattern_mismatch" and loc[-1] == "renkuId":
        return (
            "must be a Renku environment id: 26 upper-case characters (a ULID), the only ids "
            "Renku knows; copy it from the admin panel or from `renku-env-operator export`"
        )
    if kind == "string_pattern_mismatch" and loc == ("metadata", "name"):
        return (
            "must be a lower-case DNS name, the only names Kubernetes accepts: letters a-z, "
            "digits, '-' and '.', starting and ending with a letter or digit (the display name "
            "goes in spec.name)"
        )
    if kind == "too_short" and loc[-1] in {"command", "args"}:
        return f"{msg}: leave {loc[-1]} out to keep the image's own"
    return msg


_LIMIT_TYPES = {
    "greater_than_equal",
    "less_than_equal",
    "string_too_short",
    "string_too_long",
    "too_short",
    "too_long",
}
_USE_UID = "use the image's non-root user id (1-65535, usually 1000)"
_USE_GID = "use the image's group id (1-65535, usually 1000; it owns the session volume)"
_USE_PORT = "use the port your server listens on (1-65399)"


def _uid(low: bool, value: Any, size: int) -> str:
    if value == 0:
        return f"Renku refuses root (uid 0); {_USE_UID}"
    if low:
        return f"{value} is not a user id: ids are positive and Renku refuses root; {_USE_UID}"
    return f"{value} is above 65535, the highest user id Renku accepts; {_USE_UID}"


def _gid(low: bool, value: Any, size: int) -> str:
    if value == 0:
        return f"Renku refuses the root group (gid 0); {_USE_GID}"
    if low:
        return f"{value} is not a group id: ids are positive; {_USE_GID}"
    return f"{value} is above 65535, the highest group id Renku accepts; {_USE_GID}"


def _port(low: bool, value: Any, size: int) -> str:
    if low:
        return f"{value} is not a TCP port a server can listen on; {_USE_PORT}, Renku's default is 8080"
    if isinstance(value, int) and value <= 65535:
        return f"ports from 65400 up belong to Renku's own proxies; {_USE_PORT}"
    return f"{value} is not a TCP port (the highest is 65535); {_USE_PORT}"


def _name(low: bool, value: Any, size: int) -> str:
    if low:
        return "must not be empty: Renku shows it to users; write a display name, or leave spec.name out to use metadata.name"
    return f"is {size} characters, Renku's limit for an environment name is 99: shorten it (it need not match metadata.name)"


def _image(low: bool, value: Any, size: int) -> str:
    if low:
        return "is too short to be an image reference (Renku needs at least 3 characters): write one like ghcr.io/org/image:1.2.3"
    return f"is {size} characters, Renku's limit for an image reference is 500: use a shorter registry path or tag"


def _directory(field: str) -> Callable[[bool, Any, int], str]:
    def explain(low: bool, value: Any, size: int) -> str:
        if low:
            return f"must not be empty: Renku needs an absolute path such as /home/renku/work; leave {field} out to use the default"
        return f"is {size} characters, longer than Linux allows for a path (4096): shorten it"

    return explain


def _arg_list(field: str) -> Callable[[bool, Any, int], str]:
    def explain(low: bool, value: Any, size: int) -> str:
        if low:
            return f"an empty list is refused by Renku: list at least one item, or leave {field} out to keep the image's own"
        return f"has {size} items, at most 64: put a long command line into a script in the image"

    return explain


def _update_range(low: bool, value: Any, size: int) -> str:
    if low:
        return "must not be empty: write an npm range such as ^2.10, or leave updateRange out (same major version)"
    return f"is {size} characters, at most 100: write a shorter npm range such as ^2.10"


def _timeout(low: bool, value: Any, size: int) -> str:
    if low:
        return f"{value} seconds is too short to pull an image and start a server: use 30-3600 (default 300)"
    return f"{value} seconds is more than an hour, and a smoke pod holds a test slot that long: use 30-3600 (default 300)"


def _stable(low: bool, value: Any, size: int) -> str:
    if low:
        return f"{value} is negative: it is how long the pod must stay ready with no restart; use 0-600 (default 20)"
    return f"{value} seconds keeps a test slot busy too long: use 0-600 (default 20)"


def _interval(low: bool, value: Any, size: int) -> str:
    if low:
        return f"re-testing every {value} minutes only loads the cluster: use 10-10080 (a week), or leave intervalMinutes out to test on changes only"
    return f"{value} minutes is more than a week: use 10-10080, or leave intervalMinutes out to test on changes only"


def _metadata_name(low: bool, value: Any, size: int) -> str:
    if low:
        return "must not be empty: Kubernetes needs a name (lower-case letters, digits, '-')"
    return f"is {size} characters; Kubernetes names are at most 253: shorten it (the display name goes in spec.name)"


def _namespace(low: bool, value: Any, size: int) -> str:
    if low:
        return "must not be empty: write the namespace, or leave it out to use kubectl's"
    return f"is {size} characters; Kubernetes namespaces are at most 63: check the name"


def _description(low: bool, value: Any, size: int) -> str:
    return f"is {size} characters, Renku's limit for a description is 500: shorten it (link to longer documentation)"


def _default_url(low: bool, value: Any, size: int) -> str:
    return f"is {size} characters, Renku's limit for defaultUrl is 200: shorten the path"


def _arg_item(low: bool, value: Any, size: int) -> str:
    return f"is {size} characters, at most 4096 per item: put long text into a file in the image"


# Per field (the last key of its path): why its range or length limit exists, what to write.
_LIMITS: dict[str, Callable[[bool, Any, int], str]] = {
    "uid": _uid,
    "gid": _gid,
    "port": _port,
    "name": _name,
    "description": _description,
    "image": _image,
    "defaultUrl": _default_url,
    "workingDirectory": _directory("workingDirectory"),
    "mountDirectory": _directory("mountDirectory"),
    "command": _arg_list("command"),
    "args": _arg_list("args"),
    "updateRange": _update_range,
    "timeoutSeconds": _timeout,
    "stableSeconds": _stable,
    "intervalMinutes": _interval,
}


def _limit(loc: tuple[str | int, ...], kind: str, value: Any) -> str | None:
    """Why a number or a length is out of range, and what to write instead."""
    low = kind in {"greater_than_equal", "string_too_short", "too_short"}
    size = len(value) if isinstance(value, (str, list)) else 0
    if loc == ("metadata", "name"):
        return _metadata_name(low, value, size)
    if loc == ("metadata", "namespace"):
        return _namespace(low, value, size)
    if len(loc) > 1 and isinstance(loc[-1], int) and loc[-2] in {"command", "args"}:
        return _arg_item(low, value, size)
    explain = _LIMITS.get(str(loc[-1])) if loc else None
    return explain(low, value, size) if explain else None


# Why the rules in api/rules.py exist, added to their (short, CRD-side) message.
_VALUE_WHY = {
    rules.ABSOLUTE_PATH.message: "Renku refuses relative paths, as they would depend on the image's WORKDIR",
    rules.NO_WHITESPACE_PATH.message: "a pasted or trailing space names another directory; remove it",
    rules.IMAGE_LOWERCASE_REPOSITORY.message: "registries refuse upper-case repository names; write it in lower case (only the registry host may have capitals)",
    rules.NON_EMPTY_ITEMS.message: "an empty item reaches the program as an empty argument ''; remove it",
}


def _value_error(loc: tuple[str | int, ...], message: str, value: Any) -> str:
    if loc[-1:] == ("image",) and isinstance(value, str):
        detail = images.image_reference_problem(value)
        if detail:
            return detail
    why = _VALUE_WHY.get(message)
    return f"{message}: {why}" if why else message


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
    if got == "number" and expected == _EXPECTED["int_type"]:
        return f"{text}: write a whole number, without a decimal point"
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
