"""The CRD on a real API server: it is accepted and served, and its rules really reject.

The unit tests evaluate the CEL rules with a Python CEL library; only a real API server shows
that Kubernetes compiles them and says what they say. Everything is created with dryRun=All
except the renkuId transition rule, which needs an object to exist.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import CRD, GENV, Cluster, api_message
from tests.e2e.genv import CRD_NAME, CRD_PATH, CrdInstall, genv
from tests.e2e.options import ROOT

CORPUS = ROOT / "tests" / "corpus"
EXAMPLES = ROOT / "examples"
# Schema cases the API server words its own way: only the status and the field are checked.
SCHEMA_CASES = {
    "missing-image",
    "description-too-long",
    "deletion-policy-lower-case",
    "renku-id-lower-case",
    "args-empty-list",
}
# Numeric bounds: the corpus and the API server say "less than or equal to N" alike.
_BOUND = re.compile(r"^(less|greater) than or equal to -?\d+$")
RENKU_ID = "01JDXK3Q8R5ZV7N2M4W6Y8B0C1"
OTHER_RENKU_ID = "01JDXK3Q8R5ZV7N2M4W6Y8B0C2"


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _invalid_params() -> list[Any]:
    """The corpus cases the CRD decides: CEL-marked, numeric bounds, and SCHEMA_CASES."""
    if not (CORPUS / "invalid").is_dir():
        return [
            pytest.param(
                None,
                False,
                id="no-corpus",
                marks=pytest.mark.skip(reason="no tests/corpus/invalid"),
            )
        ]
    from tests.corpus.cases import invalid_cases

    params = []
    for case in invalid_cases():
        bounds = bool(case.expects) and all(_BOUND.match(e.substring) for e in case.expects)
        if case.cel or bounds:
            params.append(pytest.param(case, True, id=case.name))
        elif case.name in SCHEMA_CASES:
            params.append(pytest.param(case, False, id=case.name))
    return params


def _valid_paths() -> list[Path]:
    """Every GlobalEnvironment example, and the corpus' tricky valid manifests."""
    examples = [
        p for p in sorted(EXAMPLES.glob("*.yaml")) if _load(p).get("kind") == "GlobalEnvironment"
    ]
    return examples + sorted((CORPUS / "valid").glob("*.yaml"))


def in_namespace(document: Any, namespace: str) -> Any:
    """The manifest moved to the run's namespace."""
    moved = copy.deepcopy(document)
    moved.setdefault("metadata", {})["namespace"] = namespace
    return moved


def test_the_crd_is_established_with_its_rules(cluster: Cluster, crd: CrdInstall) -> None:
    served = cluster.get(CRD, None, CRD_NAME)
    assert served is not None
    conditions = {c["type"]: c["status"] for c in served["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    assert conditions.get("NamesAccepted") == "True", conditions
    assert served["status"]["acceptedNames"]["shortNames"] == ["genv"]
    # The API server kept the CEL rules (an old or restricted server would drop or refuse them).
    declared = _load(CRD_PATH)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    kept = served["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert kept["x-kubernetes-validations"] == declared["x-kubernetes-validations"]
    spec_rules = kept["properties"]["spec"]["x-kubernetes-validations"]
    assert spec_rules == declared["properties"]["spec"]["x-kubernetes-validations"]


@pytest.mark.parametrize("path", _valid_paths(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_api_server_accepts_valid_manifests(
    cluster: Cluster, namespace: str, path: Path
) -> None:
    document = in_namespace(_load(path), namespace)
    # Strict: an unknown field would be an error here, not silently pruned.
    created = cluster.create(document, dry_run=True, strict=True)
    assert created["spec"]["image"] == document["spec"]["image"]
    assert cluster.get(GENV, namespace, document["metadata"]["name"]) is None  # dry run only


def cel_messages(location: str) -> list[str]:
    """The messages of the CRD's CEL rules at a corpus location ("(root)", "spec.image")."""
    node = _load(CRD_PATH)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in [] if location == "(root)" else location.split("."):
        node = node["properties"][part]
    rules = node.get("x-kubernetes-validations", []) + node.get("items", {}).get(
        "x-kubernetes-validations", []
    )
    return [rule["message"] for rule in rules]


@pytest.mark.parametrize(("case", "cel_or_bounds"), _invalid_params())
def test_the_api_server_rejects_invalid_manifests(
    cluster: Cluster, namespace: str, case: Any, cel_or_bounds: bool
) -> None:
    document = in_namespace(case.document(), namespace)

    with pytest.raises(ApiException) as caught:
        cluster.create(document, dry_run=True)

    message = api_message(caught.value)
    assert caught.value.status == 422, message
    for expect in case.expects:
        assert expect.field in message, f"{expect.field} not named in: {message}"
    # A CEL-decided case is refused by the CRD's own rule, in that rule's words (the corpus'
    # words are `validate`'s, which names finer causes, e.g. a URL scheme in an image).
    for location in case.cel:
        declared = cel_messages(location)
        assert declared, f"the CRD has no CEL rule at {location}"
        assert any(rule in message for rule in declared), f"none of {declared} in: {message}"
    if cel_or_bounds and not case.cel:
        for expect in case.expects:  # numeric bounds: both say "less than or equal to N"
            assert expect.substring in message, f"{expect.substring!r} not in: {message}"


def test_renku_id_cannot_change_once_set(cluster: Cluster, namespace: str) -> None:
    name = "renku-id-rule"
    # Suspended: should an operator watch this namespace, it writes nothing to Renku.
    cluster.create(genv(name, namespace, renkuId=RENKU_ID, suspend=True))
    try:
        # Other changes pass: the rule does not simply refuse every update.
        cluster.patch(GENV, namespace, name, {"spec": {"port": 8888}})
        for change in ({"renkuId": OTHER_RENKU_ID}, {"renkuId": None}):
            with pytest.raises(ApiException) as caught:
                cluster.patch(GENV, namespace, name, {"spec": change})
            message = api_message(caught.value)
            assert caught.value.status == 422, message
            assert "renkuId cannot be changed or removed once set" in message
        stored = cluster.get(GENV, namespace, name)
        assert stored is not None
        assert (stored["spec"]["renkuId"], stored["spec"]["port"]) == (RENKU_ID, 8888)
    finally:
        cluster.delete(GENV, namespace, name)
