"""Anonymous access to registries that use the Docker token flow (ghcr.io, Docker Hub, quay.io).

A registry that wants a token answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,
scope=...`; a GET on the realm without credentials returns a pull token for public images.
`AnonymousTokenAuth` does that inside httpx's auth flow and caches tokens per (registry, scope).
When a registry asks for Basic auth, or its token service refuses, the flow stops and the last
response (the 401, or the token service's refusal) is what the caller sees.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import httpx

from .registry_http import settle
from .registry_net import TargetRefused

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/[^/]+|tags/list)$")
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the Docker token specification
_EXPIRY_MARGIN = 10.0
MARKER_EXTENSION = "renku_env_operator.token_request"  # request extension marking token requests


class TokenResponseError(Exception):
    """The token service answered 200 with something that is not a token."""


@dataclass(frozen=True)
class Challenge:
    """One parsed WWW-Authenticate challenge."""

    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)


def parse_challenge(header: str) -> Challenge | None:
    """Parse `Bearer realm="...",service="...",scope="..."`; None for an empty header."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}
    return Challenge(scheme=scheme.lower(), params=params)


def is_token_response(response: httpx.Response) -> bool:
    """Whether a response came from a token service (it refused) rather than the registry."""
    return bool(response.request.extensions.get(MARKER_EXTENSION, False))


def pull_scope(url: httpx.URL) -> str:
    """The token scope a distribution API request needs ("" for /v2/ itself)."""
    matched = _REPOSITORY_PATH.match(url.path)
    return f"repository:{matched['name']}:pull" if matched else ""


class AnonymousTokenAuth(httpx.Auth):
    """httpx auth flow: anonymous Bearer tokens, fetched on a challenge and cached."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_body: int = 64 * 1024
    ) -> None:
        self._clock = clock
        self._max_body = max_body
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def _cached(self, key: tuple[str, str]) -> str | None:
        token, expires = self._tokens.get(key, ("", 0.0))
        return token if token and self._clock() < expires else None

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        key = (request.url.netloc.decode(), pull_scope(request.url))
        token = self._cached(key)
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if response.status_code != 401 or challenge is None or challenge.scheme != "bearer":
            return
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            return  # not a token flow we can follow: the caller sees the 401
        if realm.startswith("http://") and request.url.scheme == "https":
            raise TargetRefused(
                f"{request.url.host} names the token service {httpx.URL(realm).host} over plain "
                "http: refused, a token fetched in the clear could be stolen or forged (no "
                "downgrade from https to http)"
            )
        await settle(response, 0, truncate=True)  # the 401's body is of no use: read none of it
        params = {k: v for k, v in challenge.params.items() if k in ("service", "scope")}
        params.setdefault("scope", key[1])
        # A request built here gets no client defaults: carry the timeout over explicitly.
        extensions = {"timeout": request.extensions.get("timeout", {}), MARKER_EXTENSION: True}
        token_response = yield httpx.Request("GET", realm, params=params, extensions=extensions)
        if token_response.status_code != 200:
            return  # refused or failing: the caller judges the token service's answer
        # A token answer is a small JSON document: read at most max_body bytes of it.
        body = await settle(token_response, self._max_body)
        token, lifetime = _parse_token(body)
        self._tokens[key] = (token, self._clock() + max(lifetime - _EXPIRY_MARGIN, 0.0))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _parse_token(content: bytes) -> tuple[str, float]:
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenResponseError(f"token service answered non-JSON: {error}") from error
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenResponseError("token service answered without a token")
    lifetime = body.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, float(lifetime)
