"""`renku-env-operator validate` against the manifest corpus: every mistake is caught and named.

Each invalid file says in its header which field must be reported and part of the message; the
valid files (and every example shipped to users) must pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from renku_env_operator.cli import main
from tests.corpus.cases import INVALID_DIR, ROOT, VALID_DIR, Case, invalid_cases, valid_files

INVALID = invalid_cases()
FINDING_KEYS = {"source", "document", "object", "field", "line", "column", "severity", "message"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", *args], catch_exceptions=False)
    return result.exit_code, result.output


def run_json(*paths: Path) -> tuple[int, dict[str, Any]]:
    code, output = run("--output", "json", *map(str, paths))
    report: dict[str, Any] = json.loads(output)
    return code, report


def test_the_corpus_is_broad_and_well_formed() -> None:
    assert len(INVALID) >= 45
    assert len(valid_files()) >= 8
    for case in INVALID:
        assert case.expects, f"{case.name}: no '# expect:' line"
        for location in case.cel:
            assert location == ROOT or location.startswith(("spec", "metadata")), case.name


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.name)
def test_invalid_case_is_rejected_with_its_field_and_message(case: Case) -> None:
    code, report = run_json(case.path)
    assert code == 1
    assert (report["checked"], report["invalid"]) == (1, 1)
    errors = [(f["field"], f["message"]) for f in report["findings"] if f["severity"] == "error"]
    for expect in case.expects:
        assert any(
            field == expect.field and expect.substring in message for field, message in errors
        ), f"expected {expect.field}: ...{expect.substring}... in {errors}"


@pytest.mark.parametrize("path", valid_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_valid_case_passes(path: Path) -> None:
    code, report = run_json(path)
    assert code == 0, report["findings"]
    assert report["checked"] == 1
    assert [f for f in report["findings"] if f["severity"] == "error"] == []


def test_the_installed_console_script_judges_the_whole_corpus() -> None:
    script = Path(sys.executable).with_name("renku-env-operator")
    invalid = subprocess.run(
        [script, "validate", "-o", "json", INVALID_DIR],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert invalid.returncode == 1, invalid.stderr
    report = json.loads(invalid.stdout)
    assert report["checked"] == report["invalid"] == len(INVALID)
    valid = subprocess.run(
        [script, "validate", *valid_files()],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert valid.returncode == 0, valid.stdout
    assert valid.stdout.endswith(
        f"{len(valid_files())} GlobalEnvironment(s) checked, 0 invalid, 1 warning(s)\n"
    )


def test_json_report_structure() -> None:
    code, report = run_json(INVALID_DIR / "several-mistakes.yaml", VALID_DIR / "warning-only.yaml")
    assert code == 1
    assert set(report) == {"files", "checked", "invalid", "findings", "skipped", "errors"}
    assert (report["files"], report["skipped"], report["errors"]) == (2, [], [])
    assert (report["checked"], report["invalid"]) == (2, 1)
    for finding in report["findings"]:
        assert set(finding) == FINDING_KEYS
        assert isinstance(finding["line"], int)
        assert isinstance(finding["column"], int)
        assert finding["document"] == 1
    assert [(f["severity"], f["field"]) for f in report["findings"]] == [
        ("error", "spec.port"),
        ("error", "spec.uid"),
        ("error", "spec.workingDirectory"),
        ("warning", "spec.workingDirectory"),
    ]
    assert report["findings"][0]["object"] == "GlobalEnvironment renku/python-basic"
    assert report["findings"][0]["source"].endswith("several-mistakes.yaml")


def _line_of(path: Path, text: str) -> int:
    """1-based number of the only line that starts with `text` (after indentation)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    (number,) = [i for i, line in enumerate(lines, start=1) if line.lstrip().startswith(text)]
    return number


@pytest.mark.parametrize(
    ("name", "field", "line_text"),
    [
        ("port-quoted", "spec.port", "port:"),
        ("args-number-item", "spec.args[2]", "args:"),  # a flow list: the item is on that line
        ("unknown-field-image-policy-pin", "spec.imagePolicy.pin", "pin:"),
        ("smoke-timeout-too-small", "spec.smokeTest.timeoutSeconds", "timeoutSeconds:"),
        ("missing-image", "spec.image", "spec:"),  # missing: the parent that should hold it
        ("metadata-name-too-long-without-spec-name", "metadata.name", "name: python-"),
        ("wrong-api-version", "apiVersion", "apiVersion:"),
    ],
)
def test_line_numbers_point_at_the_field(name: str, field: str, line_text: str) -> None:
    path = INVALID_DIR / f"{name}.yaml"
    _, report = run_json(path)
    lines = {f["line"] for f in report["findings"] if f["field"] == field}
    assert lines == {_line_of(path, line_text)}


def test_text_output_names_file_line_object_field_and_message() -> None:
    path = INVALID_DIR / "port-quoted.yaml"
    code, output = run(str(path))
    assert code == 1
    first, summary = output.splitlines()
    assert first == (
        f"{path}:{_line_of(path, 'port:')}:3: error: document 1 (GlobalEnvironment "
        "renku/python-basic): spec.port: must be an integer, got string '8888': remove the quotes"
    )
    assert summary == "1 GlobalEnvironment(s) checked, 1 invalid, 0 warning(s)"
