"""Image reference parsing: Docker Hub normalisation, hosts, tags, digests and helpful errors."""

from __future__ import annotations

import pytest

from renku_env_operator.domain.images import (
    ImageReference,
    InvalidImageReference,
    image_reference_problem,
    parse_image_reference,
)

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("python", "docker.io", "library/python", None, None),
        ("python:3.12", "docker.io", "library/python", "3.12", None),
        ("renku/py", "docker.io", "renku/py", None, None),
        ("docker.io/python", "docker.io", "library/python", None, None),
        ("index.docker.io/renku/py:1", "docker.io", "renku/py", "1", None),
        ("docker.io/library/python:latest", "docker.io", "library/python", "latest", None),
        (
            "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3",
            "ghcr.io",
            "swissdatasciencecenter/renku/py-basic-jupyterlab",
            "2.10.3",
            None,
        ),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("localhost/x:1", "localhost", "x", "1", None),
        ("127.0.0.1:5000/a/b:1.0", "127.0.0.1:5000", "a/b", "1.0", None),
        ("[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar", None),
        ("[2001:db8::1]/foo", "[2001:db8::1]", "foo", None, None),
        (
            "quay.io/jupyter/base-notebook:Python-3.11",
            "quay.io",
            "jupyter/base-notebook",
            "Python-3.11",
            None,
        ),
        (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
        (f"busybox:1.36@{DIGEST}", "docker.io", "library/busybox", "1.36", DIGEST),
        (
            f"registry.example.org:8443/team/img:v1@{DIGEST}",
            "registry.example.org:8443",
            "team/img",
            "v1",
            DIGEST,
        ),
    ],
)
def test_parses_and_normalises(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_image_reference(text)
    assert ref == ImageReference(registry=registry, repository=repository, tag=tag, digest=digest)
    assert image_reference_problem(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Renku/Test", "upper-case"),
        ("ghcr.io/Org/image:1", "upper-case"),
        ("Python", "upper-case"),
        (" renku/py", "whitespace at position 0"),
        ("renku/py:1 ", "whitespace at position 10"),
        ("renku/py\n", "whitespace"),
        (" Renku/Test:töst", "whitespace"),
        ("", "empty"),
        ("   ", "empty"),
        ("https://ghcr.io/org/img:1", "URL scheme"),
        ("a/" + "b" * 300, "longer than 255"),
        ("ghcr.io/" + "a/" * 250 + "b", "Renku accepts at most 500"),
        ("renku/py:-bad", "tag '-bad' is invalid"),
        ("renku/py:" + "t" * 129, "is invalid"),
        ("renku/py@sha256:abc", "digest 'sha256:abc' is malformed"),
        ("renku/py@md5:" + "a" * 32, "is malformed"),
        ("a" * 64, "looks like an image id"),
        ("foo:bar:baz", "not a valid image reference"),
        ("example.com:port/x", "not a valid image reference"),
    ],
)
def test_rejects_with_a_helpful_message(text: str, expected: str) -> None:
    with pytest.raises(InvalidImageReference) as error:
        parse_image_reference(text)
    assert expected in str(error.value)
    assert image_reference_problem(text) == str(error.value)


def test_invalid_reference_is_a_value_error() -> None:
    # The API layer's pydantic validators turn ValueError into validation errors.
    assert issubclass(InvalidImageReference, ValueError)


@pytest.mark.parametrize(
    ("text", "familiar", "canonical", "api_host"),
    [
        ("python", "python", "docker.io/library/python", "registry-1.docker.io"),
        ("renku/py:1", "renku/py:1", "docker.io/renku/py:1", "registry-1.docker.io"),
        (
            "docker.io/library/python:3",
            "python:3",
            "docker.io/library/python:3",
            "registry-1.docker.io",
        ),
        ("docker.io/library/x/y", "library/x/y", "docker.io/library/x/y", "registry-1.docker.io"),
        ("ghcr.io/org/img:2", "ghcr.io/org/img:2", "ghcr.io/org/img:2", "ghcr.io"),
        ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x", "localhost:5000"),
        (
            f"busybox:1@{DIGEST}",
            f"busybox:1@{DIGEST}",
            f"docker.io/library/busybox:1@{DIGEST}",
            "registry-1.docker.io",
        ),
    ],
)
def test_forms(text: str, familiar: str, canonical: str, api_host: str) -> None:
    ref = parse_image_reference(text)
    assert ref.familiar == familiar
    assert str(ref) == canonical
    assert ref.api_host == api_host
    assert parse_image_reference(str(ref)) == ref
    assert parse_image_reference(ref.familiar) == ref


def test_manifest_reference_prefers_digest_then_tag_then_latest() -> None:
    assert parse_image_reference("python").manifest_reference == "latest"
    assert parse_image_reference("python:3").manifest_reference == "3"
    assert parse_image_reference(f"python:3@{DIGEST}").manifest_reference == DIGEST


def test_with_digest_pins_and_keeps_the_tag() -> None:
    ref = parse_image_reference("ghcr.io/org/img:2").with_digest(OTHER_DIGEST)
    assert str(ref) == f"ghcr.io/org/img:2@{OTHER_DIGEST}"
    with pytest.raises(InvalidImageReference, match="malformed"):
        ref.with_digest("sha256:nothex")


def test_with_tag_moves_and_unpins() -> None:
    ref = parse_image_reference(f"ghcr.io/org/img:2@{DIGEST}").with_tag("3")
    assert str(ref) == "ghcr.io/org/img:3"
    with pytest.raises(InvalidImageReference, match="tag"):
        ref.with_tag(".hidden")


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_image_reference("python:3")
    assert {ref, parse_image_reference("docker.io/library/python:3")} == {ref}
