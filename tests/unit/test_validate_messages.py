"""Every range, length and pattern message of `validate` says why the limit exists and what to
write instead (not pydantic's "Input should be greater than or equal to 1")."""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.domain.validation import validate_manifest

IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"


def manifest(metadata: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": metadata or {"name": "env"},
        "spec": {"image": IMAGE, **spec},
    }


def messages(document: dict[str, Any]) -> dict[str, str]:
    return {p.field: p.message for p in validate_manifest(document) if p.severity == "error"}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "uid-root",
        {"uid": 0},
        "spec.uid",
        "Renku refuses root (uid 0); use the image's non-root user id (1-65535, usually 1000)",
    ),
    (
        "uid-negative",
        {"uid": -3},
        "spec.uid",
        "-3 is not a user id: ids are positive and Renku refuses root; use the image's non-root user id (1-65535, usually 1000)",
    ),
    (
        "uid-large",
        {"uid": 70000},
        "spec.uid",
        "70000 is above 65535, the highest user id Renku accepts; use the image's non-root user id (1-65535, usually 1000)",
    ),
    (
        "gid-root",
        {"gid": 0},
        "spec.gid",
        "Renku refuses the root group (gid 0); use the image's group id (1-65535, usually 1000; it owns the session volume)",
    ),
    (
        "gid-negative",
        {"gid": -1},
        "spec.gid",
        "-1 is not a group id: ids are positive; use the image's group id",
    ),
    (
        "gid-large",
        {"gid": 65536},
        "spec.gid",
        "65536 is above 65535, the highest group id Renku accepts",
    ),
    (
        "port-zero",
        {"port": 0},
        "spec.port",
        "0 is not a TCP port a server can listen on; use the port your server listens on (1-65399), Renku's default is 8080",
    ),
    (
        "port-proxies",
        {"port": 65400},
        "spec.port",
        "ports from 65400 up belong to Renku's own proxies; use the port your server listens on (1-65399)",
    ),
    (
        "port-not-tcp",
        {"port": 70000},
        "spec.port",
        "70000 is not a TCP port (the highest is 65535); use the port your server listens on (1-65399)",
    ),
    (
        "port-float",
        {"port": 8080.0},
        "spec.port",
        "must be an integer, got number 8080.0: write a whole number, without a decimal point",
    ),
    (
        "name-empty",
        {"name": ""},
        "spec.name",
        "must not be empty: Renku shows it to users; write a display name, or leave spec.name out to use metadata.name",
    ),
    (
        "name-long",
        {"name": "n" * 100},
        "spec.name",
        "is 100 characters, Renku's limit for an environment name is 99: shorten it",
    ),
    (
        "description-long",
        {"description": "d" * 501},
        "spec.description",
        "is 501 characters, Renku's limit for a description is 500: shorten it",
    ),
    (
        "image-short",
        {"image": "ab"},
        "spec.image",
        "is too short to be an image reference (Renku needs at least 3 characters): write one like ghcr.io/org/image:1.2.3",
    ),
    (
        "image-long",
        {"image": "a" * 501},
        "spec.image",
        "is 501 characters, Renku's limit for an image reference is 500",
    ),
    (
        "image-grammar",
        {"image": "ghcr.io/org/"},
        "spec.image",
        "'ghcr.io/org/' is not a valid image reference: expected [registry[:port]/]repository[:tag][@sha256:digest]",
    ),
    (
        "image-upper",
        {"image": "Python:3.12"},
        "spec.image",
        "repository 'Python' contains upper-case letters: repository names must be lower case (e.g. 'python')",
    ),
    (
        "image-space",
        {"image": "python: 3.12"},
        "spec.image",
        "image reference 'python: 3.12' contains whitespace at position 7: remove spaces",
    ),
    (
        "working-directory-empty",
        {"workingDirectory": ""},
        "spec.workingDirectory",
        "must not be empty: Renku needs an absolute path such as /home/renku/work; leave workingDirectory out to use the default",
    ),
    (
        "working-directory-relative",
        {"workingDirectory": "work"},
        "spec.workingDirectory",
        "must be an absolute path, starting with '/' (for example /home/renku/work): Renku refuses relative paths, as they would depend on the image's WORKDIR",
    ),
    (
        "mount-directory-space",
        {"mountDirectory": "/home/renku "},
        "spec.mountDirectory",
        "must not contain whitespace: a pasted or trailing space names another directory; remove it",
    ),
    (
        "mount-directory-long",
        {"mountDirectory": "/" + "a" * 4096},
        "spec.mountDirectory",
        "is 4097 characters, longer than Linux allows for a path (4096): shorten it",
    ),
    (
        "default-url-long",
        {"defaultUrl": "/" + "a" * 200},
        "spec.defaultUrl",
        "is 201 characters, Renku's limit for defaultUrl is 200",
    ),
    (
        "command-empty",
        {"command": []},
        "spec.command",
        "an empty list is refused by Renku: list at least one item, or leave command out to keep the image's own",
    ),
    (
        "args-many",
        {"args": ["x"] * 65},
        "spec.args",
        "has 65 items, at most 64: put a long command line into a script in the image",
    ),
    (
        "args-item-long",
        {"args": ["x" * 4097]},
        "spec.args[0]",
        "is 4097 characters, at most 4096 per item",
    ),
    (
        "args-empty-item",
        {"args": ["a", ""]},
        "spec.args",
        "must not contain empty strings: an empty item reaches the program as an empty argument ''; remove it",
    ),
    (
        "smoke-timeout-short",
        {"smokeTest": {"timeoutSeconds": 10}},
        "spec.smokeTest.timeoutSeconds",
        "10 seconds is too short to pull an image and start a server: use 30-3600 (default 300)",
    ),
    (
        "smoke-timeout-long",
        {"smokeTest": {"timeoutSeconds": 7200}},
        "spec.smokeTest.timeoutSeconds",
        "7200 seconds is more than an hour",
    ),
    (
        "smoke-stable-negative",
        {"smokeTest": {"stableSeconds": -1}},
        "spec.smokeTest.stableSeconds",
        "-1 is negative: it is how long the pod must stay ready with no restart; use 0-600 (default 20)",
    ),
    (
        "smoke-stable-long",
        {"smokeTest": {"stableSeconds": 601}},
        "spec.smokeTest.stableSeconds",
        "601 seconds keeps a test slot busy too long: use 0-600",
    ),
    (
        "smoke-interval-short",
        {"smokeTest": {"intervalMinutes": 5}},
        "spec.smokeTest.intervalMinutes",
        "re-testing every 5 minutes only loads the cluster: use 10-10080 (a week)",
    ),
    (
        "smoke-interval-long",
        {"smokeTest": {"intervalMinutes": 10081}},
        "spec.smokeTest.intervalMinutes",
        "10081 minutes is more than a week: use 10-10080",
    ),
    (
        "update-range-empty",
        {"imagePolicy": {"updateRange": ""}},
        "spec.imagePolicy.updateRange",
        "must not be empty: write an npm range such as ^2.10",
    ),
    (
        "update-range-long",
        {"imagePolicy": {"updateRange": "1" * 101}},
        "spec.imagePolicy.updateRange",
        "is 101 characters, at most 100",
    ),
    (
        "renku-id",
        {"renkuId": "01h0000000000000000000000a"},
        "spec.renkuId",
        "must be a Renku environment id: 26 upper-case characters (a ULID), the only ids Renku knows; copy it from the admin panel or from `renku-env-operator export`",
    ),
]


@pytest.mark.parametrize(
    ("spec", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_spec_limits_say_why_and_what_to_do(spec: dict[str, Any], field: str, message: str) -> None:
    found = messages(manifest(**spec))
    assert field in found, found
    assert found[field].startswith(message)
    assert "Input should" not in found[field]
    assert "String should" not in found[field]
    assert "List should" not in found[field]


@pytest.mark.parametrize(
    ("metadata", "field", "message"),
    [
        (
            {"name": "Env"},
            "metadata.name",
            "must be a lower-case DNS name, the only names Kubernetes accepts",
        ),
        ({"name": ""}, "metadata.name", "must not be empty: Kubernetes needs a name"),
        (
            {"name": "a" * 254},
            "metadata.name",
            "is 254 characters; Kubernetes names are at most 253",
        ),
        (
            {"name": "env", "namespace": "n" * 64},
            "metadata.namespace",
            "is 64 characters; Kubernetes namespaces are at most 63",
        ),
    ],
    ids=["name-pattern", "name-empty", "name-long", "namespace-long"],
)
def test_metadata_limits_say_why_and_what_to_do(
    metadata: dict[str, Any], field: str, message: str
) -> None:
    found = messages(manifest(metadata))
    assert found[field].startswith(message), found
