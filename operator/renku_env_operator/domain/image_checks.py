"""Checks over what a registry says about an image: platforms, config and tag policy.

Pure functions: the registry client (clients/registry.py) fetches the facts, these judge them
against the environment's settings and return findings that tell the admin what to fix.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .image_reference import ImageReference
from .image_versions import is_semver_tag

Severity = Literal["Error", "Warning"]
TagPolicy = Literal["Warn", "Error"]
"""How to treat tags that move or are not semver: a warning, or an error that blocks."""


class Platform(BaseModel):
    """One platform an image is built for, as in an OCI index."""

    model_config = ConfigDict(frozen=True)

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class ImageConfig(BaseModel):
    """The parts of an image's config (OCI `config` object) that matter for a session."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    user: str | None = Field(default=None, alias="User")
    exposed_ports: dict[str, object] | None = Field(default=None, alias="ExposedPorts")
    working_dir: str | None = Field(default=None, alias="WorkingDir")
    entrypoint: list[str] | None = Field(default=None, alias="Entrypoint")
    cmd: list[str] | None = Field(default=None, alias="Cmd")


class ImageFacts(BaseModel):
    """What the registry says about an image right now."""

    model_config = ConfigDict(frozen=True)

    digest: str
    """Digest the reference points to now (the index digest for a multi-platform image)."""
    platforms: list[Platform]
    """Every platform the image offers (attestation entries left out)."""
    config: ImageConfig
    """Config of the platform chosen for the checks (linux/amd64 first, else a node's arch)."""


class Finding(BaseModel):
    """One result of a check: what is wrong and what the admin should do about it."""

    model_config = ConfigDict(frozen=True)

    check: str
    severity: Severity
    reason: str
    """CamelCase, for conditions and Events."""
    message: str


def check_platforms(facts: ImageFacts, node_architectures: Collection[str]) -> Finding | None:
    """An error when no linux platform of the image runs on any node architecture.

    Unknown inputs (no node architectures, or a registry that reported no platform) give None:
    absence of evidence is not a failure.
    """
    if not node_architectures or not facts.platforms:
        return None
    if any(p.os == "linux" and p.architecture in node_architectures for p in facts.platforms):
        return None
    offered = ", ".join(str(p) for p in facts.platforms)
    wanted = ", ".join(f"linux/{arch}" for arch in sorted(node_architectures))
    return Finding(
        check="Platform",
        severity="Error",
        reason="NoMatchingPlatform",
        message=(
            f"the image is built for {offered} but the cluster's nodes need {wanted}: build and "
            "push the image for one of those (e.g. docker buildx build --platform linux/amd64)"
        ),
    )


def check_config(
    facts: ImageFacts,
    *,
    uid: int,
    gid: int,
    port: int,
    working_directory: str | None,
    command: list[str] | None,
    args: list[str] | None,
) -> list[Finding]:
    """Warnings where the image's config and the environment's settings disagree."""
    config = facts.config
    return [
        *_user_findings(config.user, uid, gid),
        *_port_findings(config.exposed_ports, port),
        *_working_directory_findings(config.working_dir, working_directory),
        *_command_findings(config, command, args),
    ]


def _warning(check: str, reason: str, message: str) -> Finding:
    return Finding(check=check, severity="Warning", reason=reason, message=message)


def _user_findings(image_user: str | None, uid: int, gid: int) -> Iterable[Finding]:
    user, _, group = (image_user or "").partition(":")
    if not user:
        yield _warning(
            "User",
            "NoUser",
            f"the image sets no USER, so it was built to run as root, but Renku runs it as uid "
            f"{uid}: files it needs to write may belong to root; add 'USER {uid}' to the "
            "Dockerfile (Renku's images use uid 1000)",
        )
        return
    if user in ("root", "0"):
        yield _warning(
            "User",
            "RunsAsRoot",
            f"the image's USER is {image_user} (root), but Renku never runs sessions as root "
            f"(uid {uid}, runAsNonRoot): add a non-root 'USER {uid}' to the Dockerfile",
        )
        return
    # A user name cannot be resolved without reading /etc/passwd from the layers: no verdict.
    if user.isdigit() and int(user) != uid:
        yield _warning(
            "User",
            "UserMismatch",
            f"the image's USER is {user} but the environment runs as uid {uid}: set uid: {user}, "
            "or change USER in the image",
        )
    if group.isdigit() and int(group) != gid:
        yield _warning(
            "User",
            "GroupMismatch",
            f"the image's USER group is {group} but the environment runs with gid {gid}: set "
            f"gid: {group}, or change USER in the image",
        )


def _port_findings(exposed: dict[str, object] | None, port: int) -> Iterable[Finding]:
    # EXPOSE is documentation: its absence says nothing; a list without our port is a hint.
    if not exposed:
        return
    tcp = sorted(k.split("/")[0] for k in exposed if k.partition("/")[2] in ("", "tcp"))
    if str(port) not in tcp:
        listed = ", ".join(exposed)
        yield _warning(
            "Port",
            "PortNotExposed",
            f"the image exposes {listed} but the environment's port is {port}: set port to the "
            f"one the server listens on (on 0.0.0.0), or EXPOSE {port} in the image",
        )


def _working_directory_findings(image_dir: str | None, env_dir: str | None) -> Iterable[Finding]:
    if env_dir is None and not image_dir:
        yield _warning(
            "WorkingDirectory",
            "NoWorkingDirectory",
            "neither the environment nor the image sets a working directory, so Renku uses "
            "/home/jovyan/work: set workingDirectory (Renku's images use /home/renku/work) or "
            "WORKDIR in the image",
        )
    elif env_dir and image_dir and posixpath.normpath(env_dir) != posixpath.normpath(image_dir):
        yield _warning(
            "WorkingDirectory",
            "WorkingDirectoryMismatch",
            f"workingDirectory {env_dir} differs from the image's WORKDIR {image_dir}: sessions "
            f"start in {env_dir}; check that it exists and is writable, or remove "
            "workingDirectory to use the image's",
        )


def _command_findings(
    config: ImageConfig, command: list[str] | None, args: list[str] | None
) -> Iterable[Finding]:
    if command and config.entrypoint:
        yield _warning(
            "Command",
            "EntrypointReplaced",
            f"command {command} replaces the image's ENTRYPOINT {config.entrypoint}: make sure "
            "it does what the entrypoint did (start-up scripts), or remove command",
        )
    if args and config.cmd:
        yield _warning(
            "Command",
            "CmdReplaced",
            f"args {args} replace the image's CMD {config.cmd}: remove args to keep the "
            "image's default",
        )
    elif command and not args and config.cmd:
        # Kubernetes ignores CMD as soon as command is set, unless args are given.
        yield _warning(
            "Command",
            "CmdDropped",
            f"with command set and no args, the image's CMD {config.cmd} is not used either: "
            "add args if the command needs them",
        )


def check_tag_policy(ref: ImageReference, policy: TagPolicy = "Warn") -> Finding | None:
    """A finding for tags that move or cannot be compared; digest-pinned references pass."""
    if ref.digest:
        return None
    if ref.tag is None:
        reason, why = "NoTag", "has no tag, which means :latest, a tag that moves on every push"
    elif ref.tag == "latest":
        reason, why = "LatestTag", "uses :latest, a tag that moves on every push"
    elif not is_semver_tag(ref.tag):
        reason, why = "NonSemverTag", f"tag {ref.tag!r} is not a semantic version like 1.2.3"
    else:
        return None
    return Finding(
        check="TagPolicy",
        severity="Error" if policy == "Error" else "Warning",
        reason=reason,
        message=(
            f"image {ref.familiar} {why}: use a semver tag such as :1.2.3 (or pin a digest) so "
            "sessions are reproducible and updates can be reported"
        ),
    )
