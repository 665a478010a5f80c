"""OCI / Docker v2 documents: media types, models, parsing, digests and the platform choice.

Only what the image checks need is modelled; unknown fields are ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain.images import ImageReference, Platform
from .registry_errors import InvalidImageError, RegistryError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# Order matters to nobody but humans reading logs; every type we understand is listed.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
_ATTESTATION_ANNOTATION = "vnd.docker.reference.type"
# The OCI digest grammar: a registry's digests go into request paths, so nothing else passes.
DIGEST_PATTERN = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"


class Descriptor(BaseModel):
    """A pointer to a blob or manifest, with its platform when inside an index."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    media_type: str = Field(default="", alias="mediaType")
    digest: str = Field(pattern=DIGEST_PATTERN)
    size: int = Field(ge=0)
    platform: Platform | None = None
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def is_attestation(self) -> bool:
        """buildx provenance/SBOM entries (platform unknown/unknown) are not runnable images."""
        unknown = self.platform is not None and self.platform.os == "unknown"
        return unknown or _ATTESTATION_ANNOTATION in self.annotations


class Manifest(BaseModel):
    """An image manifest or an index (manifest list); `kind` says which."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    schema_version: int = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor | None = None
    manifests: list[Descriptor] | None = None

    @property
    def is_index(self) -> bool:
        """An index lists platform manifests instead of naming a config."""
        return self.media_type in INDEX_TYPES or (self.media_type is None and bool(self.manifests))

    def runnable(self) -> list[Descriptor]:
        """The index entries that are images (attestations left out)."""
        return [entry for entry in self.manifests or [] if not entry.is_attestation]


class ImageConfigBlob(BaseModel):
    """The image config blob: platform fields and the runtime `config` object."""

    model_config = ConfigDict(frozen=True)

    architecture: str = ""
    os: str = ""
    variant: str | None = None
    config: dict[str, object] | None = None

    def platform(self) -> Platform | None:
        """The platform this config was built for, None when the blob does not say."""
        if not (self.os and self.architecture):
            return None
        return Platform(os=self.os, architecture=self.architecture, variant=self.variant)


def choose_platform(
    entries: list[Descriptor], node_architectures: Collection[str] | None
) -> Descriptor | None:
    """The entry whose config the checks read: linux/amd64 first, else a node's architecture,
    else the first linux entry, else the first entry."""
    preferred = [] if node_architectures and "amd64" not in node_architectures else ["amd64"]
    preferred += sorted(node_architectures or ())
    linux = [e for e in entries if e.platform is not None and e.platform.os == "linux"]
    for architecture in preferred:
        for entry in linux:
            if entry.platform is not None and entry.platform.architecture == architecture:
                return entry
    if linux:
        return linux[0]
    return entries[0] if entries else None


def verify_digest(body: bytes, digest: str, ref: ImageReference, what: str) -> None:
    algorithm, _, expected = digest.partition(":")
    if algorithm not in ("sha256", "sha384", "sha512"):
        raise InvalidImageError(f"{ref.familiar}: unsupported digest algorithm in {digest}")
    if hashlib.new(algorithm, body).hexdigest() != expected:
        raise InvalidImageError(f"the {what} of {ref.familiar} does not match digest {digest}")


def parse_manifest(body: bytes, response: httpx.Response, ref: ImageReference) -> Manifest:
    try:
        manifest = Manifest.model_validate_json(body)
    except ValidationError as error:
        raise InvalidImageError(f"the manifest of {ref.familiar} is malformed: {error}") from error
    media_type = manifest.media_type or response.headers.get("Content-Type", "").split(";")[0]
    if manifest.schema_version != 2 or media_type not in IMAGE_TYPES | INDEX_TYPES:
        raise InvalidImageError(
            f"{ref.familiar} uses an unsupported manifest format ({media_type or 'unknown'}, "
            f"schema {manifest.schema_version}): rebuild and push it with a current Docker or "
            "buildx"
        )
    return manifest.model_copy(update={"media_type": media_type})


def parse_tags(body: bytes, ref: ImageReference) -> list[str]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RegistryError(f"the tag list of {ref.name} is not JSON: {error}") from error
    tags = document.get("tags") if isinstance(document, dict) else None
    return [tag for tag in tags or [] if isinstance(tag, str)]
