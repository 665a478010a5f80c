"""`renku-env-operator validate` as a CI step: inputs, exit codes, output, and usage errors.

Exit 0: every GlobalEnvironment is valid (warnings allowed); 1: at least one is invalid;
2: the input itself is unusable (no such file, not YAML, no GlobalEnvironment in a named file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from renku_env_operator.cli import main
from renku_env_operator.domain.validation import validate_spec

EXAMPLES = Path(__file__).parents[2] / "examples"
IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"
GOOD = f"""apiVersion: renku.io/v1alpha1
kind: GlobalEnvironment
metadata:
  name: good
spec:
  image: {IMAGE}
"""
CONFIG_MAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: unrelated
data:
  port: "8888"
"""
BAD = f"""apiVersion: renku.io/v1alpha1
kind: GlobalEnvironment
metadata:
  name: bad
  namespace: team-a
spec:
  image: {IMAGE}
  port: "8888"
  workingDirectory: work
"""


def validate(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, ["validate", *args], input=stdin, catch_exceptions=False)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def as_json(result: Result) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_a_valid_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    result = validate(str(write(tmp_path, "good.yaml", GOOD)))
    assert result.exit_code == 0
    assert result.stdout == "1 GlobalEnvironment(s) checked, 0 invalid, 0 warning(s)\n"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # The API server would hold the CEL error back until the type error is fixed; validate does not.
    path = write(tmp_path, "bad.yaml", BAD)
    result = validate("-o", "json", str(path))
    assert result.exit_code == 1
    findings = as_json(result)["findings"]
    assert [(f["field"], f["line"]) for f in findings] == [
        ("spec.port", 8),
        ("spec.workingDirectory", 9),
    ]
    assert {f["object"] for f in findings} == {"GlobalEnvironment team-a/bad"}


def test_multi_document_files_skip_other_kinds_and_count_documents(tmp_path: Path) -> None:
    path = write(tmp_path, "all.yaml", "\n---\n".join([GOOD, CONFIG_MAP, BAD]))
    result = validate("-o", "json", str(path))
    assert result.exit_code == 1
    report = as_json(result)
    assert (report["checked"], report["invalid"]) == (2, 1)
    assert {f["document"] for f in report["findings"]} == {3}
    # Lines count from the top of the file, not of the document.
    lines = path.read_text().splitlines()
    port_line = max(i for i, line in enumerate(lines, start=1) if line == '  port: "8888"')
    assert report["findings"][0]["line"] == port_line


def test_directories_are_searched_recursively_for_yaml(tmp_path: Path) -> None:
    write(tmp_path, "good.yml", GOOD)
    (tmp_path / "nested").mkdir()
    write(tmp_path / "nested", "bad.yaml", BAD)
    write(tmp_path / "nested", "notes.txt", "port: not yaml at all: [")
    write(tmp_path, "configmap.yaml", CONFIG_MAP)
    report = as_json(validate("-o", "json", str(tmp_path)))
    assert (report["checked"], report["invalid"]) == (2, 1)
    assert {Path(f["source"]).name for f in report["findings"]} == {"bad.yaml"}


def test_the_examples_directory_passes() -> None:
    result = validate(str(EXAMPLES))
    assert result.exit_code == 0, result.output
    assert "GlobalEnvironment(s) checked, 0 invalid" in result.stdout
    assert not result.stdout.startswith("0 ")


def test_standard_input(tmp_path: Path) -> None:
    result = validate("-o", "json", "-", stdin=BAD)
    assert result.exit_code == 1
    assert {f["source"] for f in as_json(result)["findings"]} == {"<stdin>"}
    assert validate("-", stdin=GOOD).exit_code == 0


def test_warnings_alone_do_not_fail(tmp_path: Path) -> None:
    text = GOOD + "  mountDirectory: /home/renku\n  workingDirectory: /srv\n"
    result = validate(str(write(tmp_path, "warn.yaml", text)))
    assert result.exit_code == 0
    warning, summary = result.stdout.splitlines()
    assert ": warning: document 1 (GlobalEnvironment good): spec.workingDirectory: " in warning
    assert summary.endswith("0 invalid, 1 warning(s)")


def test_yaml_1_1_booleans_are_read_like_kubectl(tmp_path: Path) -> None:
    text = GOOD + "  stripPathPrefix: on\n  archived: no\n  description: off\n"
    result = validate("-o", "json", str(write(tmp_path, "bools.yaml", text)))
    assert result.exit_code == 1
    (finding,) = as_json(result)["findings"]
    assert finding["field"] == "spec.description"
    assert "got boolean false: quote it" in finding["message"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            GOOD + "  image: python:3.12\n",
            'line 7, column 3: while constructing a mapping: found duplicate key "image"',
        ),
        (GOOD + "\tport: 8888\n", "line 7, column 1:"),
        ("spec: [\n", "line 2, column 1:"),
        (b"\xff\xfe\x00", "cannot read"),
        ("", "no GlobalEnvironment found"),
        (CONFIG_MAP, "no GlobalEnvironment found (expected apiVersion renku.io/v1alpha1"),
        (GOOD.replace("GlobalEnvironment", "GlobalEnviroment"), "no GlobalEnvironment found"),
    ],
    ids=["duplicate-key", "tab", "unclosed", "not-utf8", "empty", "other-kind", "kind-typo"],
)
def test_unusable_input_exits_2(tmp_path: Path, content: str | bytes, said: str) -> None:
    path = write(tmp_path, "input.yaml", content)
    result = validate("-o", "json", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: ")
    assert said in result.stderr
    assert "<unicode string>" not in result.stderr


def test_unusable_standard_input_and_missing_files_exit_2(tmp_path: Path) -> None:
    result = validate("-", stdin=CONFIG_MAP)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: standard input: no GlobalEnvironment found (expected apiVersion "
        "renku.io/v1alpha1, kind GlobalEnvironment)\n",
    )
    missing = tmp_path / "missing.yaml"
    result = validate(str(missing))
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {missing}: no such file or directory\n",
    )


def test_usage_errors_exit_2() -> None:
    assert validate().exit_code == 2
    assert validate("-o", "xml", str(EXAMPLES)).exit_code == 2


def test_help_documents_the_exit_codes() -> None:
    result = validate("--help")
    assert result.exit_code == 0
    assert "Exit 0 when all are valid, 1 when any is invalid, 2 on usage errors." in result.stdout


def test_the_operator_refuses_python_field_names_too() -> None:
    # The API server prunes or refuses `default_url`; the operator must not read it either.
    spec, problems = validate_spec({"image": IMAGE, "default_url": "/lab"})
    assert spec is None
    assert [(p.field, p.message) for p in problems] == [
        ("spec.default_url", "unknown field 'default_url': did you mean 'defaultUrl'?")
    ]


def test_a_directory_with_helm_templates_is_validated_around_them(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text(Path("examples/renku-jupyterlab.yaml").read_text())
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "cm.yaml").write_text("a: b\n  c: [\n{{- if .Values.x }}\n")

    result = validate(str(tmp_path))

    assert result.exit_code == 0, result.output
    assert "1 GlobalEnvironment(s) checked" in result.output
    assert "cm.yaml: skipped" in result.output


def test_unparsable_yaml_that_claims_a_global_environment_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text("kind: GlobalEnvironment\n  spec: [\n")

    result = validate(str(tmp_path))

    assert result.exit_code == 2
    assert "not valid YAML" in result.output
