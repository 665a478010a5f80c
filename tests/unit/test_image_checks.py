"""Checks over registry facts: platforms, USER/EXPOSE/WORKDIR/ENTRYPOINT/CMD and tag policy."""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.domain.images import (
    Finding,
    ImageConfig,
    ImageFacts,
    Platform,
    check_config,
    check_platforms,
    check_tag_policy,
    parse_image_reference,
)

DIGEST = "sha256:" + "c" * 64
AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64", variant="v8")
# What Renku's own images look like (CONTRACT: uid/gid 1000, /home/renku/work, no command).
RENKU_LIKE: dict[str, Any] = {
    "User": "1000:1000",
    "ExposedPorts": {"8888/tcp": {}},
    "WorkingDir": "/home/renku/work",
    "Entrypoint": ["tini", "--"],
    "Cmd": ["start-session"],
}
SETTINGS: dict[str, Any] = {
    "uid": 1000,
    "gid": 1000,
    "port": 8888,
    "working_directory": None,
    "command": None,
    "args": None,
}


def facts(config: dict[str, Any] | None = None, *platforms: Platform) -> ImageFacts:
    return ImageFacts(
        digest=DIGEST,
        platforms=list(platforms) or [AMD64],
        config=ImageConfig.model_validate(config or {}),
    )


def reasons(findings: list[Finding]) -> list[str]:
    return [f.reason for f in findings]


def config_findings(config: dict[str, Any], **overrides: Any) -> list[Finding]:
    return check_config(facts(config), **{**SETTINGS, **overrides})


class TestPlatforms:
    def test_a_node_architecture_offered_passes(self) -> None:
        assert check_platforms(facts({}, AMD64, ARM64), {"arm64"}) is None

    def test_no_node_architecture_offered_is_an_error(self) -> None:
        finding = check_platforms(facts({}, ARM64), {"amd64"})
        assert finding is not None
        assert (finding.severity, finding.reason) == ("Error", "NoMatchingPlatform")
        assert "linux/arm64/v8" in finding.message
        assert "linux/amd64" in finding.message

    def test_other_operating_systems_do_not_count(self) -> None:
        windows = Platform(os="windows", architecture="amd64")
        finding = check_platforms(facts({}, windows), {"amd64"})
        assert finding is not None
        assert finding.reason == "NoMatchingPlatform"

    @pytest.mark.parametrize("nodes", [set(), frozenset()])
    def test_unknown_node_architectures_give_no_verdict(self, nodes: set[str]) -> None:
        assert check_platforms(facts({}, ARM64), nodes) is None

    def test_unknown_image_platforms_give_no_verdict(self) -> None:
        unknown = ImageFacts(digest=DIGEST, platforms=[], config=ImageConfig())
        assert check_platforms(unknown, {"amd64"}) is None


class TestConfig:
    def test_renku_like_image_has_no_findings(self) -> None:
        assert config_findings(RENKU_LIKE) == []

    @pytest.mark.parametrize(
        ("user", "expected"),
        [
            (None, ["NoUser"]),
            ("", ["NoUser"]),
            ("root", ["RunsAsRoot"]),
            ("0", ["RunsAsRoot"]),
            ("0:0", ["RunsAsRoot"]),
            ("1000", []),
            ("1000:1000", []),
            ("1000:100", ["GroupMismatch"]),
            ("1001", ["UserMismatch"]),
            ("1001:100", ["UserMismatch", "GroupMismatch"]),
            # Names cannot be resolved without the image's /etc/passwd: no verdict.
            ("jovyan", []),
            ("renku:users", []),
        ],
    )
    def test_user(self, user: str | None, expected: list[str]) -> None:
        assert reasons(config_findings({**RENKU_LIKE, "User": user})) == expected

    def test_user_mismatch_message_says_what_to_set(self) -> None:
        (finding,) = config_findings({**RENKU_LIKE, "User": "1001"})
        assert finding.severity == "Warning"
        assert "uid: 1001" in finding.message

    @pytest.mark.parametrize(
        ("exposed", "port", "expected"),
        [
            ({"8888/tcp": {}}, 8888, []),
            ({"8888": {}}, 8888, []),
            ({"8080/tcp": {}, "8888/tcp": {}}, 8080, []),
            ({"8888/tcp": {}}, 8080, ["PortNotExposed"]),
            ({"8080/udp": {}}, 8080, ["PortNotExposed"]),
            # EXPOSE is documentation only; its absence says nothing.
            (None, 8080, []),
            ({}, 8080, []),
        ],
    )
    def test_port(self, exposed: dict[str, Any] | None, port: int, expected: list[str]) -> None:
        config = {**RENKU_LIKE, "ExposedPorts": exposed}
        assert reasons(config_findings(config, port=port)) == expected

    def test_port_message_lists_exposed_ports(self) -> None:
        (finding,) = config_findings(RENKU_LIKE, port=8080)
        assert "8888/tcp" in finding.message
        assert "8080" in finding.message

    @pytest.mark.parametrize(
        ("image_dir", "env_dir", "expected"),
        [
            ("/home/renku/work", None, []),
            ("/home/renku/work", "/home/renku/work", []),
            ("/home/renku/work/", "/home/renku/work", []),
            ("/home/renku/work", "/home/renku", ["WorkingDirectoryMismatch"]),
            (None, "/home/renku/work", []),
            (None, None, ["NoWorkingDirectory"]),
            ("", None, ["NoWorkingDirectory"]),
        ],
    )
    def test_working_directory(
        self, image_dir: str | None, env_dir: str | None, expected: list[str]
    ) -> None:
        config = {**RENKU_LIKE, "WorkingDir": image_dir}
        assert reasons(config_findings(config, working_directory=env_dir)) == expected

    @pytest.mark.parametrize(
        ("entrypoint", "cmd", "command", "args", "expected"),
        [
            (["tini", "--"], ["start"], None, None, []),
            (["tini", "--"], ["start"], ["bash"], None, ["EntrypointReplaced", "CmdDropped"]),
            (["tini", "--"], ["start"], None, ["other"], ["CmdReplaced"]),
            (
                ["tini", "--"],
                ["start"],
                ["bash"],
                ["-c", "x"],
                ["EntrypointReplaced", "CmdReplaced"],
            ),
            (None, ["start"], ["bash"], None, ["CmdDropped"]),
            (None, None, ["bash"], ["-c", "x"], []),
            (["tini"], None, None, ["x"], []),
        ],
    )
    def test_command_and_args(
        self,
        entrypoint: list[str] | None,
        cmd: list[str] | None,
        command: list[str] | None,
        args: list[str] | None,
        expected: list[str],
    ) -> None:
        config = {**RENKU_LIKE, "Entrypoint": entrypoint, "Cmd": cmd}
        assert reasons(config_findings(config, command=command, args=args)) == expected

    def test_all_config_findings_are_warnings_with_a_check_name(self) -> None:
        findings = config_findings(
            {"User": "root", "ExposedPorts": {"80/tcp": {}}, "Entrypoint": ["x"], "Cmd": ["y"]},
            command=["z"],
        )
        assert reasons(findings) == [
            "RunsAsRoot",
            "PortNotExposed",
            "NoWorkingDirectory",
            "EntrypointReplaced",
            "CmdDropped",
        ]
        assert {f.severity for f in findings} == {"Warning"}
        assert [f.check for f in findings] == [
            "User",
            "Port",
            "WorkingDirectory",
            "Command",
            "Command",
        ]


class TestTagPolicy:
    @pytest.mark.parametrize(
        ("image", "reason"),
        [
            ("python", "NoTag"),
            ("python:latest", "LatestTag"),
            ("python:3.12", "NonSemverTag"),
            ("ghcr.io/org/img:main", "NonSemverTag"),
            ("ghcr.io/org/img:2.10.3", None),
            ("ghcr.io/org/img:v2.10.3", None),
            ("ghcr.io/org/img:2.11.0-rc.1", None),
            (f"python@{DIGEST}", None),
            (f"python:latest@{DIGEST}", None),
        ],
    )
    def test_reasons(self, image: str, reason: str | None) -> None:
        finding = check_tag_policy(parse_image_reference(image))
        assert (finding.reason if finding else None) == reason
        if finding:
            assert finding.severity == "Warning"
            assert "semver tag" in finding.message

    def test_error_policy_makes_it_an_error(self) -> None:
        finding = check_tag_policy(parse_image_reference("python:latest"), "Error")
        assert finding is not None
        assert finding.severity == "Error"
        assert check_tag_policy(parse_image_reference("python:1.2.3"), "Error") is None
