"""The GlobalEnvironmentClaim CRD: generated from its models, committed, acceptable to Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from renku_env_operator.api import claim
from renku_env_operator.api.claim import GlobalEnvironmentClaimSpec
from renku_env_operator.cli import main
from tests.unit.test_crd import FORBIDDEN, KUBE_VERSION, nodes

CRD_FILE = Path(__file__).parents[2] / "crds" / "globalenvironmentclaims.renku.io.yaml"
REGENERATE = (
    ".venv/bin/renku-env-operator crd --claims > crds/globalenvironmentclaims.renku.io.yaml"
)


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    root: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return root


def test_committed_crd_is_what_the_command_prints() -> None:
    result = CliRunner().invoke(main, ["crd", "--claims"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.encode() == CRD_FILE.read_bytes(), (
        f"{CRD_FILE.name} is stale: regenerate it with `{REGENERATE}` (or `make crds`)"
    )


def test_kubernetes_accepts_the_crd_object(crd: dict[str, Any]) -> None:
    kubernetes_validate.validate(crd, KUBE_VERSION, strict=True)


def test_names_and_scope(crd: dict[str, Any]) -> None:
    assert crd["metadata"]["name"] == "globalenvironmentclaims.renku.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "GlobalEnvironmentClaim"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert "subresources" not in version  # no status: the spec is the record


def test_schema_is_structural_documented_and_free_of_defaults(schema: dict[str, Any]) -> None:
    for path, node in nodes(schema):
        assert not FORBIDDEN & set(node), f"{path}: {sorted(FORBIDDEN & set(node))}"
        assert node.get("type") in {"object", "array", "string", "integer", "boolean"}, path
        if node["type"] == "object" and path != "metadata":
            assert node.get("properties"), f"{path}: an object without properties is pruned"
        if path not in ("(root)", "metadata") and not path.endswith("[*]"):
            assert node.get("description", "").strip(), f"{path} is undocumented"


def test_the_schema_holds_what_the_operator_stores(schema: dict[str, Any]) -> None:
    spec = schema["properties"]["spec"]["properties"]
    assert set(spec) == {f.alias for f in GlobalEnvironmentClaimSpec.model_fields.values()}
    assert spec["renkuId"]["pattern"] == "^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
    attempt = spec["createAttempt"]["properties"]
    assert set(attempt["environment"]["properties"]) >= {"containerImage", "port", "command"}
    assert set(spec["lastKnownGood"]["properties"]) >= {"fingerprint", "environment"}


@pytest.mark.parametrize("renku_id", ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"])
def test_claim_names_are_valid_object_names(renku_id: str) -> None:
    name = claim.id_claim_name(renku_id)
    assert name == f"env-{renku_id.lower()}"
    assert len(name) <= 63
    assert name.replace("-", "").isalnum()
    assert name.islower()
