"""`renku-env-operator bump` reading the objects from the API server, as an admin's CI runs it:
the installed console script, a kubeconfig (and a context), GET per object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kmock

from tests.support.console import command_env, needs_command, run_cli
from tests.support.kube import GENV, Kube

pytestmark = needs_command
NAMESPACE = "renku"
OLD = "ghcr.io/org/python:1.2.0"
TESTED = "ghcr.io/org/python:1.3.0"


async def bump(kube: Kube, *args: str) -> tuple[int, str, str]:
    env = command_env() | {"KUBECONFIG": str(kube.kubeconfig_path)}
    return await run_cli(env, "bump", *args)


def manifest(name: str, image: str) -> str:
    return (
        "apiVersion: renku.io/v1alpha1\n"
        "kind: GlobalEnvironment\n"
        f"metadata:\n  name: {name}  # keep\n  namespace: {NAMESPACE}\n"
        f'spec:\n  name: {name}\n  image: "{image}"\n'
    )


async def deploy(kube: Kube, name: str, image: str, update_test: dict[str, Any] | None) -> None:
    body = {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"name": name, "image": image},
    }
    await kube.create(body)
    image_status: dict[str, Any] = {"reference": image, "latestVersion": "1.3.0"}
    if update_test is not None:
        image_status["updateTest"] = update_test
    await kube.patch(
        GENV, NAMESPACE, name, {"status": {"image": image_status}}, subresource="status"
    )


async def test_bump_reads_the_cluster_and_writes_only_the_tested_tag(
    kube: Kube, tmp_path: Path
) -> None:
    passed = {"result": "Passed", "image": TESTED, "finishedAt": "2026-12-01T10:00:00Z"}
    running = {"result": "Running", "image": TESTED}
    await deploy(kube, "tested", OLD, passed)
    await deploy(kube, "testing", OLD, running)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tested.yaml").write_text(manifest("tested", OLD))
    (repo / "testing.yaml").write_text(manifest("testing", OLD))
    (repo / "absent.yaml").write_text(manifest("absent", OLD))

    check, out, err = await bump(kube, "--check", "--context", "kmock", str(repo))
    assert (check, err) == (1, ""), out
    assert (repo / "tested.yaml").read_text() == manifest("tested", OLD)

    code, out, err = await bump(kube, "-o", "json", str(repo))

    assert (code, err) == (0, ""), out
    report = json.loads(out)
    assert {r["name"]: r["reason"] for r in report["results"]} == {
        "absent": "NotFound",
        "tested": "UpdateTestPassed",
        "testing": "UpdateTestRunning",
    }
    assert (repo / "tested.yaml").read_text() == manifest("tested", TESTED)
    assert (repo / "testing.yaml").read_text() == manifest("testing", OLD)
    gets = list(kube.emulator[kmock.method.GET, kmock.resource(GENV)])
    assert sorted(str(r.name) for r in gets) == sorted(["tested", "testing", "absent"] * 2)


async def test_an_object_the_cluster_will_not_show_is_skipped_and_the_run_exits_2(
    kube: Kube, tmp_path: Path
) -> None:
    await deploy(kube, "tested", OLD, {"result": "Passed", "image": TESTED})
    kube.emulator["get", kmock.resource(GENV), kmock.name("hidden")] << 403
    (tmp_path / "tested.yaml").write_text(manifest("tested", OLD))
    (tmp_path / "hidden.yaml").write_text(manifest("hidden", OLD))

    code, out, err = await bump(kube, str(tmp_path))

    assert code == 2, out + err
    hidden = next(line for line in out.splitlines() if "renku/hidden" in line)
    assert "skipped (LookupFailed): cannot read it from http://" in hidden
    # The readable one is still bumped: one forbidden namespace does not cost the others.
    assert (tmp_path / "tested.yaml").read_text() == manifest("tested", TESTED)


async def test_a_missing_context_is_a_usage_error(kube: Kube, tmp_path: Path) -> None:
    (tmp_path / "tested.yaml").write_text(manifest("tested", OLD))

    code, out, err = await bump(kube, "--context", "nope", str(tmp_path))

    assert (code, out) == (2, "")
    assert err.startswith("error: no usable Kubernetes configuration: ")
