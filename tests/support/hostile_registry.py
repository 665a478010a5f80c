"""A registry at its most hostile within what the client accepts, on a `HostileServer`.

- its tag moves on every HEAD: each check sees a new manifest and a new config blob, so no
  cache hit ever saves a fetch;
- every config blob is as large as the client accepts, full of labels no check reads;
- every blob is redirected to another repository's path, whose challenge names that
  repository's scope (a client keying tokens by the path gets a new token per redirect);
- every challenge names a new token realm, and every token is as long as the client accepts,
  "lasts" for ever and works once, so the client fetches (and may keep) a token per request.

It counts what it served (`counts`). Used by the memory benchmark (tests/benchmark/memory.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections import Counter, OrderedDict
from typing import TypeVar

from .hostile_http import HostileServer, Request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPOSITORY = "team/app"
TAG = "1.0.0"
V = TypeVar("V")
_KEEP = 4096  # manifests and tokens the double remembers (it must not grow either)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    def __init__(self, server: HostileServer, *, config_bytes: int, token_chars: int) -> None:
        self.server = server
        self.token_chars = token_chars
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._serial = itertools.count()
        self._manifests: OrderedDict[str, bytes] = OrderedDict()
        self._configs: OrderedDict[str, int] = OrderedDict()  # config digest -> serial
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self._head = b'{"architecture": "amd64", "os": "linux", "config": {"User": "1000", '
        self._head += b'"ExposedPorts": {"8888/tcp": {}}, "Labels": {'
        tail = b'}, "Hostname": "000000000000"}}'
        label = b'"org.example.label-%07d": "v"'
        count = (config_bytes - len(self._head) - len(tail)) // (len(label % 0) + 2)
        self._labels = b", ".join(label % index for index in range(count))
        assert len(self.config(0)) <= config_bytes
        server.fallback = self.handle

    @property
    def reference(self) -> str:
        return f"{self.server.host}/{REPOSITORY}:{TAG}"

    def config(self, serial: int) -> bytes:
        return self._head + self._labels + b'}, "Hostname": "%012d"}}' % serial

    def _remember(self, store: OrderedDict[str, V], key: str, value: V) -> None:
        store[key] = value
        while len(store) > _KEEP:
            store.popitem(last=False)

    def _new_image(self) -> tuple[str, bytes]:
        serial = next(self._serial)
        config = self.config(serial)
        descriptor = {"mediaType": "x", "digest": _sha(config), "size": len(config)}
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor, "layers": []}
        ).encode()
        with self._lock:
            self._remember(self._configs, _sha(config), serial)
            self._remember(self._manifests, _sha(manifest), manifest)
        return _sha(manifest), manifest

    def _token(self, request: Request) -> None:
        with self._lock:
            serial = next(self._serial)
            token = "t" * (self.token_chars - 12) + f"{serial:012d}"
            self._remember(self._tokens, token, None)
        self.counts["tokens"] += 1
        body = json.dumps({"token": token, "expires_in": 10**9}).encode()
        request.answer(200, body, Content_Type="application/json")

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            return self._tokens.pop(token, False) is None  # each token works once

    def handle(self, request: Request) -> None:
        try:
            self._handle(request)
        except (BrokenPipeError, ConnectionResetError):  # the client's deadline cut it off
            request.close_connection = True

    def _handle(self, request: Request) -> None:
        path = request.path.split("?", 1)[0]
        if path.startswith("/token/"):
            self._token(request)
            return
        parts = path.removeprefix("/v2/").split("/")
        repository, kind = "/".join(parts[:-2]), parts[-2] if len(parts) > 2 else ""
        if not self._authorized(request):
            with self._lock:
                realm = f"{self.server.url}/token/{next(self._serial)}"
            challenge = (
                f'Bearer realm="{realm}",service="hostile",scope="repository:{repository}:pull"'
            )
            request.answer(401, b"", WWW_Authenticate=challenge)
            return
        if kind == "manifests" and request.command == "HEAD" and parts[-1] == TAG:
            self.counts["HEAD"] += 1
            digest, manifest = self._new_image()
            headers = {"Content_Type": OCI_MANIFEST, "Docker_Content_Digest": digest}
            request.answer(200, manifest, **headers)
            return
        if kind == "manifests" and (known := self._manifests.get(parts[-1])) is not None:
            request.answer(200, known, Content_Type=OCI_MANIFEST)
            return
        if kind == "blobs" and repository == REPOSITORY:
            with self._lock:
                elsewhere = f"/v2/elsewhere-{next(self._serial)}/blobs/{parts[-1]}"
            request.answer(307, b"", Location=elsewhere)
            return
        if kind == "blobs" and (serial := self._configs.get(parts[-1])) is not None:
            self.counts["config blobs"] += 1
            request.answer(200, self.config(serial))
            return
        request.answer(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')
