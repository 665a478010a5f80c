"""RegistryClient against real registries: Debian's docker-registry (plain and htpasswd) and a
Bearer token front (tests/support/registry_token.py), with synthetic images pushed per test."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest

from renku_env_operator.clients.registry import (
    ImageNotFoundError,
    ImageNotPublicError,
    RegistryClient,
    RegistryResponseTooLargeError,
    RegistryUnavailableError,
)
from renku_env_operator.domain.images import (
    ImageReference,
    check_config,
    check_platforms,
    newer_versions,
    parse_image_reference,
)
from tests.support.oci_images import push_image

if TYPE_CHECKING:  # the fixtures module is loaded as a plugin, so it is not imported here
    from tests.support.registry import RegistryServer
    from tests.support.registry_token import TokenProxy

pytest_plugins = ["tests.support.registry"]
pytestmark = pytest.mark.registry

RENKU_CONFIG: dict[str, Any] = {
    "User": "1000:1000",
    "ExposedPorts": {"8888/tcp": {}},
    "WorkingDir": "/home/renku/work",
    "Cmd": ["start-session"],
}
SETTINGS: dict[str, Any] = {
    "uid": 1000,
    "gid": 1000,
    "port": 8888,
    "working_directory": None,
    "command": None,
    "args": None,
}
ClientFactory = Callable[..., RegistryClient]


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository of its own for every test: the session's registry is shared."""
    return "it/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """RegistryClients speaking plain http to the given hosts, with test-sized retries."""
    clients: list[RegistryClient] = []

    def make(*hosts: str, **options: Any) -> RegistryClient:
        defaults: dict[str, Any] = {
            "timeout": 5.0,
            "retry_attempts": 3,
            "retry_wait_initial": 0.001,
            "retry_wait_max": 0.01,
            # The tests' registries (and token services) live on loopback: an internal mirror.
            "internal_allowlist": ["127.0.0.1"],
        }
        made = RegistryClient(insecure_registries=set(hosts), **{**defaults, **options})
        clients.append(made)
        return made

    yield make
    for made in clients:
        await made.__aexit__(None, None, None)


def ref(host: str, repo: str, tag: str = "1.0.0") -> ImageReference:
    return parse_image_reference(f"{host}/{repo}:{tag}")


async def test_single_platform_image_with_user_expose_workdir(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    digest = push_image(registry.url, repo, "1.0.0", config=RENKU_CONFIG)
    facts = await make_client(registry.host).inspect(ref(registry.host, repo))
    assert facts.digest == digest
    assert [str(p) for p in facts.platforms] == ["linux/amd64"]
    assert facts.config.user == "1000:1000"
    assert facts.config.exposed_ports == {"8888/tcp": {}}
    assert facts.config.working_dir == "/home/renku/work"
    assert facts.config.cmd == ["start-session"]
    assert check_config(facts, **SETTINGS) == []


async def test_image_without_user_expose_workdir(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    push_image(registry.url, repo, "1.0.0", config={"Cmd": ["sh"]}, media_types="docker")
    facts = await make_client(registry.host).inspect(ref(registry.host, repo))
    assert (facts.config.user, facts.config.exposed_ports, facts.config.working_dir) == (
        None,
        None,
        None,
    )
    reasons = [f.reason for f in check_config(facts, **SETTINGS)]
    assert reasons == ["NoUser", "NoWorkingDirectory"]


@pytest.mark.parametrize("media_types", ["oci", "docker"])
async def test_multi_platform_index(
    registry: RegistryServer, repo: str, make_client: ClientFactory, media_types: str
) -> None:
    digest = push_image(
        registry.url,
        repo,
        "1.0.0",
        platforms=["linux/amd64", "linux/arm64/v8"],
        config={"User": "1000"},
        configs={"linux/arm64/v8": {"User": "2000"}},
        media_types=media_types,  # type: ignore[arg-type]
        attestation=media_types == "oci",
    )
    client = make_client(registry.host)
    facts = await client.inspect(ref(registry.host, repo))
    assert facts.digest == digest  # the index's digest, not a platform's
    assert [str(p) for p in facts.platforms] == ["linux/amd64", "linux/arm64/v8"]
    assert facts.config.user == "1000"  # linux/amd64 first
    on_arm = await client.inspect(ref(registry.host, repo), {"arm64"})
    assert (on_arm.digest, on_arm.config.user) == (digest, "2000")


async def test_platform_check_on_a_real_image(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    push_image(registry.url, repo, "1.0.0", platforms=["linux/arm64/v8"])
    facts = await make_client(registry.host).inspect(ref(registry.host, repo), {"amd64"})
    finding = check_platforms(facts, {"amd64"})
    assert finding is not None
    assert finding.reason == "NoMatchingPlatform"
    assert check_platforms(facts, {"amd64", "arm64"}) is None


async def test_digest_pinned_reference(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    digest = push_image(registry.url, repo, "1.0.0")
    client = make_client(registry.host)
    pinned = ref(registry.host, repo).with_digest(digest)
    assert (await client.inspect(pinned)).digest == digest
    with pytest.raises(ImageNotFoundError, match="does not exist"):
        await client.inspect(pinned.with_digest("sha256:" + "0" * 64))


async def test_missing_repository_and_tag_are_not_found(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    push_image(registry.url, repo, "1.0.0")
    client = make_client(registry.host)
    with pytest.raises(ImageNotFoundError, match=r"tag 9\.9\.9 does not exist"):
        await client.inspect(ref(registry.host, repo, "9.9.9"))
    with pytest.raises(ImageNotFoundError, match=r"it/no-such-repo:1\.0\.0 not found"):
        await client.inspect(ref(registry.host, "it/no-such-repo"))


async def test_tag_moved_to_a_new_digest_is_seen(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    client = make_client(registry.host)
    first = push_image(registry.url, repo, "1.0.0", config={"User": "1000"})
    assert (await client.inspect(ref(registry.host, repo))).config.user == "1000"
    second = push_image(registry.url, repo, "1.0.0", config={"User": "1001"})
    moved = await client.inspect(ref(registry.host, repo))
    assert second != first
    assert (moved.digest, moved.config.user) == (second, "1001")


async def test_tag_listing_with_pagination(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    tags = ["1.0.0", "1.1.0", "1.2.0", "2.0.0", "latest"]
    for tag in tags:
        push_image(registry.url, repo, tag)
    client = make_client(registry.host, tag_page_size=2)
    listed = await client.list_tags(ref(registry.host, repo))
    assert sorted(listed) == sorted(tags)
    assert newer_versions("1.0.0", listed) == ["1.2.0", "1.1.0"]


async def test_size_limits_are_enforced(
    registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    push_image(registry.url, repo, "1.0.0", config_padding=20_000)
    with pytest.raises(
        RegistryResponseTooLargeError, match=r"config blob .* over the limit of 10000"
    ):
        await make_client(registry.host, max_config_bytes=10_000).inspect(ref(registry.host, repo))
    with pytest.raises(RegistryResponseTooLargeError, match=r"manifest .* too large"):
        await make_client(registry.host, max_manifest_bytes=100).inspect(ref(registry.host, repo))


async def test_htpasswd_registry_is_not_public(
    auth_registry: RegistryServer, repo: str, make_client: ClientFactory
) -> None:
    push_image(auth_registry.url, repo, "1.0.0", auth=auth_registry.credentials)
    with pytest.raises(ImageNotPublicError, match="Basic login") as error:
        await make_client(auth_registry.host).inspect(ref(auth_registry.host, repo))
    assert "must be public" in str(error.value)


async def test_bearer_challenge_works_anonymously_with_one_token_per_scope(
    registry: RegistryServer, token_registry: TokenProxy, repo: str, make_client: ClientFactory
) -> None:
    digest = push_image(registry.url, repo, "1.0.0", config=RENKU_CONFIG)
    push_image(registry.url, repo, "1.1.0")
    client = make_client(token_registry.host)
    facts = await client.inspect(ref(token_registry.host, repo))
    assert (facts.digest, facts.config.user) == (digest, "1000:1000")
    await client.inspect(ref(token_registry.host, repo, "1.1.0"))
    assert sorted(await client.list_tags(ref(token_registry.host, repo))) == ["1.0.0", "1.1.0"]
    assert token_registry.token_requests == {f"repository:{repo}:pull": 1}


async def test_bearer_refusing_anonymous_tokens_is_not_public(
    registry: RegistryServer, token_registry: TokenProxy, make_client: ClientFactory
) -> None:
    push_image(registry.url, "private/app", "1.0.0")
    with pytest.raises(ImageNotPublicError, match="refused an anonymous pull token"):
        await make_client(token_registry.host).inspect(ref(token_registry.host, "private/app"))


async def test_transient_faults_are_retried_then_given_up(
    registry: RegistryServer, token_registry: TokenProxy, repo: str, make_client: ClientFactory
) -> None:
    digest = push_image(registry.url, repo, "1.0.0")
    client = make_client(token_registry.host, retry_attempts=3)
    token_registry.fail_next(503, 502)
    assert (await client.inspect(ref(token_registry.host, repo))).digest == digest
    token_registry.fail_next(503, 503, 503)
    with pytest.raises(RegistryUnavailableError, match="keeps answering 503"):
        await client.inspect(ref(token_registry.host, repo))


async def test_unreachable_registry_is_unavailable(make_client: ClientFactory) -> None:
    # A bound socket that never listens: connections are refused and the port stays ours.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{closed.getsockname()[1]}"
        client = make_client(host, retry_attempts=2)
        with pytest.raises(RegistryUnavailableError, match=f"cannot reach {re.escape(host)}"):
            await client.inspect(parse_image_reference(f"{host}/it/app:1"))
