"""Renku's resolution of working and mount directories (SESSIONS.md "Paths")."""

from __future__ import annotations

import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.domain.paths import path_notes, path_warnings, resolve_paths

IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"


@pytest.mark.parametrize(
    ("working", "mount", "image_workdir", "work_dir", "mount_dir"),
    [
        # 1. work_dir: the spec's, else the image's WORKDIR, else /home/jovyan/work
        ("/home/renku/work", None, "/srv", "/home/renku/work", "/home/renku/work"),
        (None, None, "/home/renku/work", "/home/renku/work", "/home/renku/work"),
        (None, None, None, "/home/jovyan/work", "/home/jovyan/work"),
        (None, None, "", "/home/jovyan/work", "/home/jovyan/work"),
        # 2. mount_dir: the spec's, else work_dir; / becomes /work
        (
            "/home/renku/work/src",
            "/home/renku/work",
            None,
            "/home/renku/work/src",
            "/home/renku/work",
        ),
        ("/work/project", "/", None, "/work/project", "/work"),
        # 3. work_dir outside mount_dir becomes mount_dir
        ("/home/renku", "/home/renku/work", None, "/home/renku/work", "/home/renku/work"),
        ("/opt/app", "/", None, "/work", "/work"),
        (None, "/data", "/home/jovyan", "/data", "/data"),
        # lexical comparison, as PurePosixPath does it
        ("/home/renku/workspace", "/home/renku/work", None, "/home/renku/work", "/home/renku/work"),
        ("/home/renku/work/", "/home/renku//work", None, "/home/renku/work", "/home/renku/work"),
    ],
)
def test_resolution_follows_renku(
    working: str | None,
    mount: str | None,
    image_workdir: str | None,
    work_dir: str,
    mount_dir: str,
) -> None:
    resolved = resolve_paths(working, mount, image_workdir)
    assert (resolved.work_dir, resolved.mount_dir) == (work_dir, mount_dir)


def test_no_adjustment_no_notes() -> None:
    assert resolve_paths("/home/renku/work", "/home/renku/work", None).adjusted == []
    assert resolve_paths("/home/renku/work/a", "/home/renku", None).adjusted == []


def test_working_directory_outside_mount_says_what_happens() -> None:
    notes = resolve_paths("/home/renku", "/home/renku/work", None).adjusted
    assert len(notes) == 1
    assert "workingDirectory /home/renku is not inside mountDirectory /home/renku/work" in notes[0]
    assert "starts the session in /home/renku/work instead" in notes[0]
    assert "RENKU_WORKING_DIR=/home/renku/work" in notes[0]
    assert "lost when the session is paused and resumed" in notes[0]


def test_image_workdir_outside_mount_is_named_as_the_images() -> None:
    notes = resolve_paths(None, "/data", "/home/jovyan").adjusted
    assert notes[0].startswith(
        "the image's WORKDIR /home/jovyan is not inside mountDirectory /data"
    )


def test_root_mount_is_replaced_and_said_so() -> None:
    notes = resolve_paths("/work", "/", None).adjusted
    assert len(notes) == 1
    assert notes[0].startswith("mountDirectory / is replaced by /work")


def test_root_mount_and_outside_give_two_notes() -> None:
    assert len(resolve_paths("/opt/app", "/", None).adjusted) == 2


def spec(**fields: object) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


def test_path_warnings_of_a_spec() -> None:
    assert path_warnings(spec(workingDirectory="/a/b", mountDirectory="/a")) == []
    assert len(path_warnings(spec(workingDirectory="/b", mountDirectory="/a"))) == 1
    assert path_warnings(spec(mountDirectory="/"))[0].startswith("mountDirectory / is replaced")


def test_path_warnings_need_the_image_workdir_when_the_spec_sets_none() -> None:
    # Unknown WORKDIR: no guess (the fallback /home/jovyan/work would be outside /data).
    assert path_warnings(spec(mountDirectory="/data")) == []
    warnings = path_warnings(spec(mountDirectory="/data"), image_workdir="/home/jovyan")
    assert len(warnings) == 1
    assert "the image's WORKDIR /home/jovyan" in warnings[0]


@pytest.mark.parametrize(
    ("path", "directory", "inside"),
    [("/a/b", "/a", True), ("/a", "/a", True), ("/ab", "/a", False), ("/a/b", "/a/", True)],
)
def test_inside_is_judged_by_path_components(path: str, directory: str, inside: bool) -> None:
    notes = path_notes(spec(workingDirectory=path, mountDirectory=directory))
    assert (notes == []) is inside
    assert all(note.field == "workingDirectory" for note in notes)


def test_notes_name_the_field_they_are_about() -> None:
    notes = path_notes(spec(mountDirectory="/"))
    assert [note.field for note in notes] == ["mountDirectory"]
