"""`export`'s mapping Renku -> GlobalEnvironment (the inverse of the publishing payload), its
names and notes, and the `export` command against the Renku double."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.cli import main
from renku_env_operator.domain import payload
from renku_env_operator.domain.export import (
    dns_name,
    export_manifests,
    pin_note,
    spec_from_environment,
    unique_names,
)
from tests.support.renku_double import RenkuDouble, new_ulid
from tests.support.renku_seed import FRESH_RENKU, seed_fresh_renku

IMAGE = "ghcr.io/example/env:1.0.0"


def declared_from(spec: dict[str, Any]) -> payload.Declared:
    parsed = GlobalEnvironmentSpec.model_validate(spec, by_alias=True, by_name=False)
    return payload.declared_state(parsed, "unused", parsed.image)


def renku_response(declared: payload.Declared) -> dict[str, Any]:
    """What Renku answers after a POST of `declared`: nulls left out, id and date added."""
    body = {
        k: v for k, v in payload.create_payload(declared).items() if k != "environment_image_source"
    }
    return {**body, "id": new_ulid(), "creation_date": "2026-11-25T22:17:23Z"}


EDGE_CASES: list[dict[str, Any]] = [
    {"name": "Bare", "container_image": IMAGE, "id": new_ulid()},  # Renku left every default out
    {
        "name": "Everything",
        "container_image": IMAGE,
        "id": new_ulid(),
        "description": "All fields set",
        "default_url": "/rstudio",
        "uid": 1001,
        "gid": 1002,
        "port": 8787,
        "working_directory": "/srv/work",
        "mount_directory": "/srv",
        "command": ["/bin/sh", "-c"],
        "args": ["exec rserver"],
        "strip_path_prefix": True,
        "is_archived": True,
    },
    {
        "name": "Explicit defaults",
        "container_image": IMAGE,
        "id": new_ulid(),
        "description": "",
        "default_url": "/lab",
        "uid": 1000,
        "gid": 1000,
        "port": 8080,
        "strip_path_prefix": False,
        "is_archived": False,
    },
]


@pytest.mark.parametrize(
    "env",
    [*EDGE_CASES, *({**e, "id": new_ulid()} for e in FRESH_RENKU)],
    ids=lambda e: str(e["name"]),
)
def test_the_exported_spec_declares_exactly_what_renku_holds(env: dict[str, Any]) -> None:
    spec = spec_from_environment(env)
    assert spec["renkuId"] == env["id"]
    assert declared_from(spec) == payload.observed_state(env)
    assert payload.diff(declared_from(spec), payload.observed_state(env)) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"image": IMAGE},
        {"image": IMAGE, "name": "N", "port": 8888, "uid": 1000, "gid": 100, "archived": True},
        {
            "image": IMAGE,
            "command": ["a"],
            "args": ["b", "c"],
            "defaultUrl": "/",
            "description": "d",
        },
        {"image": IMAGE, "workingDirectory": "/w", "mountDirectory": "/", "stripPathPrefix": True},
    ],
)
def test_spec_to_renku_and_back_is_the_same_declared_state(spec: dict[str, Any]) -> None:
    declared = declared_from({"name": "display", **spec})
    back = spec_from_environment(renku_response(declared))
    assert declared_from(back) == declared


def test_defaults_and_empty_values_are_left_out() -> None:
    assert spec_from_environment(EDGE_CASES[2]) == {
        "image": IMAGE,
        "name": "Explicit defaults",
        "renkuId": EDGE_CASES[2]["id"],
    }


@pytest.mark.parametrize(
    ("display", "name"),
    [
        ("Python/Jupyter", "python-jupyter"),
        ("Python/Jupyter (data science)", "python-jupyter-data-science"),
        ("  R -- RStudio  ", "r-rstudio"),
        ("Café Übung", "cafe-ubung"),
        ("日本語", "environment"),
        ("x" * 99, "x" * 63),
        ("a" * 62 + " b", "a" * 62),
    ],
)
def test_dns_names_from_display_names(display: str, name: str) -> None:
    assert dns_name(display) == name


def test_colliding_names_get_a_stable_suffix_from_the_id() -> None:
    envs = [
        {"id": "01J0000000000000000000AAAA", "name": "Python"},
        {"id": "01J0000000000000000000BBBB", "name": "python"},
        {"id": "01J0000000000000000000CCCC", "name": "R"},
    ]
    names = unique_names(envs)
    assert names == {
        "01J0000000000000000000AAAA": "python-00aaaa",
        "01J0000000000000000000BBBB": "python-00bbbb",
        "01J0000000000000000000CCCC": "r",
    }
    assert unique_names(reversed(envs)) == names


@pytest.mark.parametrize(
    ("image", "said"),
    [
        ("ghcr.io/org/env", "has no tag, so it follows 'latest'"),
        ("ghcr.io/org/env:latest", "uses the tag 'latest'"),
        ("ghcr.io/org/env:1.2.3", None),
        ("ghcr.io/org/env@sha256:" + "a" * 64, None),
        ("Not An Image", "not a valid image reference"),
    ],
)
def test_pin_notes(image: str, said: str | None) -> None:
    note = pin_note(image)
    assert (note is None) if said is None else (note is not None and said in note)


def test_manifests_set_namespace_and_are_sorted_by_name() -> None:
    envs = [{**e, "id": new_ulid()} for e in FRESH_RENKU]
    exported = export_manifests(envs, "renku")
    assert [e.name for e in exported] == sorted(e.name for e in exported)
    assert {e.manifest["metadata"]["namespace"] for e in exported} == {"renku"}
    assert "namespace" not in export_manifests(envs)[0].manifest["metadata"]


def export(renku: RenkuDouble, *args: str, **env: str) -> Result:
    environ = {"RENKU_ENV_OPERATOR_RENKU_URL": renku.url, **env}
    return CliRunner().invoke(main, ["export", *args], env=environ, catch_exceptions=False)


def test_export_to_stdout_passes_validate(renku_double: RenkuDouble, tmp_path: Path) -> None:
    seed_fresh_renku(renku_double)
    result = export(renku_double, "-n", "renku")
    assert result.exit_code == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    assert len(documents) == 6
    assert result.stdout.count("  # TODO: this image has no tag") == 5
    assert result.stdout.count("  # TODO: this image uses the tag 'latest'") == 1
    (tmp_path / "all.yaml").write_text(result.stdout)
    checked = CliRunner().invoke(main, ["validate", str(tmp_path / "all.yaml")])
    assert checked.exit_code == 0, checked.output
    assert checked.stdout == "6 GlobalEnvironment(s) checked, 0 invalid, 0 warning(s)\n"


def test_archived_environments_only_with_the_flag(
    renku_double: RenkuDouble, tmp_path: Path
) -> None:
    renku_double.admin_create(name="Old", container_image=IMAGE, is_archived=True)
    renku_double.admin_create(name="Current", container_image=IMAGE)
    assert "archived" not in export(renku_double).stdout
    result = export(renku_double, "--include-archived", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["current.yaml", "old.yaml"]
    old = yaml.safe_load((tmp_path / "out" / "old.yaml").read_text())
    assert old["spec"]["archived"] is True
    assert result.stderr == "2 environment(s) exported\n"


def test_a_token_file_is_sent(renku_double: RenkuDouble, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(renku_double.admin_token + "\n")
    assert export(renku_double, "--token-file", str(tmp_path / "token")).exit_code == 0
    assert [r.user for r in renku_double.requests] == ["admin1"]


def test_the_operators_token_setting_is_used(renku_double: RenkuDouble) -> None:
    result = export(renku_double, RENKU_ENV_OPERATOR_RENKU_TOKEN=renku_double.admin_token)
    assert result.exit_code == 0
    assert [r.user for r in renku_double.requests] == ["admin1"]


def test_renku_unreachable_is_one_line_and_exit_1(renku_double: RenkuDouble) -> None:
    renku_double.set_down(True)
    result = export(renku_double, RENKU_ENV_OPERATOR_RENKU_RETRY_ATTEMPTS="1")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: cannot read environments from {renku_double.url}")
    assert result.stderr.count("\n") == 1


def test_credentials_in_the_renku_url_stay_out_of_the_files_and_messages(
    renku_double: RenkuDouble, tmp_path: Path
) -> None:
    """The exported files are meant for Git (issue 19 finding 10: URLs may carry credentials)."""
    renku_double.admin_create(name="Current", container_image=IMAGE)
    url = renku_double.url.replace("http://", "http://admin:pa55word@")
    result = export(renku_double, "-o", str(tmp_path / "out"), RENKU_ENV_OPERATOR_RENKU_URL=url)
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "out" / "current.yaml").read_text()
    assert text.startswith(f"# Exported from Renku at {renku_double.url.replace('//', '//***@')}")
    renku_double.set_down(True)
    failed = export(
        renku_double, RENKU_ENV_OPERATOR_RENKU_URL=url, RENKU_ENV_OPERATOR_RENKU_RETRY_ATTEMPTS="1"
    )
    assert failed.exit_code == 1
    assert "http://***@127.0.0.1" in failed.stderr
    assert "pa55word" not in text + result.output + failed.output


def test_an_unreadable_token_file_is_one_line_and_exit_1(
    renku_double: RenkuDouble, tmp_path: Path
) -> None:
    result = export(renku_double, "--token-file", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot read the token file {tmp_path / 'missing'}")


def test_no_renku_url_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["export"], env={"RENKU_ENV_OPERATOR_RENKU_URL": None})
    assert result.exit_code == 2
    assert "no Renku URL: pass --renku-url or set RENKU_ENV_OPERATOR_RENKU_URL" in result.stderr
