"""RegistryClient against an in-memory registry (httpx.MockTransport): the paths a real
registry cannot be made to take on demand (retries, rate limits, lying or huge responses,
token services), and the Bearer auth flow in detail. The happy paths against a real registry
are in tests/integration/test_registry_client.py."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from renku_env_operator import metrics
from renku_env_operator.clients.registry import (
    ImageNotFoundError,
    ImageNotPublicError,
    InvalidImageError,
    RegistryClient,
    RegistryError,
    RegistryNotAllowedError,
    RegistryResponseTooLargeError,
    RegistryUnavailableError,
)
from renku_env_operator.clients.registry_auth import AnonymousTokenAuth, parse_challenge
from renku_env_operator.domain.images import parse_image_reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HOST = "registry.test"
REF = parse_image_reference(f"{HOST}/team/app:1.0.0")
Handler = Callable[[httpx.Request], httpx.Response | None]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeRegistry:
    """An in-memory registry with one single-platform image; `before` hooks inject faults."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": config or {"User": "1000"}}
        ).encode()
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": sha(self.config), "size": len(self.config)},
                "layers": [],
            }
        ).encode()
        self.digest = sha(self.manifest)
        self.tags: dict[str, str] = {"1.0.0": self.digest}
        self.before: list[Handler] = []
        self.requests: Counter[str] = Counter()
        self.send_digest_header = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests[f"{request.method} {request.url.path}"] += 1
        for hook in self.before:
            response = hook(request)
            if response is not None:
                return response
        path = request.url.path.removeprefix("/v2/team/app/")
        if path.startswith("manifests/"):
            return self._manifest(request, path.removeprefix("manifests/"))
        if path == f"blobs/{sha(self.config)}":
            return httpx.Response(200, content=self.config)
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    def _manifest(self, request: httpx.Request, reference: str) -> httpx.Response:
        digest = self.tags.get(reference, reference)
        if digest != self.digest:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        headers = {"Content-Type": OCI_MANIFEST}
        if self.send_digest_header:
            headers["Docker-Content-Digest"] = digest
        content = b"" if request.method == "HEAD" else self.manifest
        return httpx.Response(200, content=content, headers=headers)


def client(registry: FakeRegistry, **options: Any) -> RegistryClient:
    defaults: dict[str, Any] = {
        "transport": httpx.MockTransport(registry),
        "retry_attempts": 3,
        "retry_wait_initial": 0.001,
        "retry_wait_max": 0.01,
    }
    return RegistryClient(**{**defaults, **options})


def status_once(status: int, times: int = 1, **headers: str) -> Handler:
    remaining = [times]

    def hook(request: httpx.Request) -> httpx.Response | None:
        if remaining[0] <= 0:
            return None
        remaining[0] -= 1
        return httpx.Response(status, headers=headers)

    return hook


def requests_counted(method: str, status: str) -> float:
    value = metrics.REGISTRY_REQUESTS.labels(method, status)._value.get()
    return float(value)


async def test_inspect_single_platform_image() -> None:
    registry = FakeRegistry({"User": "1000", "WorkingDir": "/work"})
    async with client(registry) as registry_client:
        facts = await registry_client.inspect(REF)
    assert facts.digest == registry.digest
    assert [str(p) for p in facts.platforms] == ["linux/amd64"]
    assert (facts.config.user, facts.config.working_dir) == ("1000", "/work")


async def test_cached_by_digest_so_a_second_inspect_is_one_head() -> None:
    registry = FakeRegistry()
    async with client(registry) as registry_client:
        await registry_client.inspect(REF)
        registry.requests.clear()
        await registry_client.inspect(REF)
    assert registry.requests == Counter({"HEAD /v2/team/app/manifests/1.0.0": 1})


async def test_without_digest_header_the_manifest_is_hashed() -> None:
    registry = FakeRegistry()
    registry.send_digest_header = False
    async with client(registry) as registry_client:
        facts = await registry_client.inspect(REF)
    assert facts.digest == registry.digest


async def test_transient_errors_are_retried_and_counted() -> None:
    registry = FakeRegistry()
    registry.before.append(status_once(503, times=2))
    before = requests_counted("HEAD", "503")
    async with client(registry) as registry_client:
        facts = await registry_client.inspect(REF)
    assert facts.digest == registry.digest
    assert requests_counted("HEAD", "503") - before == 2


async def test_persistent_5xx_becomes_unavailable_after_the_attempts() -> None:
    registry = FakeRegistry()
    registry.before.append(status_once(502, times=100))
    async with client(registry, retry_attempts=3) as registry_client:
        with pytest.raises(RegistryUnavailableError, match="keeps answering 502"):
            await registry_client.inspect(REF)
    assert registry.requests.total() == 3


async def test_long_retry_after_is_not_waited_for() -> None:
    registry = FakeRegistry()
    registry.before.append(status_once(429, times=100, **{"Retry-After": "3600"}))
    async with client(registry) as registry_client:
        with pytest.raises(RegistryUnavailableError, match="429"):
            await registry_client.inspect(REF)
    assert registry.requests.total() == 1


async def test_short_retry_after_is_honoured() -> None:
    registry = FakeRegistry()
    registry.before.append(status_once(429, times=1, **{"Retry-After": "0"}))
    async with client(registry) as registry_client:
        assert (await registry_client.inspect(REF)).digest == registry.digest


async def test_transport_errors_become_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    before = requests_counted("HEAD", "error")
    transport = httpx.MockTransport(refuse)
    async with client(FakeRegistry(), transport=transport, retry_attempts=2) as registry_client:
        with pytest.raises(RegistryUnavailableError, match=f"cannot reach {HOST}"):
            await registry_client.inspect(REF)
    assert requests_counted("HEAD", "error") - before == 2


async def test_not_found_names_the_reference() -> None:
    async with client(FakeRegistry()) as registry_client:
        with pytest.raises(ImageNotFoundError, match=r"team/app:9\.9\.9.*MANIFEST_UNKNOWN"):
            await registry_client.inspect(REF.with_tag("9.9.9"))


async def test_unexpected_status_is_a_registry_error() -> None:
    registry = FakeRegistry()
    registry.before.append(status_once(400))
    async with client(registry) as registry_client:
        with pytest.raises(RegistryError, match="answered 400") as error:
            await registry_client.inspect(REF)
    assert type(error.value) is RegistryError


async def test_streamed_manifest_over_the_limit_is_refused() -> None:
    registry = FakeRegistry()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield registry.manifest

    def chunked(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and "manifests" in request.url.path:
            # No Content-Length: the limit must hold while streaming.
            return httpx.Response(200, content=chunks())
        return None

    registry.before.append(chunked)
    async with client(registry, max_manifest_bytes=len(registry.manifest) * 2) as registry_client:
        with pytest.raises(RegistryResponseTooLargeError, match="too large"):
            await registry_client.inspect(REF)


async def test_config_over_the_limit_is_refused_before_download() -> None:
    registry = FakeRegistry()
    async with client(registry, max_config_bytes=10) as registry_client:
        with pytest.raises(
            RegistryResponseTooLargeError, match=r"config blob .* over the limit of 10"
        ):
            await registry_client.inspect(REF)
    assert not any("blobs" in key for key in registry.requests)


async def test_manifest_with_the_wrong_digest_is_refused() -> None:
    registry = FakeRegistry()
    registry.before.append(
        lambda r: httpx.Response(200, json={"schemaVersion": 2}) if r.method == "GET" else None
    )
    async with client(registry) as registry_client:
        with pytest.raises(InvalidImageError, match="does not match digest"):
            await registry_client.inspect(REF)


async def test_pinned_digest_that_the_registry_does_not_serve_is_refused() -> None:
    registry = FakeRegistry()
    other = "sha256:" + "0" * 64
    registry.before.append(
        lambda r: httpx.Response(200, headers={"Docker-Content-Digest": registry.digest})
    )
    async with client(registry) as registry_client:
        with pytest.raises(InvalidImageError, match="serves digest"):
            await registry_client.inspect(REF.with_digest(other))


async def test_schema1_manifest_is_unsupported() -> None:
    registry = FakeRegistry()
    schema1 = b'{"schemaVersion": 1, "name": "team/app", "fsLayers": []}'
    registry.manifest = schema1
    registry.digest = registry.tags["1.0.0"] = sha(schema1)
    async with client(registry) as registry_client:
        with pytest.raises(InvalidImageError, match="unsupported manifest format"):
            await registry_client.inspect(REF)


def bearer_registry(
    registry: FakeRegistry, refuse: bool = False, token: Any = "t0k"
) -> Counter[str]:
    """Put a token flow in front of `registry`; returns the token requests by scope."""
    issued: Counter[str] = Counter()

    def guard(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "auth.test":
            scope = request.url.params.get("scope", "")
            issued[scope] += 1
            if refuse:
                return httpx.Response(401, json={"details": "no anonymous access"})
            return httpx.Response(200, json={"token": token, "expires_in": 300})
        if request.headers.get("Authorization") != f"Bearer {token}":
            challenge = (
                'Bearer realm="https://auth.test/token",service="registry.test",'
                'scope="repository:team/app:pull"'
            )
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return None

    registry.before.append(guard)
    return issued


async def test_bearer_challenge_gets_an_anonymous_token_once_per_scope() -> None:
    registry = FakeRegistry()
    issued = bearer_registry(registry)
    async with client(registry) as registry_client:
        await registry_client.inspect(REF)
        await registry_client.inspect(REF)
    assert issued == Counter({"repository:team/app:pull": 1})


async def test_refused_token_means_not_public() -> None:
    registry = FakeRegistry()
    bearer_registry(registry, refuse=True)
    async with client(registry) as registry_client:
        with pytest.raises(ImageNotPublicError, match=r"token service auth\.test refused") as error:
            await registry_client.inspect(REF)
    assert "must be public" in str(error.value)


async def test_malformed_token_response_is_a_registry_error() -> None:
    registry = FakeRegistry()
    bearer_registry(registry, token=None)
    async with client(registry) as registry_client:
        with pytest.raises(RegistryError, match="without a token"):
            await registry_client.inspect(REF)


async def test_basic_challenge_means_not_public() -> None:
    registry = FakeRegistry()
    registry.before.append(
        lambda r: httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    )
    async with client(registry) as registry_client:
        with pytest.raises(ImageNotPublicError, match="Basic login"):
            await registry_client.inspect(REF)


async def test_list_tags_follows_link_pagination() -> None:
    pages = {
        "": (["1.0.0", "1.1.0"], '</v2/team/app/tags/list?last=1.1.0&n=2>; rel="next"'),
        "1.1.0": (["2.0.0"], None),
    }

    def tags(request: httpx.Request) -> httpx.Response:
        names, link = pages[request.url.params.get("last", "")]
        headers = {"Link": link} if link else {}
        return httpx.Response(200, json={"name": "team/app", "tags": names}, headers=headers)

    async with client(FakeRegistry(), transport=httpx.MockTransport(tags)) as registry_client:
        assert await registry_client.list_tags(REF) == ["1.0.0", "1.1.0", "2.0.0"]


async def test_list_tags_is_bounded() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        link = '</v2/team/app/tags/list?last=x&n=1>; rel="next"'
        return httpx.Response(200, json={"tags": ["x"]}, headers={"Link": link})

    transport = httpx.MockTransport(endless)
    async with client(FakeRegistry(), transport=transport, max_tag_pages=3) as registry_client:
        assert await registry_client.list_tags(REF) == ["x", "x", "x"]


async def test_tokens_expire() -> None:
    now = [0.0]
    issued: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            issued[request.url.params["scope"]] += 1
            return httpx.Response(200, json={"access_token": f"t{len(issued)}", "expires_in": 60})
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return httpx.Response(200)
        return httpx.Response(
            401, headers={"WWW-Authenticate": 'Bearer realm="https://a.test/token"'}
        )

    auth = AnonymousTokenAuth(clock=lambda: now[0])
    url = "https://r.test/v2/x/manifests/1"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), auth=auth) as http:
        await http.get(url)
        now[0] = 40.0  # within 60 s minus the safety margin
        await http.get(url)
        now[0] = 55.0
        await http.get(url)
    assert issued == Counter({"repository:x:pull": 2})


@pytest.mark.parametrize(
    ("header", "scheme", "params"),
    [
        (
            'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"',
            "bearer",
            {
                "realm": "https://ghcr.io/token",
                "service": "ghcr.io",
                "scope": "repository:a/b:pull",
            },
        ),
        (
            'Bearer realm="https://auth.docker.io/token", service="registry.docker.io"',
            "bearer",
            {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"},
        ),
        ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
        ('Bearer scope="repository:a:pull,push"', "bearer", {"scope": "repository:a:pull,push"}),
    ],
)
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    challenge = parse_challenge(header)
    assert challenge is not None
    assert (challenge.scheme, challenge.params) == (scheme, params)


def test_parse_empty_challenge() -> None:
    assert parse_challenge("") is None


# --- what a registry may not make the client do (no network: MockTransport) ---


def redirecting(location: str) -> Handler:
    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == HOST and request.url.path.endswith("/manifests/1.0.0"):
            return httpx.Response(302, headers={"Location": location})
        return None

    return hook


async def test_a_redirect_from_https_to_http_is_refused() -> None:
    registry = FakeRegistry()
    registry.before.append(redirecting(f"http://{HOST}/v2/team/app/manifests/1.0.0"))
    async with client(registry) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match="no downgrade from https to http"):
            await registry_client.inspect(REF)
    assert registry.requests == Counter({"HEAD /v2/team/app/manifests/1.0.0": 1})


async def test_a_redirect_to_another_scheme_is_refused() -> None:
    registry = FakeRegistry()
    registry.before.append(redirecting("file:///etc/passwd"))
    async with client(registry) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match="redirect to file"):
            await registry_client.inspect(REF)


async def test_redirects_are_limited() -> None:
    hops: list[str] = []

    def loop(request: httpx.Request) -> httpx.Response:
        hops.append(str(request.url))
        return httpx.Response(307, headers={"Location": f"/hop/{len(hops)}"})

    async with client(FakeRegistry(), transport=httpx.MockTransport(loop)) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match="more than 3 redirects"):
            await registry_client.inspect(REF)
    assert len(hops) == 4  # the request and three redirects, not one more


async def test_a_cdn_redirect_is_followed_and_a_redirect_loop_is_not() -> None:
    registry = FakeRegistry()
    registry.before.append(
        lambda r: (
            httpx.Response(302, headers={"Location": "/v2/team/app/manifests/1.0.0"})
            if r.url.path == "/moved"
            else None
        )
    )
    registry.before.append(redirecting("https://registry.test/moved"))
    async with client(registry) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match="more than 3 redirects"):
            await registry_client.inspect(REF)
    # A CDN-style redirect that ends somewhere is fine: one hop to another https path.
    plain = FakeRegistry()
    plain.before.append(
        lambda r: (
            httpx.Response(307, headers={"Location": f"https://cdn.test{r.url.path}"})
            if r.url.host == HOST and "blobs" in r.url.path
            else None
        )
    )
    plain.before.append(
        lambda r: httpx.Response(200, content=plain.config) if r.url.host == "cdn.test" else None
    )
    async with client(plain) as registry_client:
        assert (await registry_client.inspect(REF)).digest == plain.digest


async def test_a_token_realm_over_plain_http_is_refused_for_an_https_registry() -> None:
    registry = FakeRegistry()
    challenge = 'Bearer realm="http://auth.registry.test/token",service="registry.test"'
    registry.before.append(
        lambda r: (
            httpx.Response(401, headers={"WWW-Authenticate": challenge})
            if r.url.host == HOST
            else None
        )
    )
    async with client(registry) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match=r"token service auth\.registry\.test"):
            await registry_client.inspect(REF)
    assert not any("token" in key for key in registry.requests)


async def test_a_tag_page_on_another_origin_is_refused() -> None:
    def tags(request: httpx.Request) -> httpx.Response:
        link = '<https://evil.test/v2/team/app/tags/list?last=x>; rel="next"'
        return httpx.Response(200, json={"tags": ["1.0.0"]}, headers={"Link": link})

    async with client(FakeRegistry(), transport=httpx.MockTransport(tags)) as registry_client:
        with pytest.raises(RegistryNotAllowedError, match="another origin"):
            await registry_client.list_tags(REF)


async def test_a_compressed_answer_is_refused() -> None:
    registry = FakeRegistry()
    registry.send_digest_header = False
    registry.before.append(
        lambda r: (
            httpx.Response(200, content=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})
            if r.method == "GET"
            else None
        )
    )
    async with client(registry) as registry_client:
        with pytest.raises(RegistryResponseTooLargeError, match="compressed with gzip"):
            await registry_client.inspect(REF)


async def test_a_digest_that_is_not_a_digest_never_becomes_a_path() -> None:
    registry = FakeRegistry()
    registry.before.append(
        lambda r: (
            httpx.Response(
                200, headers={"Docker-Content-Digest": "sha256:../../../../v2/other/manifests/x"}
            )
            if r.method == "HEAD"
            else None
        )
    )
    async with client(registry) as registry_client:
        with pytest.raises(InvalidImageError, match="malformed digest"):
            await registry_client.inspect(REF)
    assert all(".." not in key for key in registry.requests)
