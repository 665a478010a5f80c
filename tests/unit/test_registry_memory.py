"""What the registry client keeps between checks stays bounded (issue 19, finding 1).

A registry whose tag moves on every HEAD serves a large config blob full of labels, and hands
out large tokens with long lifetimes for a new scope every time: the client's memory after
many checks is measured with tracemalloc, and must not grow with the number of checks.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import tracemalloc
from collections.abc import Callable

import httpx

from renku_env_operator.clients.registry import RegistryClient
from renku_env_operator.domain.images import parse_image_reference

HOST = "registry.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MIB = 1024 * 1024
CHECKS = 8


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# About 3.5 MiB of labels (none of them read by any check), made once.
LABELS = json.dumps({f"org.example.label-{index:06d}": "v" for index in range(110_000)}).encode()


def labelled_config(serial: int) -> bytes:
    """A config blob full of labels; `serial` makes its digest new."""
    head = b'{"architecture": "amd64", "os": "linux", "config": {"User": "1000", "Labels": '
    return head + LABELS + b', "Hostname": "%d"}}' % serial


class MovingTagRegistry:
    """Every HEAD of the tag answers a new digest: a new manifest and a new config blob."""

    def __init__(self) -> None:
        self.serial = itertools.count()
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}

    def _new_image(self) -> str:
        config = labelled_config(next(self.serial))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": sha(config), "size": len(config)},
                "layers": [],
            }
        ).encode()
        # Only the latest image is served: the test double itself holds one config at a time.
        self.blobs = {sha(config): config}
        self.manifests = {sha(manifest): manifest}
        return sha(manifest)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v2/team/app/")
        if request.method == "HEAD" and path == "manifests/1.0.0":
            digest = self._new_image()
            headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest}
            return httpx.Response(200, headers=headers)
        if path.startswith("manifests/"):
            body = self.manifests.get(path.removeprefix("manifests/"))
            if body is not None:
                return httpx.Response(200, content=body, headers={"Content-Type": OCI_MANIFEST})
        if path.startswith("blobs/") and (blob := self.blobs.get(path.removeprefix("blobs/"))):
            return httpx.Response(200, content=blob)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})


async def retained_after(checks: int, make: Callable[[], RegistryClient]) -> int:
    """Bytes still allocated (tracemalloc) after `checks` inspections, the client alive."""
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    gc.collect()
    tracemalloc.start()
    try:
        async with make() as client:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(checks):
                await client.inspect(ref)
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def test_a_tag_that_moves_on_every_head_keeps_no_config_labels() -> None:
    registry = MovingTagRegistry()

    def make() -> RegistryClient:
        return RegistryClient(transport=httpx.MockTransport(registry), retry_attempts=1)

    retained = await retained_after(CHECKS, make)
    retained -= sum(map(len, registry.blobs.values()))  # the double's own copy of the latest
    # Before the fix: about 11 MiB more per check (every label of every config, parsed, kept).
    assert retained < MIB, f"{retained / MIB:.1f} MiB kept after {CHECKS} checks"
