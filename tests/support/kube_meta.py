"""Pure helpers of the emulated API server: errors, patches, selectors, server-side metadata.

Everything here mirrors what a real kube-apiserver does, in the small subset our operator meets.
No I/O, no kmock: the emulator (``kube_emulator``) calls these on every write.
"""

from __future__ import annotations

import copy
import datetime
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import jsonpatch  # a dependency of kmock
import jsonpointer
import kmock

Obj = dict[str, Any]

# Fields a client cannot change: the server keeps its own values on every update.
SERVER_OWNED_META = (
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "name",
    "namespace",
)
# The alphabet of generateName suffixes in apimachinery (no vowels, no 0/1/3).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@attrs.frozen
class ApiError(kmock.KubernetesError):
    """An error answered as a real ``Status`` object (kmock renders it with our reason)."""


def now_rfc3339() -> str:
    """The API server's timestamp format: seconds precision, UTC, ``Z`` suffix."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str) -> str:
    """``generateName`` + a 5-character random suffix, as apimachinery's SimpleNameGenerator."""
    return prefix + "".join(random.choices(_SUFFIX_ALPHABET, k=5))


def qualified(resource: kmock.resource) -> str:
    """``plural.group`` (or ``plural`` for the core group), as in the server's messages."""
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def _details(resource: kmock.resource, name: str) -> dict[str, Any]:
    return {"name": name, "group": resource.group, "kind": resource.plural}


def not_found(resource: kmock.resource, name: str) -> ApiError:
    """404 NotFound as the server says it for a missing object."""
    msg = f'{qualified(resource)} "{name}" not found'
    return ApiError(404, "NotFound", msg, _details(resource, name))


def unknown_resource() -> ApiError:
    """404 for a resource the server does not serve (no discovery entry)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def already_exists(resource: kmock.resource, name: str) -> ApiError:
    """409 AlreadyExists on a create of an existing name."""
    msg = f'{qualified(resource)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", msg, _details(resource, name))


def conflict(resource: kmock.resource, name: str) -> ApiError:
    """409 Conflict on a stale ``resourceVersion`` precondition (optimistic concurrency)."""
    msg = (
        f'Operation cannot be fulfilled on {qualified(resource)} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", msg, _details(resource, name))


def invalid(resource: kmock.resource, name: str, cause: str) -> ApiError:
    """422 Invalid, e.g. a failed JSON-patch ``test`` op or a forbidden finalizer."""
    msg = "the server rejected our request due to an error in our request"
    details = {**_details(resource, name), "causes": [{"message": cause}]}
    return ApiError(422, "Invalid", msg, details)


def bad_request(message: str) -> ApiError:
    """400 BadRequest with a free-text message."""
    return ApiError(400, "BadRequest", message, {})


def unsupported_media(content_type: str) -> ApiError:
    """415: e.g. strategic-merge patches on custom resources, which the real server refuses."""
    msg = (
        f"the body of the request was in an unknown format ({content_type}) - accepted media "
        "types include: application/json-patch+json, application/merge-patch+json"
    )
    return ApiError(415, "UnsupportedMediaType", msg, {})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: dicts merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: Obj = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(resource: kmock.resource, name: str, obj: Obj, ops: list[Any]) -> Obj:
    """RFC 6902 JSON patch; a failed ``test`` op (or a bad path) is a 422, as on a real server."""
    try:
        result: Obj = jsonpatch.apply_patch(obj, ops, in_place=False)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as e:
        raise invalid(resource, name, str(e)) from e
    return result


def fill_created(obj: Obj, *, namespace: str | None, rv: int) -> Obj:
    """Server-side metadata of a new object (the caller has checked name/generateName)."""
    meta = obj.setdefault("metadata", {})
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    if not meta.get("name"):
        meta["name"] = generated_name(meta["generateName"])
    if namespace is not None:
        meta["namespace"] = namespace
    meta["uid"] = str(uuid.uuid4())
    meta["resourceVersion"] = str(rv)
    meta["generation"] = 1
    meta["creationTimestamp"] = now_rfc3339()
    return obj


def keep_server_owned(old: Obj, new: Obj) -> Obj:
    """Restore the metadata fields a client may not change (the server silently keeps its own)."""
    old_meta, new_meta = old.get("metadata", {}), new.setdefault("metadata", {})
    for key in SERVER_OWNED_META:
        if key in old_meta:
            new_meta[key] = old_meta[key]
        else:
            new_meta.pop(key, None)
    return new


def added_finalizers(old: Obj, new: Obj) -> list[str]:
    """Finalizers in ``new`` that ``old`` did not have."""
    before = set(old.get("metadata", {}).get("finalizers", []))
    return sorted(set(new.get("metadata", {}).get("finalizers", [])) - before)


def spec_changed(old: Obj, new: Obj) -> bool:
    """Whether anything outside ``metadata`` and ``status`` changed: that bumps ``generation``."""

    def payload(obj: Obj) -> Obj:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

    return payload(old) != payload(new)


def dig(obj: Mapping[str, Any] | None, path: str) -> Any:
    """The value at a dotted path, or None when a step is missing.

    Digits index lists: ``dig(pod, "status.containerStatuses.0.state.waiting.reason")``.
    """
    value: Any = obj
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)] if int(part) < len(value) else None
        elif isinstance(value, Mapping):
            value = value.get(part)
        else:
            return None
    return value


_SET_EXPR = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    # Commas separate requirements, except inside the parentheses of set expressions.
    return [part for part in re.split(r",(?![^()]*\))", selector) if part.strip()]


def _label_requirement(labels: Mapping[str, str], req: str) -> bool:
    if match := _SET_EXPR.match(req):
        key, op, raw_values = match.groups()
        values = {v.strip() for v in raw_values.split(",")}
        return (labels.get(key) in values) if op == "in" else (labels.get(key) not in values)
    for op in ("!=", "==", "="):
        if op in req:
            key, value = (s.strip() for s in req.split(op, 1))
            return (labels.get(key) == value) == (op != "!=")
    req = req.strip()
    return req[1:] not in labels if req.startswith("!") else req in labels


def matches_labels(labels: Mapping[str, str] | None, selector: str | None) -> bool:
    """The label-selector grammar of the API (``=``, ``==``, ``!=``, ``in``, ``notin``, exists)."""
    return all(_label_requirement(labels or {}, req) for req in _split_selector(selector or ""))


def matches_fields(obj: Mapping[str, Any], selector: str | None) -> bool:
    """Field selectors as equality/inequality on dotted paths (``involvedObject.name=x``)."""
    for req in _split_selector(selector or ""):
        op = "!=" if "!=" in req else "==" if "==" in req else "="
        path, value = (s.strip() for s in req.split(op, 1))
        actual = dig(obj, path)
        if (str(actual) == value if actual is not None else value == "") != (op != "!="):
            return False
    return True
