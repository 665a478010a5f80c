"""OCI / Docker v2 documents: media types, models, parsing, digests and the platform choice.

Only what the image checks need is modelled, and only that is kept: unknown fields (layers,
labels, history, environment) are skipped by the JSON parser without becoming Python objects,
and the lists that are read (index entries, ports, entrypoint and command) are read lazily up
to a bound, so a 4 MiB document of 200,000 entries costs the operator a few MiB while it is
parsed and nothing after.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain.images import ImageConfig, ImageReference, Platform
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
T = TypeVar("T")
# What is read of a document, at most (real images: a few dozen index entries, a port or two,
# a command line of a few KiB). Over these the image is refused with a message that says so.
MAX_INDEX_ENTRIES = 256
MAX_EXPOSED_PORTS = 1024
MAX_COMMAND_ITEMS = 1024
MAX_COMMAND_CHARS = 64 * 1024
MAX_FIELD_CHARS = 4096  # User, WorkingDir


class _Annotations(BaseModel):
    """The one annotation read; the others are skipped unparsed."""

    reference_type: str | None = Field(default=None, alias=_ATTESTATION_ANNOTATION)


class Descriptor(BaseModel):
    """A pointer to a blob or manifest, with its platform when inside an index."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    media_type: str = Field(default="", alias="mediaType")
    digest: str = Field(pattern=DIGEST_PATTERN)
    size: int = Field(ge=0)
    platform: Platform | None = None
    annotations: _Annotations = Field(default_factory=_Annotations)

    @property
    def is_attestation(self) -> bool:
        """buildx provenance/SBOM entries (platform unknown/unknown) are not runnable images."""
        unknown = self.platform is not None and self.platform.os == "unknown"
        return unknown or self.annotations.reference_type is not None


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


class _ManifestDocument(BaseModel):
    """A manifest as parsed: the index entries are validated lazily, as they are read."""

    schema_version: int = Field(alias="schemaVersion")
    media_type: str | None = Field(default=None, alias="mediaType")
    config: Descriptor | None = None
    manifests: Iterable[Descriptor] | None = None


class _RuntimeDocument(BaseModel):
    """The config blob's `config` object: the fields the checks read, lists read lazily."""

    user: str | None = Field(default=None, alias="User")
    exposed_ports: Iterable[str] | None = Field(default=None, alias="ExposedPorts")  # the keys
    working_dir: str | None = Field(default=None, alias="WorkingDir")
    entrypoint: Iterable[str] | None = Field(default=None, alias="Entrypoint")
    cmd: Iterable[str] | None = Field(default=None, alias="Cmd")


class _ConfigDocument(BaseModel):
    """The image config blob as parsed: platform fields and the runtime `config` object."""

    architecture: str = ""
    os: str = ""
    variant: str | None = None
    config: _RuntimeDocument | None = None


@dataclass(frozen=True)
class ConfigFacts:
    """What is kept of a config blob: its platform and the fields the checks read."""

    platform: Platform | None
    config: ImageConfig


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


def _bounded(items: Iterable[T] | None, most: int, what: str) -> list[T]:
    """The first items of a lazily validated list; more than `most`: refused, naming `what`."""
    if items is None:
        return []
    taken = list(itertools.islice(items, most + 1))
    if len(taken) > most:
        raise _TooMany(f"{what}: more than the {most} the operator reads")
    return taken


class _TooMany(Exception):
    pass


def parse_manifest(body: bytes, response: httpx.Response, ref: ImageReference) -> Manifest:
    try:
        document = _ManifestDocument.model_validate_json(body)
        entries = _bounded(document.manifests, MAX_INDEX_ENTRIES, "index entries (manifests)")
        manifest = Manifest(
            schema_version=document.schema_version,
            media_type=document.media_type,
            config=document.config,
            manifests=entries if document.manifests is not None else None,
        )
    except ValidationError as error:
        raise InvalidImageError(f"the manifest of {ref.familiar} is malformed: {error}") from error
    except _TooMany as error:
        raise InvalidImageError(f"the manifest of {ref.familiar} lists too many {error}") from error
    media_type = manifest.media_type or response.headers.get("Content-Type", "").split(";")[0]
    if manifest.schema_version != 2 or media_type not in IMAGE_TYPES | INDEX_TYPES:
        raise InvalidImageError(
            f"{ref.familiar} uses an unsupported manifest format ({media_type or 'unknown'}, "
            f"schema {manifest.schema_version}): rebuild and push it with a current Docker or "
            "buildx"
        )
    return manifest.model_copy(update={"media_type": media_type})


def parse_config(body: bytes, ref: ImageReference) -> ConfigFacts:
    """The platform and the checked fields of a config blob; nothing else of it is kept."""
    try:
        document = _ConfigDocument.model_validate_json(body)
        runtime = document.config or _RuntimeDocument()
        ports = _bounded(runtime.exposed_ports, MAX_EXPOSED_PORTS, "exposed ports (ExposedPorts)")
        entrypoint = _bounded(runtime.entrypoint, MAX_COMMAND_ITEMS, "Entrypoint items")
        cmd = _bounded(runtime.cmd, MAX_COMMAND_ITEMS, "Cmd items")
    except ValidationError as error:
        raise InvalidImageError(f"the config of {ref.familiar} is malformed: {error}") from error
    except _TooMany as error:
        raise InvalidImageError(f"the config of {ref.familiar} has too many {error}") from error
    for field, value in (("User", runtime.user), ("WorkingDir", runtime.working_dir)):
        if value is not None and len(value) > MAX_FIELD_CHARS:
            raise InvalidImageError(
                f"the config of {ref.familiar} has a {field} of {len(value)} characters, more "
                f"than the {MAX_FIELD_CHARS} the operator reads"
            )
    if sum(map(len, entrypoint)) + sum(map(len, cmd)) > MAX_COMMAND_CHARS:
        raise InvalidImageError(
            f"the config of {ref.familiar} has an Entrypoint and Cmd longer than the "
            f"{MAX_COMMAND_CHARS} characters the operator reads: move long scripts into a file "
            "in the image"
        )
    config = ImageConfig(
        User=runtime.user,
        ExposedPorts={port: {} for port in ports} if runtime.exposed_ports is not None else None,
        WorkingDir=runtime.working_dir,
        Entrypoint=entrypoint if runtime.entrypoint is not None else None,
        Cmd=cmd if runtime.cmd is not None else None,
    )
    platform = None
    if document.os and document.architecture:
        platform = Platform(
            os=document.os, architecture=document.architecture, variant=document.variant
        )
    return ConfigFacts(platform=platform, config=config)


def parse_tags(body: bytes, ref: ImageReference) -> list[str]:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RegistryError(f"the tag list of {ref.name} is not JSON: {error}") from error
    tags = document.get("tags") if isinstance(document, dict) else None
    return [tag for tag in tags or [] if isinstance(tag, str)]
