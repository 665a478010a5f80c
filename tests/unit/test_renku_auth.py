"""Renku credentials: parsing a Secret, the client-credentials flow, and secrecy."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from renku_env_operator.clients.renku import RenkuClient
from renku_env_operator.clients.renku_auth import (
    ClientCredentials,
    ClientCredentialsAuth,
    StaticToken,
    StaticTokenAuth,
    auth_for,
    credentials_from_secret_data,
)
from renku_env_operator.clients.renku_errors import (
    RenkuCredentialsError,
    RenkuError,
    RenkuUnavailableError,
)
from tests.support.renku_double import TOKEN_PATH, RenkuDouble

SPEC = {"name": "Python", "container_image": "renku/renkulab-py:3.10-0.18.1"}
FAST: dict[str, Any] = {"retry_wait_initial": 0.01, "retry_wait_max": 0.05, "timeout": 2.0}
SECRET = "s3cr3t-value-never-printed"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(double: RenkuDouble, **changes: str) -> ClientCredentials:
    parsed = credentials_from_secret_data(double.client_secret_data() | changes)
    assert isinstance(parsed, ClientCredentials)
    return parsed


def token_requests(double: RenkuDouble) -> int:
    return double.count("POST", TOKEN_PATH)


# ---------------------------------------------------------------- parsing a Secret


def test_a_token_key_gives_a_static_token() -> None:
    parsed = credentials_from_secret_data({"token": f"  {SECRET}\n"})

    assert parsed == StaticToken(token=SecretStr(SECRET))


def test_client_keys_give_client_credentials() -> None:
    parsed = credentials_from_secret_data(
        {
            "clientId": "renku-env-operator",
            "clientSecret": SECRET + "\n",
            "tokenUrl": "https://id.example.org/realms/renku/protocol/openid-connect/token",
            "scope": "openid",
        }
    )

    assert isinstance(parsed, ClientCredentials)
    assert (parsed.client_id, parsed.scope) == ("renku-env-operator", "openid")
    assert parsed.client_secret.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "neither 'token'"),
        ({"token": "  "}, "neither 'token'"),
        ({"clientId": "x", "tokenUrl": "https://k/t"}, "lacks key 'clientSecret': put the secret"),
        ({"clientSecret": SECRET, "tokenUrl": "https://k/t"}, "lacks key 'clientId'"),
        ({"clientId": "x", "clientSecret": SECRET}, "lacks key 'tokenUrl': put the full Keycloak"),
        ({"token": SECRET, "clientId": "x"}, "both 'token' and client keys"),
        ({"clientId": "x", "clientSecret": SECRET, "tokenUrl": "keycloak"}, "http(s) URL"),
    ],
)
def test_bad_secrets_are_explained_without_values(data: dict[str, str], expected: str) -> None:
    with pytest.raises(ValueError, match="Renku credentials Secret") as caught:
        credentials_from_secret_data(data)

    assert expected in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "keycloak'" not in str(caught.value)  # the bad tokenUrl value is not echoed


def test_reprs_hide_secrets() -> None:
    token = StaticToken(token=SecretStr(SECRET))
    client = ClientCredentials(
        token_url="https://k/t", client_id="op", client_secret=SecretStr(SECRET)
    )

    texts = [repr(token), str(token), repr(client), str(client)]
    texts += [repr(auth_for(token)), repr(auth_for(client))]

    assert all(SECRET not in text for text in texts)
    assert isinstance(auth_for(token), StaticTokenAuth)
    assert isinstance(auth_for(client), ClientCredentialsAuth)


# ---------------------------------------------------------------- the client-credentials flow


async def test_the_token_is_fetched_once_and_reused(
    renku_double: RenkuDouble,
) -> None:
    async with RenkuClient(renku_double.url, auth_for(credentials(renku_double)), **FAST) as renku:
        env = await renku.create_environment(SPEC)
        await asyncio.gather(*(renku.get_environment(env["id"]) for _ in range(5)))
        await renku.delete_environment(env["id"])

    assert token_requests(renku_double) == 1
    assert renku_double.requests[1].user == "service-account"
    token_form = renku_double.requests[0].body
    assert token_form["grant_type"] == "client_credentials"
    assert token_form["client_id"] == renku_double.client_id


async def test_concurrent_first_requests_share_one_token_request(
    renku_double: RenkuDouble,
) -> None:
    async with RenkuClient(renku_double.url, auth_for(credentials(renku_double)), **FAST) as renku:
        await asyncio.gather(*(renku.list_environments() for _ in range(5)))

    assert token_requests(renku_double) == 1


async def test_the_token_is_refreshed_before_it_expires(
    renku_double: RenkuDouble,
) -> None:
    renku_double.set_token_lifetime(100)
    clock = FakeClock()
    auth = ClientCredentialsAuth(credentials(renku_double), refresh_margin=30, clock=clock)

    async with RenkuClient(renku_double.url, auth, **FAST) as renku:
        await renku.list_environments()
        clock.now += 69  # 1 s before the 30 s margin starts
        await renku.list_environments()
        fetched_before_margin = token_requests(renku_double)
        clock.now += 2
        await renku.list_environments()

    assert fetched_before_margin == 1
    assert token_requests(renku_double) == 2


async def test_a_short_lived_token_refreshes_at_half_its_lifetime(
    renku_double: RenkuDouble,
) -> None:
    renku_double.set_token_lifetime(10)
    clock = FakeClock()
    auth = ClientCredentialsAuth(credentials(renku_double), refresh_margin=30, clock=clock)

    async with RenkuClient(renku_double.url, auth, **FAST) as renku:
        await renku.list_environments()
        clock.now += 4
        await renku.list_environments()
        clock.now += 2
        await renku.list_environments()

    assert token_requests(renku_double) == 2


async def test_a_401_refreshes_the_token_once_and_retries_once(
    renku_double: RenkuDouble,
) -> None:
    async with RenkuClient(renku_double.url, auth_for(credentials(renku_double)), **FAST) as renku:
        env = await renku.create_environment(SPEC)
        renku_double.expire_all_tokens()  # e.g. Keycloak restarted, or clocks disagree
        patched = await renku.patch_environment(env["id"], {"name": "renamed"})

    assert patched["name"] == "renamed"
    assert token_requests(renku_double) == 2
    assert [r.status for r in renku_double.requests if r.method == "PATCH"] == [401, 200]


async def test_a_401_that_persists_is_a_credentials_error(
    renku_double: RenkuDouble,
) -> None:
    renku_double.add_client("viewer", "viewer-secret")  # valid, but no renku-admin role
    env = renku_double.admin_create(**SPEC)
    viewer = credentials(renku_double, clientId="viewer", clientSecret="viewer-secret")

    async with RenkuClient(renku_double.url, auth_for(viewer), **FAST) as renku:
        with pytest.raises(RenkuCredentialsError) as patch:
            await renku.patch_environment(env["id"], {"name": "renamed"})
        with pytest.raises(RenkuCredentialsError) as post:
            await renku.create_environment(SPEC)

    assert (patch.value.status, patch.value.token_refused) == (401, True)
    assert (post.value.status, post.value.token_refused) == (403, False)
    assert renku_double.count("PATCH") == 2  # refreshed once, retried once, then gave up
    assert renku_double.count("POST", "/api/data/environments") == 1
    assert token_requests(renku_double) == 2  # no refresh for the 403


async def test_refused_client_credentials_are_a_credentials_error(
    renku_double: RenkuDouble,
) -> None:
    wrong = credentials(renku_double, clientSecret=SECRET)

    async with RenkuClient(renku_double.url, auth_for(wrong), **FAST) as renku:
        with pytest.raises(RenkuCredentialsError) as caught:
            await renku.list_environments()

    assert caught.value.status == 401
    assert caught.value.detail == "invalid_client"
    assert "clientSecret" in str(caught.value)
    assert token_requests(renku_double) == 1  # not retried
    assert renku_double.count("GET") == 0


async def test_an_unavailable_token_endpoint_is_retried(
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next_token(503)

    async with RenkuClient(renku_double.url, auth_for(credentials(renku_double)), **FAST) as renku:
        await renku.create_environment(SPEC)

    assert token_requests(renku_double) == 2
    assert len(renku_double.environments) == 1


async def test_a_token_endpoint_that_stays_down_is_unavailable_without_side_effects(
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next_token(502, times=5)

    async with RenkuClient(
        renku_double.url, auth_for(credentials(renku_double)), retry_attempts=2, **FAST
    ) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.create_environment(SPEC)

    assert (caught.value.status, caught.value.maybe_applied) == (502, False)
    assert renku_double.count("POST") == 2  # the two token requests only
    assert renku_double.environments == {}


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"token_type": "Bearer"}),
        httpx.Response(200, text="<html>Keycloak login</html>"),
        httpx.Response(302, headers={"Location": "https://elsewhere"}),
    ],
)
async def test_a_token_endpoint_without_a_token_is_a_credentials_error(
    answer: httpx.Response,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer

    auth = ClientCredentialsAuth(
        ClientCredentials(token_url="http://k/t", client_id="op", client_secret=SecretStr(SECRET))
    )
    transport = httpx.MockTransport(handler)
    async with RenkuClient(
        "http://renku.test/api/data", auth, transport=transport, **FAST
    ) as renku:
        with pytest.raises(RenkuCredentialsError, match="no access token"):
            await renku.list_environments()


async def test_a_static_token_is_sent_as_bearer(
    renku_double: RenkuDouble,
) -> None:
    auth = auth_for(StaticToken(token=SecretStr(renku_double.admin_token)))

    async with RenkuClient(renku_double.url, auth, **FAST) as renku:
        await renku.create_environment(SPEC)

    assert renku_double.requests[0].user == "admin1"


# ---------------------------------------------------------------- secrecy


async def test_secrets_and_tokens_never_reach_logs_or_errors(
    renku_double: RenkuDouble,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    renku_double.add_client("viewer", SECRET)
    good = credentials(renku_double)
    viewer = credentials(renku_double, clientId="viewer", clientSecret=SECRET)
    wrong = credentials(renku_double, clientSecret=SECRET + "-wrong")
    errors: list[BaseException] = []

    async with RenkuClient(renku_double.url, auth_for(good), **FAST) as renku:
        env = await renku.create_environment(SPEC)
        renku_double.expire_all_tokens()
        await renku.patch_environment(env["id"], {"name": "renamed"})
    for creds in (viewer, wrong):
        async with RenkuClient(renku_double.url, auth_for(creds), **FAST) as renku:
            with pytest.raises(RenkuError) as caught:
                await renku.patch_environment(env["id"], {"name": "again"})
            errors.append(caught.value)

    secrets = [SECRET, renku_double.client_secret, *renku_double.issued_tokens]
    texts = [caplog.text, *(str(record.__dict__) for record in caplog.records)]
    texts += [f"{e} {e!r} {e.__cause__!r} {e.__context__!r}" for e in errors]
    texts += [repr(r) for r in renku_double.requests]
    assert len(renku_double.issued_tokens) == 4  # 2 for the admin client, 2 for viewer
    assert any("fetched a Renku access token" in r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert all(secret not in text for text in texts)


async def test_a_hung_token_endpoint_fails_the_waiting_calls_at_the_token_wait() -> None:
    """Finding 4(b): a token request that never ends (no timeout of the client bounds a mock
    transport) holds the token lock; every other call fails at the token wait, not after it."""
    token_asked = asyncio.Event()
    never = asyncio.Event()
    token_posts: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            token_posts.append(request.method)
            token_asked.set()
            await never.wait()
        return httpx.Response(200, json=[])

    creds = ClientCredentials(
        token_url="http://renku.test/token", client_id="op", client_secret=SecretStr(SECRET)
    )
    auth = auth_for(creds, wait=0.5)
    async with RenkuClient(
        "http://renku.test/api/data",
        auth,
        transport=httpx.MockTransport(handler),
        retry_attempts=1,
        timeout=600.0,
    ) as renku:
        holder = asyncio.create_task(renku.list_environments())
        await token_asked.wait()
        async with asyncio.timeout(30):  # far below what the hung request would take
            results = await asyncio.gather(
                *(renku.list_environments() for _ in range(5)), return_exceptions=True
            )
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)

    assert all(isinstance(r, RenkuUnavailableError) for r in results), results
    assert "no Renku access token within 0.5s" in str(results[0])
    assert token_posts == ["POST"]
