"""`renku-env-operator bump` against a real API server: it reads the objects (and the status
the operator wrote through the status subresource) with the suite's kubeconfig, and writes
only the tested tag into the manifest file.

No operator runs here: the status an operator would write after a passed update test is
written directly, so the test needs no registry with newer tags.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from renku_env_operator.cli import main
from tests.e2e.cluster import GENV, Cluster
from tests.e2e.genv import genv
from tests.e2e.options import E2EOptions

OLD = "ghcr.io/org/python:1.2.0"
TESTED = "ghcr.io/org/python:1.3.0"
TESTED_AT = "2026-12-01T10:00:00Z"


def manifest_text(name: str, namespace: str, image: str) -> str:
    return (
        "# from the GitOps repository\n"
        "apiVersion: renku.io/v1alpha1\n"
        "kind: GlobalEnvironment\n"
        f"metadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  image: '{image}'  # bumped by CI\n  smokeTest: {{enabled: false}}\n"
    )


def test_bump_reads_the_status_from_the_cluster_and_rewrites_the_file(
    cluster: Cluster, namespace: str, e2e_options: E2EOptions, tmp_path: Path
) -> None:
    assert e2e_options.kubeconfig is not None
    name = "bump-tested"
    cluster.create(genv(name, namespace, image=OLD, smokeTest={"enabled": False}))
    status = {
        "image": {
            "reference": OLD,
            "latestVersion": "1.3.0",
            "updateTest": {"result": "Passed", "image": TESTED, "finishedAt": TESTED_AT},
        }
    }
    cluster.dynamic.patch(
        cluster.resource(GENV).status,
        body={"status": status},
        name=name,
        namespace=namespace,
        content_type="application/merge-patch+json",
    )
    stored = cluster.get(GENV, namespace, name)
    assert stored is not None
    assert stored["status"]["image"]["updateTest"]["image"] == TESTED
    manifest = tmp_path / f"{name}.yaml"
    manifest.write_text(manifest_text(name, namespace, OLD))
    missing = tmp_path / "bump-absent.yaml"
    missing.write_text(manifest_text("bump-absent", namespace, OLD))
    kubeconfig = str(e2e_options.kubeconfig)

    check = CliRunner().invoke(main, ["bump", "--check", "--kubeconfig", kubeconfig, str(tmp_path)])
    result = CliRunner().invoke(
        main, ["bump", "--kubeconfig", kubeconfig, "-o", "json", str(tmp_path)]
    )

    assert check.exit_code == 1, check.output
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    by_name = {r["name"]: r for r in report["results"]}
    assert by_name["bump-absent"]["reason"] == "NotFound"
    assert by_name[name]["new_image"] == TESTED
    assert by_name[name]["tested_at"] == TESTED_AT
    assert manifest.read_text() == manifest_text(name, namespace, TESTED)
    assert missing.read_text() == manifest_text("bump-absent", namespace, OLD)
