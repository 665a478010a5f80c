"""The CustomResourceDefinition: generated from the models, committed, and acceptable to Kubernetes.

The committed file must be exactly what `renku-env-operator crd` prints; the schema must be
structural (the API server refuses anything else), documented (kubectl explain prints it) and
free of what GitOps tools report as drift (defaults).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel

from renku_env_operator.api import rules
from renku_env_operator.api.spec import GlobalEnvironmentSpec, ImagePolicySpec, SmokeTestSpec
from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.cli import main

CRD_FILE = Path(__file__).parents[2] / "crds" / "globalenvironments.renku.io.yaml"
REGENERATE = f".venv/bin/renku-env-operator crd > {CRD_FILE.relative_to(CRD_FILE.parents[1])}"
KUBE_VERSION = "1.35.0"
FORBIDDEN = {"default", "$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "const", "uniqueItems"}


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    (only,) = crd["spec"]["versions"]
    assert isinstance(only, dict)
    return only


@pytest.fixture(scope="module")
def schema(version: dict[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its path; property names are never mistaken for keywords."""
    yield path or "(root)", node
    for key, child in node.get("properties", {}).items():
        yield from nodes(child, f"{path}.{key}" if path else key)
    if "items" in node:
        yield from nodes(node["items"], f"{path}[*]")


def test_committed_crd_is_what_the_command_prints() -> None:
    result = CliRunner().invoke(main, ["crd"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.encode() == CRD_FILE.read_bytes(), (
        f"{CRD_FILE.name} is stale: regenerate it with `{REGENERATE}` (and copy it to the chart)"
    )


def test_kubernetes_accepts_the_crd_object(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


def test_every_field_is_documented(schema: dict[str, Any]) -> None:
    undocumented = [
        path
        for path, node in nodes(schema)
        if path != "(root)"
        and (not path.endswith("[*]") or node["type"] == "object")
        and not node.get("description", "").strip()
    ]
    assert "metadata" in undocumented  # documented by Kubernetes itself
    assert undocumented == ["metadata"]
    for path, node in nodes(schema):
        description = node.get("description", "")
        assert description == " ".join(description.split()), f"{path}: unnormalised whitespace"


def test_no_keyword_the_api_server_rejects_or_gitops_reports_as_drift(
    schema: dict[str, Any],
) -> None:
    for path, node in nodes(schema):
        assert not FORBIDDEN & set(node), f"{path}: {sorted(FORBIDDEN & set(node))}"
        assert node.get("additionalProperties") is not False, path
        assert "x-kubernetes-preserve-unknown-fields" not in node, path


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
        if node["type"] == "array":
            assert "items" in node, path
        if node["type"] == "object" and path != "metadata":
            assert node.get("properties"), f"{path}: an object without properties is pruned"
        for required in node.get("required", []):
            assert required in node["properties"], f"{path}: required {required} undeclared"


def test_strings_and_lists_with_cel_rules_are_bounded(schema: dict[str, Any]) -> None:
    # The API server estimates each rule's cost from maxLength/maxItems and refuses unbounded ones.
    for path, node in nodes(schema):
        if "x-kubernetes-validations" not in node or node["type"] == "object":
            continue
        if node["type"] == "string":
            assert "maxLength" in node, path
        else:
            assert "maxItems" in node, path
            assert "maxLength" in node["items"], path


def test_printer_columns(version: dict[str, Any]) -> None:
    ready = '.status.conditions[?(@.type=="Ready")]'
    assert version["additionalPrinterColumns"] == [
        {"name": "Ready", "type": "string", "jsonPath": f"{ready}.status"},
        {"name": "Reason", "type": "string", "jsonPath": f"{ready}.reason"},
        {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
        {"name": "Renku ID", "type": "string", "jsonPath": ".status.renkuId", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def test_names_version_and_status_subresource(crd: dict[str, Any], version: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "globalenvironments.renku.io"
    assert (spec["group"], spec["scope"]) == ("renku.io", "Namespaced")
    assert spec["names"] == {
        "kind": "GlobalEnvironment",
        "listKind": "GlobalEnvironmentList",
        "plural": "globalenvironments",
        "singular": "globalenvironment",
        "shortNames": ["genv"],
        "categories": ["renku"],
    }
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_conditions_are_a_list_map_keyed_by_type(schema: dict[str, Any]) -> None:
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    # A list-map key must be required (or defaulted, which the CRD never does).
    assert "type" in conditions["items"]["required"]


def _aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _required(model: type[BaseModel]) -> set[str]:
    return {
        field.alias or name for name, field in model.model_fields.items() if field.is_required()
    }


@pytest.mark.parametrize(
    ("path", "model"),
    [
        (("spec",), GlobalEnvironmentSpec),
        (("spec", "smokeTest"), SmokeTestSpec),
        (("spec", "imagePolicy"), ImagePolicySpec),
        (("status",), GlobalEnvironmentStatus),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else "",
)
def test_field_names_are_the_models_aliases(
    schema: dict[str, Any], path: tuple[str, ...], model: type[BaseModel]
) -> None:
    node = schema
    for part in path:
        node = node["properties"][part]
    assert set(node["properties"]) == _aliases(model)
    assert set(node.get("required", [])) == _required(model)
    assert all(name[0].islower() and "_" not in name for name in node["properties"])


def test_every_rule_in_rules_py_reaches_the_crd(schema: dict[str, Any]) -> None:
    in_crd = [
        (rule["rule"], rule["message"])
        for _, node in nodes(schema)
        for rule in node.get("x-kubernetes-validations", [])
    ]
    defined = {(r.cel, r.message) for r in vars(rules).values() if isinstance(r, rules.Rule)}
    assert set(in_crd) == defined
    for _, node in nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            assert set(rule) == {"rule", "message", "reason"}
