"""The CustomResourceDefinition, generated from the pydantic models (the one source of truth).

`renku-env-operator crd` prints it; `crds/` and the Helm chart hold copies that a test keeps equal.
pydantic's JSON schema is turned into a structural schema the API server accepts: `$ref`s
inlined, `anyOf [X, null]` collapsed, and titles, defaults and `additionalProperties: false`
dropped (the server prunes unknown fields itself, and defaults in a CRD show up as GitOps drift).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from . import rules
from .spec import GlobalEnvironmentSpec
from .status import GlobalEnvironmentStatus

GROUP = "renku.io"
VERSION = "v1alpha1"
KIND = "GlobalEnvironment"
PLURAL = "globalenvironments"
SINGULAR = "globalenvironment"
SHORT_NAMES = ["genv"]
CATEGORIES = ["renku"]
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

_DROPPED_KEYS = {"title", "default", "additionalProperties"}

_READY = '.status.conditions[?(@.type=="Ready")]'
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status"},
    {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason"},
    {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
    {"name": "Renku ID", "type": "string", "jsonPath": ".status.renkuId", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as a Kubernetes structural schema."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    cleaned: dict[str, Any] = _clean(raw, defs)
    return cleaned


def _clean(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _clean(merged, defs)
    if "anyOf" in node:
        return _clean(_collapse_optional(node), defs)
    out = {k: _clean(v, defs) for k, v in node.items() if k not in _DROPPED_KEYS}
    if isinstance(out.get("description"), str):
        out["description"] = " ".join(out["description"].split())
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def _collapse_optional(node: dict[str, Any]) -> dict[str, Any]:
    """`anyOf [X, null]` -> X: an optional field is simply not required."""
    variants = [v for v in node["anyOf"] if v.get("type") != "null"]
    if len(variants) != 1:
        raise ValueError(f"cannot express a union in a structural schema: {node}")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**variants[0], **rest}


def spec_schema() -> dict[str, Any]:
    schema = structural_schema(GlobalEnvironmentSpec)
    schema["x-kubernetes-validations"] = [rules.RENKU_ID_IMMUTABLE.as_crd()]
    return schema


def openapi_schema() -> dict[str, Any]:
    """The openAPIV3Schema of the served version."""
    return {
        "type": "object",
        "description": (
            "A Renku global session environment managed as code: validated, smoke-tested in a "
            "pod that behaves like a Renku session, then published to Renku's registry."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema(),
            "status": structural_schema(GlobalEnvironmentStatus),
        },
        "x-kubernetes-validations": [rules.NAME_FITS_RENKU.as_crd()],
    }


def build_crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition manifest."""
    return crd_manifest(
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        schema=openapi_schema(),
        printer_columns=PRINTER_COLUMNS,
        short_names=SHORT_NAMES,
        status=True,
    )


def crd_manifest(
    *,
    kind: str,
    plural: str,
    singular: str,
    schema: dict[str, Any],
    printer_columns: list[dict[str, Any]],
    short_names: list[str] | None = None,
    status: bool = False,
) -> dict[str, Any]:
    """A namespaced CRD of this operator's group, one served and stored version."""
    names: dict[str, Any] = {"kind": kind, "listKind": f"{kind}List", "plural": plural}
    names["singular"] = singular
    if short_names:
        names["shortNames"] = short_names
    names["categories"] = CATEGORIES
    version: dict[str, Any] = {"name": VERSION, "served": True, "storage": True}
    if status:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = printer_columns
    version["schema"] = {"openAPIV3Schema": schema}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": names,
            "versions": [version],
        },
    }
