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
    ("content", "line", "column", "said"),
    [
        (
            GOOD + "  image: python:3.12\n",
            7,
            3,
            'not valid YAML: while constructing a mapping: found duplicate key "image" (first at line 6)',
        ),
        (GOOD + "\tport: 8888\n", 7, 1, "(YAML indents with spaces, not tabs)"),
        (
            "spec: [\n",
            2,
            1,
            "not valid YAML: while parsing a flow node: did not find expected node content",
        ),
        (b"\xff\xfe\x00", 1, 1, "cannot read: not UTF-8 text (byte 0xff): save it as UTF-8"),
    ],
    ids=["duplicate-key", "tab", "unclosed", "not-utf8"],
)
def test_unparsable_files_are_findings_with_line_and_column(
    tmp_path: Path, content: str | bytes, line: int, column: int, said: str
) -> None:
    path = write(tmp_path, "input.yaml", content)
    result = validate("-o", "json", str(path))
    assert result.exit_code == 1
    report = as_json(result)
    (finding,) = report["findings"]
    assert (finding["source"], finding["line"], finding["column"]) == (str(path), line, column)
    assert (finding["object"], finding["severity"]) == ("(not parsed)", "error")
    assert said in finding["message"]
    assert "<unicode string>" not in finding["message"]
    assert report["invalid"] == 1


def test_text_output_of_an_unparsable_file_is_one_line_with_file_line_and_column(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "input.yaml", GOOD + "  image: python:3.12\n")
    result = validate(str(path))
    assert result.exit_code == 1
    first, summary = result.stdout.splitlines()
    assert first.startswith(f"{path}:7:3: error: document 1 ((not parsed)): (document): ")
    assert (
        summary == "0 GlobalEnvironment(s) checked, 1 invalid, 0 warning(s); 1 file(s) not parsed"
    )


@pytest.mark.parametrize(
    "content", ["", CONFIG_MAP, "# only a comment\n"], ids=["empty", "other-kind", "comment"]
)
def test_files_without_a_global_environment_pass(tmp_path: Path, content: str) -> None:
    # A pre-commit hook hands every changed YAML file over: a ConfigMap is not a mistake.
    result = validate("-o", "json", str(write(tmp_path, "input.yaml", content)))
    assert result.exit_code == 0
    assert as_json(result)["checked"] == 0


def test_a_misspelt_kind_in_renkus_group_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.yaml", GOOD.replace("GlobalEnvironment", "GlobalEnviroment"))
    result = validate("-o", "json", str(path))
    assert result.exit_code == 1
    (finding,) = as_json(result)["findings"]
    assert (finding["field"], finding["line"]) == ("kind", 2)
    assert "did you mean 'GlobalEnvironment'?" in finding["message"]


def test_missing_paths_exit_2_after_the_others_were_checked(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    bad = write(tmp_path, "bad.yaml", BAD)
    result = validate(str(missing), str(bad))
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such file or directory\n"
    assert "spec.port" in result.stdout
    report = as_json(validate("-o", "json", str(missing)))
    assert report["errors"] == [f"{missing}: no such file or directory"]
    assert report["checked"] == 0


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
    assert "cm.yaml: skipped: template expression ({{ ... }}) on line 3" in result.stderr


def test_unparsable_yaml_in_a_directory_is_a_finding_and_the_rest_is_still_checked(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.yaml").write_text("kind: GlobalEnvironment\n  spec: [\n")
    write(tmp_path, "bad.yaml", BAD)

    report = as_json(validate("-o", "json", str(tmp_path)))

    assert report["checked"] == 1
    assert {(Path(f["source"]).name, f["object"]) for f in report["findings"]} == {
        ("broken.yaml", "(not parsed)"),
        ("bad.yaml", "GlobalEnvironment team-a/bad"),
    }


def test_a_crash_on_one_document_is_a_finding_and_the_report_stays_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from renku_env_operator.cli import validate as validate_module
    from renku_env_operator.domain.validation import validate_manifest as real

    def flaky(document: Any) -> Any:
        if document["metadata"]["name"] == "bad":
            raise KeyError("surprise")
        return real(document)

    monkeypatch.setattr(validate_module, "validate_manifest", flaky)
    write(tmp_path, "a.yaml", BAD)
    write(tmp_path, "b.yaml", GOOD.replace("image: ", "port: 0\n  image: "))
    result = validate("-o", "json", str(tmp_path))
    assert result.exit_code == 1
    report = as_json(result)
    assert report["checked"] == 2
    messages = {f["message"] for f in report["findings"]}
    assert "could not be checked (KeyError: 'surprise'): please report this" in messages
    assert any(m.startswith("0 is not a TCP port") for m in messages)
