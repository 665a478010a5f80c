"""Anonymous access to registries that use the Docker token flow (ghcr.io, Docker Hub, quay.io).

A registry that wants a token answers 401 with `WWW-Authenticate: Bearer realm=...,service=...,
scope=...`; a GET on the realm without credentials returns a pull token for public images.
`AnonymousTokenAuth` does that inside httpx's auth flow and caches tokens per (realm, service,
scope), the scope being the one the client asks for (the repository of the image it checks,
`SCOPE_EXTENSION`), never a repository read from a redirect's path or a challenge. The cache is
bounded by entries and bytes, expired tokens are dropped, and tokens longer than
`max_token_chars` are refused: a registry that hands out a new large token for every request
cannot grow the operator's memory. When a registry asks for Basic auth, or its token service
refuses, the flow stops and the last response (the 401, or the token service's refusal) is
what the caller sees.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import httpx

from .registry_cache import BoundedCache
from .registry_http import settle
from .registry_net import TargetRefused

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_REPOSITORY_PATH = re.compile(r"^/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/[^/]+|tags/list)$")
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the Docker token specification
_EXPIRY_MARGIN = 10.0
MARKER_EXTENSION = "renku_env_operator.token_request"  # request extension marking token requests
SCOPE_EXTENSION = "renku_env_operator.scope"  # request extension: the scope the client wants
MAX_TOKEN_LIFETIME = 3600.0  # seconds a token is kept at most, whatever the service says
MAX_TOKEN_CHARS = 16 * 1024  # real anonymous tokens (JWTs) are 1-4 KiB
MAX_REALM_CHARS = 2048  # of a challenge's realm and service: they are kept as cache keys


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
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_body: int = 64 * 1024,
        max_token_chars: int = MAX_TOKEN_CHARS,
        cache_entries: int = 512,
        cache_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self._clock = clock
        self._max_body = max_body
        self._max_token_chars = max_token_chars
        self._tokens: BoundedCache[tuple[str, str, str], str] = BoundedCache(
            cache_entries, cache_bytes, clock=clock
        )
        # The token service each host named last, to send a cached token without a new 401.
        self._services: BoundedCache[str, tuple[str, str]] = BoundedCache(
            cache_entries, cache_bytes, clock=clock
        )

    @property
    def tokens(self) -> BoundedCache[tuple[str, str, str], str]:
        """The cached tokens by (realm, service, scope)."""
        return self._tokens

    def _cached(self, host: str, scope: str) -> str | None:
        service = self._services.get(host)
        return self._tokens.get((*service, scope)) if service is not None else None

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        host = request.url.netloc.decode()
        asked = request.extensions.get(SCOPE_EXTENSION)
        scope = asked if isinstance(asked, str) and asked else pull_scope(request.url)
        token = self._cached(host, scope)
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
        service = challenge.params.get("service", "")
        if len(realm) > MAX_REALM_CHARS or len(service) > MAX_REALM_CHARS:
            raise TokenResponseError(
                f"{request.url.host} names a token realm or service longer than "
                f"{MAX_REALM_CHARS} characters"
            )
        await settle(response, 0, truncate=True)  # the 401's body is of no use: read none of it
        # The client's own scope when it said one; else the challenge's, else the path's.
        if not (isinstance(asked, str) and asked):
            scope = challenge.params.get("scope") or scope
        params = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        # A request built here gets no client defaults: carry the timeout over explicitly.
        extensions = {"timeout": request.extensions.get("timeout", {}), MARKER_EXTENSION: True}
        token_response = yield httpx.Request("GET", realm, params=params, extensions=extensions)
        if token_response.status_code != 200:
            return  # refused or failing: the caller judges the token service's answer
        # A token answer is a small JSON document: read at most max_body bytes of it.
        body = await settle(token_response, self._max_body)
        token, lifetime = _parse_token(body, self._max_token_chars)
        keep = min(lifetime - _EXPIRY_MARGIN, MAX_TOKEN_LIFETIME)
        if keep > 0:
            expires = self._clock() + keep
            self._tokens.put((realm, service, scope), token, expires=expires)
            self._services.put(host, (realm, service), expires=expires)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _parse_token(content: bytes, max_chars: int) -> tuple[str, float]:
    try:
        body = json.loads(content)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TokenResponseError(f"token service answered non-JSON: {error}") from error
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenResponseError("token service answered without a token")
    if len(token) > max_chars:
        raise TokenResponseError(
            f"token service answered a token of {len(token)} characters, more than the "
            f"{max_chars} accepted"
        )
    lifetime = body.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_TOKEN_LIFETIME
    return token, float(lifetime)
