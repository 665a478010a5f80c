"""A registry front that demands Bearer tokens, as ghcr.io, Docker Hub and quay.io do.

`TokenProxy` serves, on one loopback port, a token endpoint (`/token`) and the distribution API
(`/v2/...`), which it forwards to a real registry only for requests carrying a token it issued.
Without one it answers 401 `WWW-Authenticate: Bearer realm=...,service=...,scope=...`. Tokens
are handed out anonymously, except for repositories under `private_prefixes` (the token
endpoint answers 401, as for a private image). It runs in its own thread and event loop, so it
outlives any test's loop and works for blocking callers too.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections import Counter
from collections.abc import Sequence

import httpx
from aiohttp import web

SERVICE = "test-registry"
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/[^/]+|tags/list)$")
_FORWARDED_HEADERS = ("Content-Type", "Docker-Content-Digest", "Link", "Location", "Etag")
_STARTUP_TIMEOUT = 10.0


class TokenProxy:
    """Token endpoint plus Bearer-guarded proxy in front of `backend_url`."""

    def __init__(self, backend_url: str, *, private_prefixes: Sequence[str] = ("private/",)):
        self.backend_url = backend_url
        self.private_prefixes = tuple(private_prefixes)
        self.token_requests: Counter[str] = Counter()  # by scope
        self.registry_requests: Counter[str] = Counter()  # by method
        self._tokens: dict[str, str] = {}  # token -> repository it grants
        self._failures: list[int] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="token-proxy", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._client: httpx.AsyncClient | None = None
        self.url = ""

    @property
    def host(self) -> str:
        """host:port, as it appears in an image reference."""
        return self.url.removeprefix("http://")

    def start(self) -> None:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(_STARTUP_TIMEOUT)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(_STARTUP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_STARTUP_TIMEOUT)
        self._loop.close()

    def fail_next(self, *statuses: int) -> None:
        """Answer the next registry requests with these statuses (transient faults)."""
        self._loop.call_soon_threadsafe(self._failures.extend, statuses)

    def reset(self) -> None:
        """Forget counters and pending faults between tests (tokens stay valid)."""
        self.token_requests.clear()
        self.registry_requests.clear()
        self._loop.call_soon_threadsafe(self._failures.clear)

    async def _start(self) -> int:
        self._client = httpx.AsyncClient(base_url=self.backend_url, timeout=10)
        app = web.Application()
        app.router.add_get("/token", self._token)
        app.router.add_route("*", "/v2/{tail:.*}", self._registry)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.aclose()

    async def _token(self, request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        self.token_requests[scope] += 1
        if request.query.get("service") != SERVICE:
            return web.json_response({"details": "unknown service"}, status=400)
        repository = scope.split(":")[1] if scope.count(":") == 2 else ""
        if repository.startswith(self.private_prefixes):
            return web.json_response({"details": "access denied"}, status=401)
        token = secrets.token_hex(16)
        self._tokens[token] = repository
        return web.json_response({"token": token, "access_token": token, "expires_in": 300})

    async def _registry(self, request: web.Request) -> web.StreamResponse:
        self.registry_requests[request.method] += 1
        if self._failures:
            return web.Response(status=self._failures.pop(0), text="injected fault")
        matched = _REPOSITORY_PATH.match(request.path)
        repository = matched["name"] if matched else ""
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._tokens.get(token) != repository:
            return self._challenge(repository)
        return await self._forward(request)

    def _challenge(self, repository: str) -> web.Response:
        challenge = f'Bearer realm="{self.url}/token",service="{SERVICE}"'
        if repository:
            challenge += f',scope="repository:{repository}:pull"'
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={"WWW-Authenticate": challenge},
        )

    async def _forward(self, request: web.Request) -> web.Response:
        if self._client is None:
            raise RuntimeError("TokenProxy is not started")
        response = await self._client.request(
            request.method,
            request.path_qs,
            headers={"Accept": request.headers.get("Accept", "*/*")},
        )
        headers = {h: response.headers[h] for h in _FORWARDED_HEADERS if h in response.headers}
        body = b"" if request.method == "HEAD" else response.content
        return web.Response(status=response.status_code, body=body, headers=headers)
