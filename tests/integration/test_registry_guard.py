"""The registry client cannot be steered inside the cluster, nor made to read or wait forever.

Every byte of traffic stays on loopback: the servers are `HostileServer`s on 127.0.0.1 (and the
tests' docker-registry); targets that must be refused (169.254.169.254, 10.x) are refused
before any connection, which a spying network backend proves.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpcore
import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.clients.registry import (
    ImageNotFoundError,
    ImageNotPublicError,
    RegistryClient,
    RegistryNotAllowedError,
    RegistryResponseTooLargeError,
)
from renku_env_operator.clients.registry_net import resolve
from renku_env_operator.config import Settings
from renku_env_operator.domain.images import ImageReference, parse_image_reference
from renku_env_operator.services.image_verify import ImageVerifier
from renku_env_operator.services.objects import ObjectState
from tests.support.hostile_http import MIB, HostileServer, Request, drip, huge
from tests.support.oci_images import push_image

if TYPE_CHECKING:
    from tests.support.registry import RegistryServer

pytest_plugins = ["tests.support.registry"]

MANIFEST = "/v2/team/app/manifests/1.0.0"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
ALLOWLIST_SETTING = "RENKU_ENV_OPERATOR_REGISTRY_INTERNAL_ALLOWLIST"
# What the kernel may buffer on loopback before a client that stopped reading hangs up.
SOCKET_SLACK = 24 * MIB


class SpyBackend(httpcore.AsyncNetworkBackend):
    """The real network backend for loopback, recording every host a connection was opened to;
    any other address is recorded and refused, never connected to."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connected: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        if not _is_loopback_address(host):
            # Never let a test's traffic leave loopback, even should the guard regress: the
            # attempt is recorded (and fails the test), the connection is not made.
            raise httpcore.ConnectError(f"test spy: refused to connect to {host}")
        return await self.inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: the guard hands over addresses only
        return False


class Resolver:
    """The system resolver, except for names a test points somewhere; records every question."""

    def __init__(self, names: dict[str, list[str]] | None = None) -> None:
        self.names = names or {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.names[host] if host in self.names else await resolve(host, port)


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
def other() -> Iterator[HostileServer]:
    with HostileServer() as running:
        yield running


@pytest.fixture
def spy() -> SpyBackend:
    return SpyBackend()


ClientFactory = Callable[..., RegistryClient]


@pytest.fixture
async def make_client(spy: SpyBackend) -> AsyncIterator[ClientFactory]:
    clients: list[RegistryClient] = []

    def make(*insecure: str, allow: Sequence[str] = (), **options: Any) -> RegistryClient:
        made = RegistryClient(
            insecure_registries=set(insecure),
            internal_allowlist=allow,
            network_backend=spy,
            timeout=5.0,
            retry_attempts=1,
            **options,
        )
        clients.append(made)
        return made

    yield make
    for made in clients:
        await made.__aexit__(None, None, None)


def ref(host: str) -> ImageReference:
    return parse_image_reference(f"{host}/team/app:1.0.0")


def redirect_to(location: str) -> Callable[[Request], None]:
    return lambda request: request.answer(302, Location=location)


async def test_a_redirect_to_loopback_is_refused_without_the_allowlist(
    server: HostileServer, other: HostileServer, make_client: ClientFactory, spy: SpyBackend
) -> None:
    server.route(MANIFEST, redirect_to(f"{other.url}{MANIFEST}"))
    client = make_client(server.host, other.host, allow=[server.host])  # host:port: only that one
    with pytest.raises(RegistryNotAllowedError, match=r"is a loopback address: refused") as error:
        await client.inspect(ref(server.host))
    assert ALLOWLIST_SETTING in str(error.value)
    assert server.requests == {f"HEAD {MANIFEST}": 1}
    assert other.requests == {}


async def test_a_redirect_to_cloud_metadata_is_refused_before_any_connection(
    server: HostileServer, make_client: ClientFactory, spy: SpyBackend
) -> None:
    server.route(MANIFEST, redirect_to("http://169.254.169.254/latest/meta-data/iam/"))
    client = make_client(server.host, "169.254.169.254", allow=["127.0.0.1"])
    with pytest.raises(
        RegistryNotAllowedError, match=r"169\.254\.169\.254 is a link-local address"
    ):
        await client.inspect(ref(server.host))
    assert set(spy.connected) == {"127.0.0.1"}


async def test_a_token_realm_on_a_private_address_is_refused(
    server: HostileServer, make_client: ClientFactory, spy: SpyBackend
) -> None:
    challenge = 'Bearer realm="http://auth.internal.test/token",service="registry"'
    server.route(MANIFEST, lambda r: r.answer(401, b"{}", WWW_Authenticate=challenge))
    resolver = Resolver({"auth.internal.test": ["10.20.30.40"]})
    client = make_client(server.host, allow=["127.0.0.1"], resolver=resolver)
    with pytest.raises(
        RegistryNotAllowedError, match=r"auth.internal.test \(resolves to 10.20.30.40\) is a priv"
    ):
        await client.inspect(ref(server.host))
    assert "auth.internal.test" in resolver.asked
    assert "10.20.30.40" not in spy.connected


async def test_a_name_that_resolves_to_loopback_is_refused(
    server: HostileServer, make_client: ClientFactory, spy: SpyBackend
) -> None:
    host = f"localhost:{server.server_address[1]}"
    with pytest.raises(RegistryNotAllowedError, match=r"localhost \(resolves to 127.0.0.1\)"):
        await make_client(host).inspect(ref(host))
    assert (server.requests, spy.connected) == ({}, [])


@pytest.mark.registry
async def test_the_allowlist_lets_the_local_registry_through(
    registry: RegistryServer, make_client: ClientFactory
) -> None:
    digest = push_image(registry.url, "guard/allowlisted", "1.0.0")
    image = parse_image_reference(f"{registry.host}/guard/allowlisted:1.0.0")
    with pytest.raises(RegistryNotAllowedError, match="is a loopback address"):
        await make_client(registry.host).inspect(image)
    for entry in (registry.host, "127.0.0.1", "127.0.0.0/8"):
        facts = await make_client(registry.host, allow=[entry]).inspect(image)
        assert facts.digest == digest, entry


def _streamed_manifest(request: Request) -> None:
    if request.command == "HEAD":  # no digest header: the client fetches the manifest itself
        request.answer(200, Content_Type=MANIFEST_TYPE)
    else:
        request.stream(200, huge(), Content_Type=MANIFEST_TYPE)


def _streamed_error(request: Request) -> None:
    if request.command == "HEAD":
        request.answer(404)
    else:
        request.stream(404, huge(), Content_Type="application/json")


def _streamed_401(request: Request) -> None:
    challenge = f'Bearer realm="http://{request.server.host}/token",service="registry"'
    if request.command == "HEAD":
        request.answer(200, Content_Type=MANIFEST_TYPE)
    else:
        request.stream(401, huge(), WWW_Authenticate=challenge)


def _small_401(request: Request) -> None:
    challenge = f'Bearer realm="http://{request.server.host}/token",service="registry"'
    request.answer(401, b"{}", WWW_Authenticate=challenge)


@pytest.mark.parametrize(
    ("routes", "error", "message"),
    [
        ({MANIFEST: _streamed_manifest}, RegistryResponseTooLargeError, "more than 4194304"),
        ({MANIFEST: _streamed_error}, ImageNotFoundError, "not found"),
        (
            {MANIFEST: _streamed_401, "/token": lambda r: r.answer(200, b'{"token": "t"}')},
            ImageNotPublicError,
            "requires authentication",
        ),
        (
            {MANIFEST: _small_401, "/token": lambda r: r.stream(200, huge())},
            RegistryResponseTooLargeError,
            "more than 65536",
        ),
    ],
    ids=["manifest", "error-body", "401-body", "token-answer"],
)
async def test_a_300_mib_body_is_cut_off_at_its_cap(
    server: HostileServer,
    make_client: ClientFactory,
    routes: dict[str, Callable[[Request], None]],
    error: type[Exception],
    message: str,
) -> None:
    for path, handler in routes.items():
        server.route(path, handler)
    started = time.monotonic()
    with pytest.raises(error, match=message):
        await make_client(server.host, allow=["127.0.0.1"]).inspect(ref(server.host))
    # The client stopped reading at its cap and hung up; the kernel buffered a few MiB at most.
    assert sum(server.sent.values()) < 4 * MIB + SOCKET_SLACK, server.sent
    assert time.monotonic() - started < 20


async def test_a_dripping_registry_is_cut_off_at_the_deadline(server: HostileServer) -> None:
    def dripping(request: Request) -> None:
        if request.command == "HEAD":
            request.answer(200, Content_Type=MANIFEST_TYPE)
        else:  # one byte every 0.5 s: never silent for as long as the 1 s read timeout
            request.stream(200, drip(every=0.5), Content_Type=MANIFEST_TYPE)

    server.route(MANIFEST, dripping)
    settings = Settings(
        registry_check_deadline_seconds=2.0,
        registry_insecure_hosts=[server.host],
        registry_internal_allowlist=["127.0.0.1"],
    )

    async def no_architectures() -> list[str]:
        return []

    spec = GlobalEnvironmentSpec.model_validate({"image": f"{server.host}/team/app:1.0.0"})
    async with RegistryClient(
        timeout=1.0,
        insecure_registries=settings.registry_insecure_hosts,
        internal_allowlist=settings.registry_internal_allowlist,
    ) as client:
        started = time.monotonic()
        status = await ImageVerifier(settings, client, no_architectures).verify(
            spec, None, ObjectState("uid")
        )
        elapsed = time.monotonic() - started
    (finding,) = status.findings
    assert (finding.severity, finding.reason) == ("Error", "RegistryDeadlineExceeded")
    assert "REGISTRY_CHECK_DEADLINE_SECONDS" in finding.message
    assert 2.0 <= elapsed < 4.0
    assert server.sent[MANIFEST] < 10  # a handful of bytes, not the whole drip
