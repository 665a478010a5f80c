"""RenkuClient against the Renku double: methods, error mapping, retries, metrics."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import certifi
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from renku_env_operator.clients.renku import MAX_RESPONSE_BYTES, RenkuClient, parse_retry_after
from renku_env_operator.clients.renku_auth import StaticToken, StaticTokenAuth
from renku_env_operator.clients.renku_errors import (
    RenkuCredentialsError,
    RenkuError,
    RenkuInUseError,
    RenkuNotFoundError,
    RenkuUnavailableError,
    RenkuValidationError,
)
from tests.support.renku_double import RenkuDouble

IMAGE = "renku/renkulab-py:3.10-0.18.1"
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
SPEC = {"name": "Python", "container_image": IMAGE}
# Short waits keep retries fast; the real defaults are 0.5 s .. 5 s.
FAST: dict[str, Any] = {
    "retry_wait_initial": 0.01,
    "retry_wait_max": 0.05,
    "retry_timeout": 5.0,
    "timeout": 2.0,
}


def static(token: str) -> StaticTokenAuth:
    return StaticTokenAuth(StaticToken(token=SecretStr(token)))


def make_client(double: RenkuDouble, auth: httpx.Auth | None = None, **options: Any) -> RenkuClient:
    auth = auth if auth is not None else static(double.admin_token)
    return RenkuClient(double.url, auth, **(FAST | options))


@pytest.fixture
async def client(renku_double: RenkuDouble) -> AsyncIterator[RenkuClient]:
    async with make_client(renku_double) as renku:
        yield renku


class FailingConnects(httpx.AsyncBaseTransport):
    """Refuses the first ``failures`` connections, then passes requests on."""

    def __init__(self, failures: int):
        self.failures = failures
        self.attempts = 0
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.failures:
            self.failures -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def requests_total(method: str, status: str) -> float:
    labels = {"method": method, "status": status}
    return REGISTRY.get_sample_value("renku_env_operator_renku_requests_total", labels) or 0.0


# ---------------------------------------------------------------- the methods


async def test_round_trip_of_every_method(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    created = await client.create_environment(SPEC | {"port": 8888})
    env_id = created["id"]
    fetched = await client.get_environment(env_id)
    patched = await client.patch_environment(env_id, {"default_url": "/rstudio"})
    archived = await client.archive_environment(env_id)
    visible = await client.list_environments(include_archived=False)
    listed = await client.list_environments()
    await client.delete_environment(env_id)

    assert fetched == created
    assert (created["port"], patched["default_url"], archived["is_archived"]) == (
        8888,
        "/rstudio",
        True,
    )
    assert visible == []
    assert [env["id"] for env in listed] == [env_id]
    assert renku_double.environments == {}
    assert renku_double.requests[0].body["environment_image_source"] == "image"


async def test_create_keeps_an_explicit_image_source(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    renku_double.allow_invalid_requests()

    with pytest.raises(RenkuValidationError) as caught:
        await client.create_environment(SPEC | {"environment_image_source": "build"})

    assert caught.value.status == 422
    assert "environment_image_source" in str(caught.value)


@pytest.mark.parametrize(
    "bad_id", ["", "01arz3ndektsv4rrffq69g5fav", "8ZZZZZZZZZZZZZZZZZZZZZZZZZ", "../x"]
)
async def test_malformed_ids_are_refused_before_sending(
    client: RenkuClient,
    renku_double: RenkuDouble,
    bad_id: str,
) -> None:
    with pytest.raises(ValueError, match="ULID"):
        await client.get_environment(bad_id)
    with pytest.raises(ValueError, match="ULID"):
        await client.patch_environment(bad_id, {"name": "x"})
    with pytest.raises(ValueError, match="ULID"):
        await client.delete_environment(bad_id)

    assert renku_double.requests == []


# ---------------------------------------------------------------- error mapping


async def test_validation_errors_are_not_retried(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    renku_double.allow_invalid_requests()

    with pytest.raises(RenkuValidationError) as caught:
        await client.create_environment(SPEC | {"command": []})

    assert "command: List should have at least 1 item" in caught.value.message
    assert renku_double.count("POST") == 1


async def test_unknown_ids_are_not_found(client: RenkuClient) -> None:
    with pytest.raises(RenkuNotFoundError) as get:
        await client.get_environment(UNKNOWN_ID)
    with pytest.raises(RenkuNotFoundError):
        await client.patch_environment(UNKNOWN_ID, {"name": "x"})

    assert get.value.status == 404
    await client.delete_environment(UNKNOWN_ID)  # idempotent: no error


@pytest.mark.parametrize("token", [None, "garbage"])
async def test_a_refused_token_is_a_credentials_error(
    renku_double: RenkuDouble,
    token: str | None,
) -> None:
    auth = static(token) if token else None
    async with RenkuClient(renku_double.url, auth, **FAST) as renku:
        with pytest.raises(RenkuCredentialsError) as caught:
            await renku.create_environment(SPEC)

    assert caught.value.status == 401
    assert caught.value.token_refused is True
    assert "Credentials problem" in str(caught.value)
    assert renku_double.count("POST") == 1


async def test_a_token_without_admin_role_is_a_credentials_error(
    renku_double: RenkuDouble,
) -> None:
    async with make_client(renku_double, static(renku_double.user_token)) as renku:
        with pytest.raises(RenkuCredentialsError) as caught:
            await renku.create_environment(SPEC)

    assert caught.value.status == 403
    assert caught.value.token_refused is False
    assert "renku-admin" in str(caught.value)


async def test_deleting_an_environment_in_use_is_an_in_use_error(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    env_id = (await client.create_environment(SPEC))["id"]
    renku_double.add_launcher(env_id)

    with pytest.raises(RenkuInUseError) as caught:
        await client.delete_environment(env_id)

    assert caught.value.status == 500
    assert "archive" in str(caught.value)
    assert renku_double.count("DELETE") == 1
    assert env_id in renku_double.environments


async def test_odd_answers_become_renku_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/environments"):
            return httpx.Response(200, text="<html>login</html>")
        if request.method == "GET":
            return httpx.Response(200, json=["not", "an", "object"])
        if request.method == "DELETE":
            return httpx.Response(409, json={"error": {"code": 1409, "message": "odd"}})
        return httpx.Response(502, text="<html>bad gateway</html>")

    async with RenkuClient(
        "http://renku.test/api/data", None, transport=httpx.MockTransport(handler), **FAST
    ) as renku:
        with pytest.raises(RenkuError, match="not JSON"):
            await renku.list_environments()
        with pytest.raises(RenkuError, match="not a JSON object"):
            await renku.get_environment(UNKNOWN_ID)
        with pytest.raises(RenkuError, match="Unexpected answer from Renku: odd") as odd:
            await renku.delete_environment(UNKNOWN_ID)
        with pytest.raises(RenkuUnavailableError) as gateway:
            await renku.create_environment(SPEC)

    assert type(odd.value) is RenkuError
    assert (gateway.value.status, gateway.value.detail) == (502, None)
    assert "html" not in str(gateway.value)


async def test_an_endless_answer_is_cut_off_at_the_cap() -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:  # a broken proxy that never stops sending
            sent += 1024 * 1024
            yield b"[" + b" " * (1024 * 1024 - 1)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=endless())

    async with RenkuClient(
        "http://renku.test/api/data", None, transport=httpx.MockTransport(handler), **FAST
    ) as renku:
        with pytest.raises(RenkuError, match="larger than 16 MiB: refused"):
            await renku.list_environments()
    assert sent <= MAX_RESPONSE_BYTES + 2 * 1024 * 1024  # read up to the cap, not further


# ---------------------------------------------------------------- retries


async def test_idempotent_requests_are_retried_until_they_succeed(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    env_id = (await client.create_environment(SPEC))["id"]
    renku_double.fail_next("GET", 503, times=2)
    renku_double.fail_next("PATCH", 500)
    renku_double.fail_next("DELETE", 502)

    assert await client.list_environments() != []
    await client.patch_environment(env_id, {"name": "renamed"})
    await client.delete_environment(env_id)

    assert (renku_double.count("GET"), renku_double.count("PATCH")) == (3, 2)
    assert renku_double.count("DELETE") == 2


async def test_retries_give_up_after_the_attempts(
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next("GET", 503, times=10)

    async with make_client(renku_double, retry_attempts=3) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.list_environments()

    assert caught.value.status == 503
    assert renku_double.count("GET") == 3


async def test_retry_after_is_honoured(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next("GET", 429, retry_after=0.3)
    started = time.monotonic()

    await client.list_environments()

    assert time.monotonic() - started >= 0.3  # not the 0.01 s backoff
    assert renku_double.count("GET") == 2


async def test_a_retry_after_beyond_the_budget_fails_at_once(
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next("GET", 503, retry_after=60)
    started = time.monotonic()

    async with make_client(renku_double, retry_timeout=2.0) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.list_environments()

    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after == 60
    assert renku_double.count("GET") == 1


async def test_lost_answers_to_idempotent_requests_are_retried(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    env_id = (await client.create_environment(SPEC))["id"]
    renku_double.drop_next_response("PATCH")
    renku_double.drop_next_response("DELETE")

    patched = await client.patch_environment(env_id, {"name": "renamed"})
    await client.delete_environment(env_id)

    assert patched["name"] == "renamed"
    assert (renku_double.count("PATCH"), renku_double.count("DELETE")) == (2, 2)
    assert renku_double.environments == {}


# ---------------------------------------------------------------- POST and duplicates


async def test_a_post_whose_answer_was_lost_is_not_retried(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    renku_double.drop_next_response("POST")

    with pytest.raises(RenkuUnavailableError) as caught:
        await client.create_environment(SPEC)

    assert caught.value.maybe_applied is True
    assert renku_double.count("POST") == 1
    assert len(renku_double.environments) == 1  # created once, no duplicate


async def test_a_post_that_timed_out_is_not_retried(
    renku_double: RenkuDouble,
) -> None:
    renku_double.hang_next_response("POST")

    async with make_client(renku_double, timeout=0.5) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.create_environment(SPEC)

    assert caught.value.maybe_applied is True
    assert renku_double.count("POST") == 1
    assert len(renku_double.environments) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_a_post_answered_with_5xx_is_not_retried(
    client: RenkuClient,
    renku_double: RenkuDouble,
    status: int,
) -> None:
    renku_double.fail_next("POST", status)

    with pytest.raises(RenkuUnavailableError) as caught:
        await client.create_environment(SPEC)

    assert (caught.value.status, caught.value.maybe_applied) == (status, True)
    assert renku_double.count("POST") == 1


async def test_a_post_refused_with_429_is_retried(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next("POST", 429, retry_after=0)

    await client.create_environment(SPEC)

    assert renku_double.count("POST") == 2
    assert len(renku_double.environments) == 1


async def test_a_post_that_never_connected_is_retried(
    renku_double: RenkuDouble,
) -> None:
    transport = FailingConnects(failures=2)

    async with make_client(renku_double, transport=transport) as renku:
        await renku.create_environment(SPEC)

    assert transport.attempts == 3
    assert renku_double.count("POST") == 1
    assert len(renku_double.environments) == 1


async def test_an_unreachable_renku_is_unavailable_and_nothing_was_applied(
    renku_double: RenkuDouble,
) -> None:
    transport = FailingConnects(failures=100)

    async with make_client(renku_double, transport=transport, retry_attempts=4) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.create_environment(SPEC)

    assert (caught.value.maybe_applied, caught.value.status) == (False, None)
    assert "ConnectError" in str(caught.value)
    assert transport.attempts == 4


async def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RenkuClient(f"http://127.0.0.1:{port}/api/data", None, **FAST) as renku:
        with pytest.raises(RenkuUnavailableError) as caught:
            await renku.list_environments()

    assert caught.value.maybe_applied is False


# ---------------------------------------------------------------- metrics, logs, helpers


async def test_every_http_request_is_counted(
    client: RenkuClient,
    renku_double: RenkuDouble,
) -> None:
    before = (
        requests_total("GET", "503"),
        requests_total("GET", "200"),
        requests_total("POST", "error"),
    )
    renku_double.fail_next("GET", 503)
    renku_double.drop_next_response("POST")

    await client.list_environments()
    with pytest.raises(RenkuUnavailableError):
        await client.create_environment(SPEC)

    after = (
        requests_total("GET", "503"),
        requests_total("GET", "200"),
        requests_total("POST", "error"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    duration = REGISTRY.get_sample_value(
        "renku_env_operator_renku_request_duration_seconds_count", {"method": "GET"}
    )
    assert duration is not None
    assert duration >= 2


async def test_a_static_token_never_shows_in_logs_or_errors(
    renku_double: RenkuDouble,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "static-token-that-must-stay-secret"
    renku_double.fail_next("PATCH", 503)
    errors: list[Exception] = []

    async with make_client(renku_double, static(secret)) as renku:
        for call in (renku.create_environment(SPEC), renku.patch_environment(UNKNOWN_ID, {})):
            with pytest.raises(RenkuError) as caught:
                await call
            errors.append(caught.value)

    texts = [caplog.text, *(str(r.__dict__) for r in caplog.records)]
    texts += [f"{e} {e!r} {e.__cause__!r}" for e in errors]
    assert caplog.records  # debug logging did happen
    assert all(secret not in text for text in texts)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after(later, now=now) == 90.0
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_a_ca_bundle_path_is_accepted(renku_double: RenkuDouble) -> None:
    async with RenkuClient(renku_double.url, None, verify=certifi.where(), **FAST) as renku:
        assert await renku.list_environments() == []


def test_retry_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="retry_attempts"):
        RenkuClient("http://renku.test/api/data", None, retry_attempts=0)


def test_the_call_budget_covers_every_attempt_and_every_wait() -> None:
    # 3 tries of 2 s, and the waits between them at their longest (backoff + jitter).
    renku = RenkuClient(
        "http://renku.invalid/api/data",
        None,
        timeout=2.0,
        retry_attempts=3,
        retry_timeout=30.0,
        retry_wait_initial=0.5,
        retry_wait_max=5.0,
    )
    assert renku.call_budget == 3 * 2.0 + (0.5 + 0.5) + (1.0 + 0.5)
    capped = RenkuClient("http://renku.invalid/api/data", None, timeout=10.0, retry_timeout=1.0)
    assert capped.call_budget == 1.0 + 10.0  # no new try after retry_timeout; the last may run
