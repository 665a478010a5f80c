"""Container image references: parsing, normalisation and the forms the registry API needs.

References are parsed with docker-image-py's port of distribution/reference, with Docker's
familiar-name normalisation (`python` -> docker.io/library/python, `renku/py` ->
docker.io/renku/py). The library's errors are terse, so they are turned into messages that say
what to change.
"""

from __future__ import annotations

import re

from docker_image import reference as docker_reference
from docker_image.digest import InvalidDigest, validate_digest
from pydantic import BaseModel, ConfigDict

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
MAX_REFERENCE_LENGTH = 500  # Renku's limit for container_image
_WHITESPACE = re.compile(r"\s")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


class InvalidImageReference(ValueError):
    """The text is not an image reference; the message says what to fix."""


class ImageReference(BaseModel):
    """A normalised image reference: docker.io/library/python:3.12@sha256:..."""

    model_config = ConfigDict(frozen=True)

    registry: str
    """Registry as written (host[:port]), docker.io for Docker Hub."""
    repository: str
    """Repository path inside the registry, e.g. library/python."""
    tag: str | None = None
    """The tag, None when absent (which means latest unless a digest is given)."""
    digest: str | None = None
    """The manifest digest the reference is pinned to, if any."""

    @property
    def name(self) -> str:
        """Fully qualified repository name, e.g. docker.io/library/python."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """Host[:port] that serves the distribution API for this registry."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def manifest_reference(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag (or latest)."""
        return self.digest or self.tag or "latest"

    @property
    def familiar(self) -> str:
        """The short form Docker prints: python:3.12, renku/py:1, ghcr.io/org/img:2."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
            if "/" in name:  # keep a bare name for official images only
                name = self.repository
        return _join(name, self.tag, self.digest)

    def __str__(self) -> str:
        return _join(self.name, self.tag, self.digest)

    def with_digest(self, digest: str) -> ImageReference:
        """The same image pinned to `digest` (the tag stays as documentation)."""
        problem = _digest_problem(digest)
        if problem:
            raise InvalidImageReference(problem)
        return self.model_copy(update={"digest": digest})

    def with_tag(self, tag: str) -> ImageReference:
        """The same repository at another tag, unpinned (a new tag means a new digest)."""
        if not _TAG.match(tag):
            raise InvalidImageReference(_tag_message(tag))
        return self.model_copy(update={"tag": tag, "digest": None})


def _join(name: str, tag: str | None, digest: str | None) -> str:
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def parse_image_reference(text: str) -> ImageReference:
    """Parse what an admin wrote; raise InvalidImageReference with a helpful message."""
    problem = _precheck(text)
    if problem:
        raise InvalidImageReference(problem)
    try:
        parsed = docker_reference.Reference.parse_normalized_named(text)
    except (docker_reference.InvalidReference, InvalidDigest) as error:
        raise InvalidImageReference(_diagnose(text, error)) from error
    domain, path = parsed.split_hostname()
    return ImageReference(
        registry=domain, repository=path, tag=parsed["tag"], digest=parsed["digest"]
    )


def image_reference_problem(text: str) -> str | None:
    """Why `text` is not a valid image reference, or None when it is one."""
    try:
        parse_image_reference(text)
    except InvalidImageReference as error:
        return str(error)
    return None


def _precheck(text: str) -> str | None:
    """Problems the library reports only as 'invalid reference format'."""
    if not text.strip():
        return "the image reference is empty: write one like ghcr.io/org/image:1.2.3"
    space = _WHITESPACE.search(text)
    if space:
        return (
            f"image reference {text!r} contains whitespace at position {space.start()}: "
            "remove spaces, tabs and newlines"
        )
    if _SCHEME.match(text):
        return f"image reference {text!r} starts with a URL scheme: remove it (ghcr.io/org/img)"
    if len(text) > MAX_REFERENCE_LENGTH:
        return f"image reference is {len(text)} characters long; Renku accepts at most 500"
    return None


def _diagnose(text: str, error: Exception) -> str:
    """Turn the library's terse error into a message that says what to change."""
    rest, _, digest = text.partition("@")
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    tag = rest[colon + 1 :] if colon > last_slash else None
    name = rest[:colon] if tag is not None else rest
    if "lowercase" in str(error):
        return (
            f"repository {name!r} contains upper-case letters: repository names must be "
            f"lower case (e.g. {name.lower()!r})"
        )
    if isinstance(error, docker_reference.NameTooLong):
        return f"repository name in {text!r} is longer than 255 characters"
    if digest:
        problem = _digest_problem(digest)
        if problem:
            return problem
    if tag is not None and not _TAG.match(tag):
        return _tag_message(tag)
    if "64-byte hexadecimal" in str(error):
        return f"{text!r} looks like an image id, not a reference: use repository@sha256:<id>"
    return (
        f"{text!r} is not a valid image reference: expected [registry[:port]/]repository"
        "[:tag][@sha256:digest] with a lower-case repository, e.g. ghcr.io/org/image:1.2.3"
    )


def _digest_problem(digest: str) -> str | None:
    try:
        validate_digest(digest)
    except InvalidDigest:
        return (
            f"digest {digest!r} is malformed: expected sha256: followed by 64 lower-case "
            "hex digits (or sha384/sha512)"
        )
    return None


def _tag_message(tag: str) -> str:
    return (
        f"tag {tag!r} is invalid: a tag has 1-128 letters, digits, '_', '.' or '-' and does "
        "not start with '.' or '-'"
    )
