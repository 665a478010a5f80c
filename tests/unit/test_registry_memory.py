"""What the registry client keeps between checks stays bounded (issue 19, finding 1).

A registry whose tag moves on every HEAD serves a large config blob full of labels, and hands
out large tokens with long lifetimes for a new scope every time: the client's memory after
many checks is measured with tracemalloc, and must not grow with the number of checks.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from renku_env_operator.clients.registry import InvalidImageError, RegistryClient, RegistryError
from renku_env_operator.clients.registry_auth import AnonymousTokenAuth
from renku_env_operator.domain.images import parse_image_reference

HOST = "registry.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MIB = 1024 * 1024
CHECKS = 8


@pytest.fixture(autouse=True)
def no_log_records() -> Iterator[None]:
    """What the client keeps is measured, not the log records pytest keeps of its requests
    (httpx logs each at INFO once an earlier test's kopf.configure lowered the levels)."""
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


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

    keep_all = False

    def __init__(self) -> None:
        self.serial = itertools.count()
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}

    def _config(self, serial: int) -> bytes:
        return labelled_config(serial)

    def _new_image(self) -> str:
        config = self._config(next(self.serial))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": sha(config), "size": len(config)},
                "layers": [],
            }
        ).encode()
        # Only the latest image is served (the test double itself holds one config at a
        # time), unless checks overlap.
        if not self.keep_all:
            self.blobs, self.manifests = {}, {}
        self.blobs[sha(config)] = config
        self.manifests[sha(manifest)] = manifest
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


async def retained_after(
    checks: int, make: Callable[[], RegistryClient], *, allocated_in: str | None = None
) -> int:
    """Bytes still allocated (tracemalloc) after `checks` inspections, the client alive; with
    `allocated_in`, only what was allocated while code of that file was running."""
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    gc.collect()
    tracemalloc.start(16 if allocated_in else 1)  # whole stacks only for the filter
    try:
        async with make() as client:
            start = tracemalloc.take_snapshot()
            for _ in range(checks):
                await client.inspect(ref)
            gc.collect()
            end = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    if allocated_in is not None:
        only = [tracemalloc.Filter(True, f"*/{allocated_in}", all_frames=True)]
        start, end = start.filter_traces(only), end.filter_traces(only)
    return sum(stat.size_diff for stat in end.compare_to(start, "filename"))


async def test_a_tag_that_moves_on_every_head_keeps_no_config_labels() -> None:
    registry = MovingTagRegistry()

    def make() -> RegistryClient:
        return RegistryClient(transport=httpx.MockTransport(registry), retry_attempts=1)

    retained = await retained_after(CHECKS, make)
    retained -= sum(map(len, registry.blobs.values()))  # the double's own copy of the latest
    # Before the fix: about 11 MiB more per check (every label of every config, parsed, kept).
    assert retained < MIB, f"{retained / MIB:.1f} MiB kept after {CHECKS} checks"


TOKEN = "t" * (16 * 1024 - 16)  # just under the length the client accepts


class RedirectingTokenRegistry(MovingTagRegistry):
    """A Bearer registry whose tag moves on every HEAD, that redirects every blob to another
    repository's path and names a new token realm in every challenge, with large tokens that
    (it says) last for ever."""

    def __init__(self) -> None:
        super().__init__()
        self.realms = itertools.count()
        self.tokens_issued = 0

    def _config(self, serial: int) -> bytes:
        return b'{"os": "linux", "architecture": "amd64", "config": {"Hostname": "%d"}}' % serial

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            self.tokens_issued += 1
            token = f"{TOKEN}{self.tokens_issued:08d}"
            return httpx.Response(200, json={"token": token, "expires_in": 10**9})
        if not request.headers.get("Authorization", "").startswith(f"Bearer {TOKEN}"):
            realm = f"https://auth.test/token/{next(self.realms)}"
            challenge = f'Bearer realm="{realm}",service="{HOST}"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        path = request.url.path
        if path.startswith("/v2/team/app/blobs/"):
            target = path.replace("/team/app/", f"/elsewhere-{next(self.realms)}/")
            return httpx.Response(307, headers={"Location": target})
        if path.startswith("/v2/elsewhere-"):
            path = "/v2/team/app/blobs/" + path.rpartition("/")[2]
            request = httpx.Request(request.method, request.url.copy_with(path=path))
        return super().__call__(request)


async def test_tokens_for_new_realms_and_redirects_stay_within_the_cache_bounds() -> None:
    registry = RedirectingTokenRegistry()
    checks = 20

    def make() -> RegistryClient:
        return RegistryClient(transport=httpx.MockTransport(registry), retry_attempts=1)

    retained = await retained_after(checks, make, allocated_in="registry_auth.py")
    # Before the fix: a token kept per redirect (keyed by the path's repository), 20 x 16 KiB
    # and growing with every check. Now one token: the one for team/app, the image's own.
    assert retained < 4 * len(TOKEN), f"{retained / 1024:.0f} KiB kept after {checks} checks"
    assert registry.tokens_issued == 1


def one_use_tokens(lifetime: float) -> Callable[[httpx.Request], httpx.Response]:
    """A token service naming a new realm in every challenge; each token works once."""
    issued: set[str] = set()
    serial = itertools.count()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            token = f"{TOKEN}{next(serial):08d}"
            issued.add(token)
            return httpx.Response(200, json={"token": token, "expires_in": lifetime})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in issued:
            issued.discard(token)
            return httpx.Response(200)
        realm = f"https://auth.test/token/{next(serial)}"
        return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})

    return handler


async def test_the_token_cache_is_bounded_by_entries_and_bytes() -> None:
    auth = AnonymousTokenAuth(cache_entries=8, cache_bytes=64 * 1024)
    transport = httpx.MockTransport(one_use_tokens(lifetime=10**9))
    async with httpx.AsyncClient(transport=transport, auth=auth) as http:
        for index in range(40):
            assert (
                await http.get(f"https://r.test/v2/repo-{index}/manifests/1")
            ).status_code == 200
    assert len(auth.tokens) <= 3  # 64 KiB hold three 16 KiB tokens with their keys
    assert auth.tokens.bytes <= 64 * 1024


async def test_expired_tokens_are_dropped_not_kept_until_evicted() -> None:
    now = [0.0]
    auth = AnonymousTokenAuth(clock=lambda: now[0])
    transport = httpx.MockTransport(one_use_tokens(lifetime=20))
    gc.collect()
    tracemalloc.start()
    try:
        async with httpx.AsyncClient(transport=transport, auth=auth) as http:
            before = tracemalloc.get_traced_memory()[0]
            for index in range(30):
                await http.get(f"https://r.test/v2/repo-{index}/manifests/1")
            now[0] = 100.0  # every token has expired
            await http.get("https://r.test/v2/one-more/manifests/1")
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Before the fix: all 31 tokens kept (about 500 KiB), expired or not.
    assert retained < 4 * len(TOKEN), f"{retained / 1024:.0f} KiB kept, tokens expired"


async def test_a_token_longer_than_accepted_is_refused() -> None:
    registry = RedirectingTokenRegistry()
    transport = httpx.MockTransport(registry)
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    async with RegistryClient(transport=transport, max_token_chars=1024) as client:
        with pytest.raises(RegistryError, match="a token of 16376 characters, more than the 1024"):
            await client.inspect(ref)


class CommandRegistry(MovingTagRegistry):
    """A new image on every HEAD, each with a 60 KiB command line (under the 64 KiB read)."""

    def _config(self, serial: int) -> bytes:
        command = ["sh", "-c", f"echo {serial}; " + "x" * 60_000]
        return json.dumps(
            {"os": "linux", "architecture": "amd64", "config": {"Cmd": command}}
        ).encode()


async def test_the_config_cache_is_bounded_by_its_bytes_too() -> None:
    registry = CommandRegistry()
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    transport = httpx.MockTransport(registry)
    async with RegistryClient(transport=transport, cache_bytes=256 * 1024) as client:
        for _ in range(20):
            facts = await client.inspect(ref)
        assert facts.config.cmd is not None
        assert len(facts.config.cmd[2]) > 60_000
        configs = client.caches["configs"]
        assert 0 < len(configs) <= 4  # 256 KiB hold four 60 KiB commands, not 20
        assert configs.bytes <= 256 * 1024


class HugeIndexRegistry(MovingTagRegistry):
    """An index of 25,000 entries (just under 4 MiB): each would be a Python object."""

    def _new_image(self) -> str:
        entry = {"mediaType": OCI_MANIFEST, "digest": sha(b"x"), "size": 1}
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry] * 25_000}
        ).encode()
        self.manifests = {sha(index): index}
        return sha(index)


async def test_an_index_with_too_many_entries_is_refused_unread() -> None:
    transport = httpx.MockTransport(HugeIndexRegistry())
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    async with RegistryClient(transport=transport) as client:
        with pytest.raises(InvalidImageError, match=r"too many index entries .* more than the 256"):
            await client.inspect(ref)


class ManyPortsRegistry(MovingTagRegistry):
    def _config(self, serial: int) -> bytes:
        ports: dict[str, object] = {f"{port}/tcp": {} for port in range(1, 2000)}
        return json.dumps(
            {"os": "linux", "architecture": "amd64", "config": {"ExposedPorts": ports}}
        ).encode()


async def test_a_config_with_too_many_ports_is_refused_with_the_field_named() -> None:
    transport = httpx.MockTransport(ManyPortsRegistry())
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    async with RegistryClient(transport=transport) as client:
        with pytest.raises(InvalidImageError, match=r"exposed ports \(ExposedPorts\): more than"):
            await client.inspect(ref)


class StreamingRegistry(MovingTagRegistry):
    """Config blobs streamed without a length, slowly: readers overlap; counts how many."""

    keep_all = True

    def __init__(self) -> None:
        super().__init__()
        self.reading = 0
        self.most_at_once = 0

    def _config(self, serial: int) -> bytes:
        return b'{"os": "linux", "architecture": "amd64", "config": {"Hostname": "%d"}}' % serial

    async def _stream(self, body: bytes) -> AsyncIterator[bytes]:
        self.reading += 1
        self.most_at_once = max(self.most_at_once, self.reading)
        try:
            for start in range(0, len(body), 16):
                await asyncio.sleep(0.001)
                yield body[start : start + 16]
        finally:
            self.reading -= 1

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = super().__call__(request)
        if "/blobs/" in request.url.path and response.status_code == 200:
            return httpx.Response(200, content=self._stream(response.content))
        return response


async def test_answers_being_read_at_once_are_bounded_in_bytes_across_registries() -> None:
    registry = StreamingRegistry()
    refs = [parse_image_reference(f"registry-{i % 10}.test/team/app:1.0.0") for i in range(30)]
    async with RegistryClient(transport=httpx.MockTransport(registry)) as client:
        await asyncio.gather(*(client.inspect(ref) for ref in refs))
    # Each unsized answer may be 4 MiB, 8 MiB while it is assembled: the 32 MiB read budget
    # lets 4 be read at once, on ten registries. Before: all 30 (and any number, with checks
    # on as many registries).
    assert 2 < registry.most_at_once <= 4


async def test_one_registry_reads_at_most_a_quarter_of_the_budget_at_once() -> None:
    registry = StreamingRegistry()
    ref = parse_image_reference(f"{HOST}/team/app:1.0.0")
    async with RegistryClient(transport=httpx.MockTransport(registry)) as client:
        await asyncio.gather(*(client.inspect(ref) for _ in range(10)))
    assert registry.most_at_once == 1  # 8 MiB of the 32: one unsized answer of up to 4 MiB
