"""Build small synthetic images and push them to a registry with httpx.

Each platform gets its own tiny gzipped tar layer and config blob, so every platform manifest
has its own digest. Several platforms make an index (OCI image index or Docker manifest list).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"

MediaTypes = Literal["oci", "docker"]
_TYPES = {
    "oci": (OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
    "docker": (DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tar_gz(name: str, content: bytes) -> tuple[bytes, bytes]:
    """A deterministic one-file layer: (gzipped tar, uncompressed tar for the diff id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0), raw.getvalue()


def _platform(text: str) -> dict[str, str]:
    os_, arch, *variant = text.split("/")
    platform = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant[0]
    return platform


def _encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode()


class Pusher:
    """Pushes blobs and manifests to one repository with the monolithic upload."""

    def __init__(self, client: httpx.Client, repo: str) -> None:
        self.client = client
        self.repo = repo

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        if self.client.head(f"/v2/{self.repo}/blobs/{digest}").status_code != 200:
            started = self.client.post(f"/v2/{self.repo}/blobs/uploads/")
            started.raise_for_status()
            # params= would drop the upload's _state query; merge the digest into it instead.
            url = httpx.URL(started.headers["Location"]).copy_merge_params({"digest": digest})
            headers = {"Content-Type": "application/octet-stream"}
            self.client.put(url, content=data, headers=headers).raise_for_status()
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def manifest(self, document: Mapping[str, Any], reference: str | None = None) -> dict[str, Any]:
        body = _encode(document)
        digest = sha256(body)
        response = self.client.put(
            f"/v2/{self.repo}/manifests/{reference or digest}",
            content=body,
            headers={"Content-Type": document["mediaType"]},
        )
        response.raise_for_status()
        if response.headers.get("Docker-Content-Digest", digest) != digest:
            raise RuntimeError(f"registry stored {response.headers['Docker-Content-Digest']}")
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(body)}


def _platform_manifest(
    pusher: Pusher, platform: str, config: Mapping[str, Any], kind: MediaTypes, padding: int
) -> dict[str, Any]:
    _, manifest_type, config_type, layer_type = _TYPES[kind]
    layer, diff = _tar_gz("hello.txt", f"{platform} {json.dumps(config)}".encode())
    image_config = {
        **_platform(platform),
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": [sha256(diff)]},
        "history": [{"created_by": "synthetic test image", "comment": "x" * padding}],
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": pusher.blob(_encode(image_config), config_type),
        "layers": [pusher.blob(layer, layer_type)],
    }
    return {"manifest": manifest, "platform": _platform(platform)}


def _attestation(pusher: Pusher, subject: str) -> dict[str, Any]:
    """An entry like buildx's provenance attestation: platform unknown/unknown."""
    statement = pusher.blob(b'{"_type": "https://in-toto.io/Statement/v0.1"}', IN_TOTO)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": pusher.blob(b"{}", OCI_CONFIG),
        "layers": [statement],
    }
    descriptor = pusher.manifest(manifest)
    descriptor["platform"] = {"os": "unknown", "architecture": "unknown"}
    descriptor["annotations"] = {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": subject,
    }
    return descriptor


def push_image(
    registry_url: str,
    repo: str,
    tag: str,
    *,
    platforms: Sequence[str] = ("linux/amd64",),
    config: Mapping[str, Any] | None = None,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    media_types: MediaTypes = "oci",
    index: bool | None = None,
    attestation: bool = False,
    config_padding: int = 0,
    auth: tuple[str, str] | None = None,
) -> str:
    """Push a synthetic image and return the digest `tag` now points to.

    `config` is the image config (User, ExposedPorts, WorkingDir, Entrypoint, Cmd, ...);
    `configs` gives some platforms ("linux/arm64") their own config instead.
    `index` defaults to True for several platforms; `attestation` adds a buildx-style
    attestation entry to the index; `config_padding` makes the config blob that much bigger.
    """
    with httpx.Client(base_url=registry_url, auth=auth, timeout=10) as client:
        pusher = Pusher(client, repo)
        built = [
            _platform_manifest(
                pusher, p, (configs or {}).get(p, config or {}), media_types, config_padding
            )
            for p in platforms
        ]
        if not (index if index is not None else len(built) > 1 or attestation):
            return str(pusher.manifest(built[0]["manifest"], tag)["digest"])
        children = [
            {**pusher.manifest(item["manifest"]), "platform": item["platform"]} for item in built
        ]
        if attestation:
            children.append(_attestation(pusher, children[0]["digest"]))
        document = {"schemaVersion": 2, "mediaType": _TYPES[media_types][0], "manifests": children}
        return str(pusher.manifest(document, tag)["digest"])
