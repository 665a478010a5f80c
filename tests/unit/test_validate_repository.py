"""`renku-env-operator validate` over whole repositories: this one, and a directory mixing
templates, Lists, JSON and mistakes. Run as the installed console script, as CI runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from renku_env_operator.cli.manifests import KubeLoader
from tests.corpus.cases import INVALID_DIR, invalid_cases, valid_files

REPO = Path(__file__).parents[2]
SCRIPT = Path(sys.executable).with_name("renku-env-operator")
IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"


def run_json(*args: str | Path, cwd: Path = REPO) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [SCRIPT, "validate", "-o", "json", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    return done.returncode, json.loads(done.stdout), done.stderr


def test_validate_dot_on_this_repository() -> None:
    code, report, _ = run_json(".")
    assert code == 1
    skipped = {s["source"] for s in report["skipped"]}
    templates = {f"./{p.relative_to(REPO)}" for p in (REPO / "helm").rglob("templates/*.yaml")}
    assert templates
    assert templates <= skipped
    assert all("template expression" in s["reason"] for s in report["skipped"])
    errors = {f["source"] for f in report["findings"] if f["severity"] == "error"}
    # Exactly the invalid corpus is invalid: crds/, examples/, the chart's files/ and the
    # valid corpus pass, and nothing under .venv or .git is read.
    assert errors == {f"./{case.path.relative_to(REPO)}" for case in invalid_cases()}
    assert report["invalid"] == len(invalid_cases())
    assert report["checked"] >= len(invalid_cases()) + len(valid_files())
    assert not any("/." in f["source"] for f in report["findings"])
    assert report["errors"] == []


def test_the_examples_and_the_crds_pass() -> None:
    code, report, _ = run_json("examples", "crds", "helm/renku-env-operator/files")
    assert code == 0, report["findings"]
    assert report["checked"] >= 2
    assert report["skipped"] == []


LIST = f"""apiVersion: v1
kind: List
items:
- apiVersion: renku.io/v1alpha1
  kind: GlobalEnvironment
  metadata: {{name: fine}}
  spec: {{image: "{IMAGE}"}}
- apiVersion: renku.io/v1alpha1
  kind: GlobalEnvironment
  metadata: {{name: wrong-port}}
  spec:
    image: {IMAGE}
    port: 70000
"""
TEMPLATE = """apiVersion: renku.io/v1alpha1
kind: GlobalEnvironment
metadata:
  name: {{ .Release.Name }}
spec:
  image: {{ .Values.image }}
  port: {{ .Values.port }}
"""
JSON_BAD = {
    "apiVersion": "renku.io/v1alpha1",
    "kind": "GlobalEnvironment",
    "metadata": {"name": "from-json"},
    "spec": {"image": IMAGE, "uid": 0},
}


def test_a_directory_with_templates_lists_json_and_mistakes(tmp_path: Path) -> None:
    (tmp_path / "chart" / "templates").mkdir(parents=True)
    (tmp_path / "chart" / "templates" / "env.yaml").write_text(TEMPLATE)
    (tmp_path / "list.yaml").write_text(LIST)
    (tmp_path / "env.json").write_text(json.dumps(JSON_BAD, indent=2))
    (tmp_path / "broken.json").write_text('{"kind": "GlobalEnvironment",\n  "spec": }\n')
    (tmp_path / "values.schema.json").write_text('{"type": "object"}')
    (tmp_path / "broken.yaml").write_text("kind: [\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "hidden.yaml").write_text("kind: [\n")

    code, report, stderr = run_json(tmp_path)

    assert code == 1
    assert report["files"] == 6  # .git is not entered
    assert report["checked"] == 3
    assert [Path(s["source"]).name for s in report["skipped"]] == ["env.yaml"]
    found = {
        (Path(f["source"]).name, f["field"], f["line"], f["column"]) for f in report["findings"]
    }
    assert found == {
        ("broken.json", "(document)", 2, 11),
        ("broken.yaml", "(document)", 2, 1),
        ("env.json", "spec.uid", 9, 5),
        ("list.yaml", "items[1].spec.port", 13, 5),
    }
    assert report["invalid"] == 4
    assert stderr == ""  # JSON mode: notes are in the report


def test_text_mode_notes_skipped_templates_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text(TEMPLATE)
    done = subprocess.run(
        [SCRIPT, "validate", tmp_path], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stderr == (
        f"{tmp_path / 'env.yaml'}: skipped: template expression ({{{{ ... }}}}) on line 4: "
        "validate the rendered output instead, e.g. helm template . | renku-env-operator "
        "validate -\n"
    )
    assert done.stdout == "0 GlobalEnvironment(s) checked, 0 invalid, 0 warning(s); 1 skipped\n"


def test_json_output_is_one_document_even_when_paths_are_missing(tmp_path: Path) -> None:
    code, report, stderr = run_json(tmp_path / "nope", INVALID_DIR / "port-zero.yaml")
    assert code == 2
    assert report["errors"] == [f"{tmp_path / 'nope'}: no such file or directory"]
    assert report["invalid"] == 1
    assert stderr == f"error: {tmp_path / 'nope'}: no such file or directory\n"


def load(text: str) -> Any:
    loader = KubeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@pytest.mark.parametrize(
    ("scalar", "kubectl_reads"),
    [
        ("0o777", 511),  # Go's ParseInt: PyYAML alone reads the string '0o777'
        ("0777", 511),
        ("8_080", 8080),
        ("0x1F90", 8080),
        ("yes", True),
        ("y", True),
        ("On", True),
        ("no", False),
        ("N", False),
        ("off", False),
        ("1e3", 1000.0),  # PyYAML alone: the string '1e3'
        ("1:30", "1:30"),  # YAML 1.1 base 60 (90 in PyYAML): go-yaml keeps the string
        ("2024-01-01", "2024-01-01"),  # no date objects: the value stays text
        ("'yes'", "yes"),
        ("~", None),
        ("8080", 8080),
        ("-5", -5),
        ("3.12", 3.12),
    ],
)
def test_scalars_are_read_as_kubectl_reads_them(scalar: str, kubectl_reads: Any) -> None:
    value = load(f"value: {scalar}\n")["value"]
    assert value == kubectl_reads
    assert type(value) is type(kubectl_reads)


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        ("  port: 0o777", True),
        ("  archived: yes", True),
        ("  stripPathPrefix: on", True),
        ("  description: 1:30", True),
        ("  description: no", False),
        ("  port: 0o200000", False),  # 65536
    ],
)
def test_yaml_1_1_values_that_matter_for_a_global_environment(
    tmp_path: Path, line: str, ok: bool
) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(
        "apiVersion: renku.io/v1alpha1\nkind: GlobalEnvironment\nmetadata:\n  name: e\n"
        f"spec:\n  image: {IMAGE}\n{line}\n"
    )
    code, report, _ = run_json(path)
    assert (code == 0) is ok, report["findings"]


def test_the_pre_commit_hook_runs_the_installed_command_on_yaml_and_json() -> None:
    import re
    import tomllib

    import yaml

    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "renku-env-operator-validate"
    assert hook["language"] == "python"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    command, subcommand = hook["entry"].split()
    assert (command, subcommand) == ("renku-env-operator", "validate")
    assert command in scripts
    pattern = re.compile(hook["files"])
    assert all(pattern.search(n) for n in ("a.yaml", "dir/b.yml", "c.json"))
    assert not any(pattern.search(n) for n in ("notes.txt", "yaml.py", "x.yaml.bak"))
