"""`renku-env-operator bump`: the rewrite (golden files, byte for byte), the skip reasons, exit
codes and -o json, with the objects read from `kubectl get genv -A -o json` output.

tests/data/bump/in holds what an admin's repository holds (comments, anchors, flow style, CRLF,
several documents, a List, JSON, a Helm template, a Kustomize patch); tests/data/bump/out the
same files after `bump`. Files that must not change have no copy in out/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from renku_env_operator.cli import main
from renku_env_operator.domain import bump

DATA = Path(__file__).parents[1] / "data" / "bump"
PY = "ghcr.io/org/python"
R = "ghcr.io/org/r"
OLD_DIGEST = "sha256:" + "a" * 64
TESTED_DIGEST = "sha256:" + "b" * 64
TESTED_AT = "2026-12-01T10:00:00Z"
PASSED = {
    "result": "Passed",
    "reason": "Passed",
    "image": f"{PY}:1.3.0@{TESTED_DIGEST}",
    "finishedAt": TESTED_AT,
}
FAILED = {
    "result": "Failed",
    "reason": "CrashedOnStart",
    "message": "The container exited with code 1.",
    "image": f"{R}:4.1.0",
}


def genv(name: str, image: str, update_test: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"image": {"reference": image}}
    if update_test is not None:
        tag = update_test["image"].split("@")[0].rsplit(":", 1)[1]
        status["image"] |= {"latestVersion": tag, "updateTest": update_test}
    return {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": {"name": name, "namespace": "renku"},
        "spec": {"image": image},
        "status": status,
    }


# What `kubectl get genv -A -o json` answers for the objects of tests/data/bump/in.
CLUSTER = [
    genv("comments", f"{PY}:1.2.0", PASSED),
    genv("shared-a", f"{PY}:1.2.0", PASSED),
    genv("shared-b", f"{PY}:1.2.0", PASSED),
    genv("anchored", f"{PY}:1.2.0", PASSED),
    genv("flow", f"{PY}:1.2.0", PASSED),
    genv("crlf", f"{PY}:1.2.0", PASSED),
    genv("multi-bumped", f"{PY}:1.2.0", PASSED),
    genv("multi-current", f"{PY}:1.3.0", PASSED),
    genv("multi-failed", f"{R}:4.0.0", FAILED),
    genv("list-first", f"{PY}:1.2.0", PASSED),
    genv("list-second", f"{R}:4.0.0", FAILED),
    genv("pinned", f"{PY}:1.2.0@{OLD_DIGEST}", PASSED),
    genv("kustomized", f"{PY}:1.2.0", PASSED),
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "in", tmp_path / "repo")
    return tmp_path / "repo"


@pytest.fixture
def status_file(tmp_path: Path) -> Path:
    path = tmp_path / "genv.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": CLUSTER}))
    return path


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["bump", *args], catch_exceptions=False)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_rewrite_changes_only_the_image_scalars_byte_for_byte(
    repo: Path, status_file: Path
) -> None:
    before = files(repo)

    result = run("--from-status", str(status_file), str(repo))

    assert result.exit_code == 0, result.output
    after = files(repo)
    expected = before | files(DATA / "out")
    assert after.keys() == expected.keys()
    for name in sorted(after):
        assert after[name] == expected[name], name
    assert after["crlf.yaml"].count(b"\r\n") == before["crlf.yaml"].count(b"\r\n") == 10
    changed = {n for n in after if after[n] != before[n]}
    assert changed == {
        "comments.yaml",
        "anchors.yaml",
        "flow.yaml",
        "crlf.yaml",
        "multi.yaml",
        "list.yaml",
        "pinned.json",
    }
    assert result.output.splitlines()[-1] == (
        "15 GlobalEnvironment(s) checked, 7 bumped, 1 up to date, 7 skipped"
    )


def test_it_says_what_it_changed_and_why(repo: Path, status_file: Path) -> None:
    result = run("--from-status", str(status_file), str(repo / "comments.yaml"))

    assert result.output.splitlines() == [
        f"{repo}/comments.yaml: document 1 (GlobalEnvironment renku/comments): bumped "
        f"{PY}:1.2.0 -> {PY}:1.3.0 (update test of {PY}:1.3.0@{TESTED_DIGEST} passed at "
        f"{TESTED_AT})",
        "1 GlobalEnvironment(s) checked, 1 bumped, 0 up to date, 0 skipped",
    ]


def test_skips_say_why_and_leave_the_files_alone(repo: Path, status_file: Path) -> None:
    result = run("--from-status", str(status_file), "-o", "json", str(repo))

    report = json.loads(result.output)
    skipped = {
        (r["name"], r["item"]): (r["reason"], r["message"])
        for r in report["results"]
        if r["action"] == "skip"
    }
    assert {k: v[0] for k, v in skipped.items()} == {
        ("shared-a", 0): "YamlAlias",
        ("shared-b", 1): "YamlAlias",
        ("multi-failed", None): "UpdateTestFailed",
        ("list-second", 1): "UpdateTestFailed",
        ("templated", None): "Templated",
        ("kustomized", None): "KustomizePatch",  # the base and the patch
    }
    assert skipped[("shared-a", 0)][1] == (
        "spec.image (line 10) is an anchor used elsewhere: edit it by hand"
    )
    assert skipped[("shared-b", 1)][1] == "spec.image is a YAML alias of line 10: edit it by hand"
    assert skipped[("multi-failed", None)][1] == (
        f"the update test of {R}:4.1.0 failed (CrashedOnStart): The container exited with code 1."
    )
    assert skipped[("templated", None)][1].startswith("template expression ({{ ... }}) on line 6")
    kustomized = [r for r in report["results"] if r["name"] == "kustomized"]
    assert sorted(r["message"] for r in kustomized) == [
        f"a patch of {repo}/kustomize/kustomization.yaml: bump edits base manifests only",
        f"spec.image is patched in {repo}/kustomize/kustomization.yaml: change it there",
    ]
    assert (report["skipped"], report["bumps"], report["current"]) == (7, 7, 1)
    assert report["errors"] == []
    pinned = next(r for r in report["results"] if r["name"] == "pinned")
    assert pinned | {"source": ""} == {
        "source": "",
        "document": 1,
        "item": None,
        "namespace": "renku",
        "name": "pinned",
        "action": "bump",
        "reason": "UpdateTestPassed",
        "message": f"update test of {PY}:1.3.0@{TESTED_DIGEST} passed at {TESTED_AT}",
        "image": f"{PY}:1.2.0@{OLD_DIGEST}",
        "new_image": f"{PY}:1.3.0@{TESTED_DIGEST}",
        "tested_image": f"{PY}:1.3.0@{TESTED_DIGEST}",
        "tested_at": TESTED_AT,
    }
    assert sorted(Path(p).name for p in report["written"]) == [
        "anchors.yaml",
        "comments.yaml",
        "crlf.yaml",
        "flow.yaml",
        "list.yaml",
        "multi.yaml",
        "pinned.json",
    ]


def test_check_changes_nothing_and_exits_1_when_a_bump_is_available(
    repo: Path, status_file: Path
) -> None:
    before = files(repo)

    available = run("--check", "--from-status", str(status_file), str(repo))
    none = run("--check", "--from-status", str(status_file), str(repo / "templated.yaml"))

    assert available.exit_code == 1, available.output
    assert "would bump" in available.output
    assert available.output.splitlines()[-1] == (
        "15 GlobalEnvironment(s) checked, 7 bump(s) available, 1 up to date, 7 skipped"
    )
    assert files(repo) == before
    assert none.exit_code == 0, none.output
    # Once bumped, the same check finds nothing (the cluster has not synced: skipped as such).
    assert run("--from-status", str(status_file), str(repo / "list.yaml")).exit_code == 0
    again = run("--check", "--from-status", str(status_file), str(repo / "list.yaml"))
    assert again.exit_code == 0, again.output
    assert "skipped (OutOfSync)" in again.output


def test_usage_errors_exit_2(repo: Path, tmp_path: Path) -> None:
    missing = run("--from-status", str(tmp_path / "nope.json"), str(repo))
    assert missing.exit_code == 2
    assert "error: cannot read" in missing.output
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    assert run("--from-status", str(bad), str(repo)).exit_code == 2
    bad.write_text("")  # an empty file is not "no objects": it is the wrong file
    assert run("--from-status", str(bad), str(repo)).exit_code == 2
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"kind": "List", "items": CLUSTER}))
    no_path = run("--from-status", str(good), str(repo / "absent.yaml"))
    assert no_path.exit_code == 2
    assert "absent.yaml: no such file or directory" in no_path.output


def test_manifests_without_a_namespace_use_the_namespace_flag(
    tmp_path: Path, status_file: Path
) -> None:
    manifest = tmp_path / "env.yaml"
    text = "apiVersion: renku.io/v1alpha1\nkind: GlobalEnvironment\nmetadata:\n  name: comments\nspec:\n  image: ghcr.io/org/python:1.2.0\n"
    manifest.write_text(text)

    without = run("--check", "--from-status", str(status_file), str(manifest))
    with_flag = run("--from-status", str(status_file), "-n", "renku", str(manifest))

    assert "skipped (NoNamespace)" in without.output
    assert without.exit_code == 0
    assert with_flag.exit_code == 0, with_flag.output
    assert manifest.read_text() == text.replace(":1.2.0", ":1.3.0")


# -- the decision, reason by reason ----------------------------------------------------------


def obj(image: str, status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "namespace": "renku"},
        "spec": {"image": image},
        "status": status,
    }


IMG = f"{PY}:1.2.0"


@pytest.mark.parametrize(
    ("file_image", "found", "reason"),
    [
        (IMG, None, "NotFound"),
        (IMG, obj(f"{PY}:1.1.0", {"image": {}}), "OutOfSync"),
        (IMG, obj(IMG, None), "StatusUnreadable"),
        (IMG, obj(IMG, {"image": "not a mapping"}), "StatusUnreadable"),
        (IMG, obj(IMG, {"image": {"latestVersion": "1.3.0"}}), "NoUpdateTest"),
        (
            IMG,
            obj(IMG, {"image": {"latestVersion": "1.3.0", "updateTest": {"result": "Disabled"}}}),
            "NoUpdateTest",
        ),
        (
            IMG,
            obj(IMG, {"image": {"updateTest": {"result": "Running", "image": f"{PY}:1.3.0"}}}),
            "UpdateTestRunning",
        ),
        (
            IMG,
            obj(IMG, {"image": {"updateTest": {"result": "Failed", "image": f"{PY}:1.3.0"}}}),
            "UpdateTestFailed",
        ),
        (
            f"{IMG}@{OLD_DIGEST}",
            obj(
                f"{IMG}@{OLD_DIGEST}",
                {"image": {"updateTest": {"result": "Passed", "image": f"{PY}:1.3.0"}}},
            ),
            "NoTestedDigest",
        ),
        (
            IMG,
            obj(IMG, {"image": {"updateTest": {"result": "Passed", "image": f"{R}:1.3.0"}}}),
            "StatusUnreadable",
        ),
        (IMG, obj(IMG, {"image": {}}), "UpToDate"),
        (
            f"{PY}:1.4.0",
            obj(
                f"{PY}:1.4.0",
                {"image": {"updateTest": {"result": "Passed", "image": f"{PY}:1.3.0"}}},
            ),
            "UpToDate",
        ),
    ],
)
def test_every_case_but_a_passed_test_of_a_newer_tag_proposes_nothing(
    file_image: str, found: dict[str, Any] | None, reason: str
) -> None:
    decision = bump.decide(file_image, found)

    assert decision.reason == reason, decision.message
    assert decision.new_image is None
    assert decision.action == ("current" if reason == "UpToDate" else "skip")


def test_the_file_keeps_its_own_spelling_of_the_repository() -> None:
    found = obj(
        "python:3.12.1",
        {"image": {"updateTest": {**PASSED, "image": "docker.io/library/python:3.12.4"}}},
    )

    decision = bump.decide("python:3.12.1", found)

    assert (decision.action, decision.new_image) == ("bump", "python:3.12.4")


def test_kubeconfig_from_the_environment_wins_over_a_pods_service_account(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A CI runner inside a cluster has a ServiceAccount; `bump` must use the admin's
    $KUBECONFIG, not the runner's own rights."""
    from kubernetes import config as kube_config

    from renku_env_operator.cli.bump import cluster_lookup
    from tests.support.kube import write_kubeconfig

    def in_cluster(**_: Any) -> None:
        raise AssertionError("the pod's ServiceAccount was used although $KUBECONFIG is set")

    used: list[str | None] = []
    load = kube_config.load_kube_config

    def from_file(path: str | None = None, *args: Any, **kwargs: Any) -> None:
        used.append(path)
        load(path, *args, **kwargs)

    monkeypatch.setattr(kube_config, "load_incluster_config", in_cluster)
    monkeypatch.setattr(kube_config, "load_kube_config", from_file)
    path = write_kubeconfig(tmp_path / "admin.kubeconfig", "https://api.example.invalid")
    monkeypatch.setenv("KUBECONFIG", str(path))

    cluster_lookup(None, None)

    assert used == [str(path)]
