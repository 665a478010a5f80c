"""Renku's resolution of a session's working and mount directories (SESSIONS.md "Paths").

Renku adjusts what the admin declared without saying so: a mount directory of `/` becomes
`/work`, and a working directory outside the mount directory becomes the mount directory. The
smoke pod must run with the resolved paths, and the admin should hear about the adjustments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..api.spec import GlobalEnvironmentSpec

FALLBACK_WORK_DIR = "/home/jovyan/work"
"""Renku's working directory when neither the environment nor the image sets one."""
ROOT_MOUNT_REPLACEMENT = "/work"
"""What Renku mounts the session volume at when the mount directory is `/`."""


@dataclass(frozen=True)
class PathNote:
    """One silent adjustment Renku makes, and the spec field it is about."""

    field: str
    message: str


@dataclass(frozen=True)
class ResolvedPaths:
    """The directories a Renku session really uses, and what Renku changed to get them."""

    work_dir: str
    mount_dir: str
    notes: list[PathNote] = field(default_factory=list)
    """One note per silent adjustment Renku made, saying what happens to the session."""

    @property
    def adjusted(self) -> list[str]:
        return [note.message for note in self.notes]


def resolve_paths(
    working_directory: str | None, mount_directory: str | None, image_workdir: str | None
) -> ResolvedPaths:
    """The working and mount directories, resolved in Renku's order."""
    notes: list[PathNote] = []
    # PurePosixPath, as Renku uses: collapses '//' and a trailing '/', keeps '..'.
    work = PurePosixPath(working_directory or image_workdir or FALLBACK_WORK_DIR)
    mount = PurePosixPath(mount_directory) if mount_directory else work
    if str(mount) == "/":
        mount = PurePosixPath(ROOT_MOUNT_REPLACEMENT)
        notes.append(PathNote("mountDirectory", _root_mount_note()))
    if not work.is_relative_to(mount):
        declared = working_directory is not None
        message = _outside_note(str(work), str(mount), declared=declared)
        notes.append(PathNote("workingDirectory", message))
        work = mount
    return ResolvedPaths(work_dir=str(work), mount_dir=str(mount), notes=notes)


def path_notes(spec: GlobalEnvironmentSpec, image_workdir: str | None = None) -> list[PathNote]:
    """What Renku will silently change about the spec's directories (empty when nothing).

    Without `image_workdir` an unset workingDirectory cannot be judged (the image's WORKDIR
    decides), so only the declared fields are looked at then.
    """
    if spec.working_directory is None and image_workdir is None:
        root = _is_root(spec.mount_directory)
        return [PathNote("mountDirectory", _root_mount_note())] if root else []
    return resolve_paths(spec.working_directory, spec.mount_directory, image_workdir).notes


def path_warnings(spec: GlobalEnvironmentSpec, image_workdir: str | None = None) -> list[str]:
    """The messages of `path_notes`."""
    return [note.message for note in path_notes(spec, image_workdir)]


def _is_root(mount_directory: str | None) -> bool:
    return mount_directory is not None and str(PurePosixPath(mount_directory)) == "/"


def _root_mount_note() -> str:
    return (
        f"mountDirectory / is replaced by {ROOT_MOUNT_REPLACEMENT}: Renku mounts the session "
        f"volume at {ROOT_MOUNT_REPLACEMENT}, so only files below {ROOT_MOUNT_REPLACEMENT} "
        "survive pause and resume; set mountDirectory to the directory users work in (for "
        "Renku's images /home/renku/work)"
    )


def _outside_note(work: str, mount: str, *, declared: bool) -> str:
    source = "workingDirectory" if declared else "the image's WORKDIR"
    return (
        f"{source} {work} is not inside mountDirectory {mount}: Renku silently starts the "
        f"session in {mount} instead (RENKU_WORKING_DIR={mount}), because anything written "
        f"outside {mount} would be lost when the session is paused and resumed; put "
        f"workingDirectory below {mount}, or move mountDirectory up to contain {work}"
    )
