"""Credentials for Renku's environments API and the httpx auth flows that use them.

Two kinds, read from a Kubernetes Secret: a static bearer token, or a Keycloak confidential
client (client-credentials grant). Secrets are ``SecretStr`` and never reach logs, reprs or
exception messages.

Why hand-written instead of authlib: authlib >= 1.8 warns at import with httpx 0.28 (the
test suite turns warnings into errors), would add a dependency for one form POST, and does
not refetch on a 401 anyway. The flow below does exactly what the contract asks: one POST,
a cached token refreshed before expiry under a lock, and one refresh-and-retry on 401.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from renku_env_operator.clients.renku_errors import (
    RenkuCredentialsError,
    RenkuError,
    RenkuUnavailableError,
)

log = logging.getLogger(__name__)

_HINTS = {
    "token": "a bearer token accepted by Renku (an access token with the renku-admin role)",
    "clientId": "the id of the Keycloak confidential client whose service account has renku-admin",
    "clientSecret": "the secret of that Keycloak client (Credentials tab in Keycloak)",
    "tokenUrl": "the full Keycloak token endpoint URL, e.g. "
    "https://renku.example.org/auth/realms/Renku/protocol/openid-connect/token",
}


class StaticToken(BaseModel):
    """A fixed bearer token (for tests, or a long-lived token managed elsewhere)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    token: SecretStr = Field(min_length=1)


class ClientCredentials(BaseModel):
    """A Keycloak confidential client used with the client-credentials grant."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    token_url: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretStr = Field(min_length=1)
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("tokenUrl must be an http(s) URL of the Keycloak token endpoint")
        return value


Credentials = StaticToken | ClientCredentials


def _missing(key: str) -> ValueError:
    return ValueError(f"Renku credentials Secret lacks key {key!r}: put {_HINTS[key]} there")


def credentials_from_secret_data(data: Mapping[str, str]) -> Credentials:
    """Build credentials from a Secret's decoded data; ValueError names what is missing.

    Values are stripped (``kubectl create secret --from-file`` keeps trailing newlines).
    Messages name keys, never values.
    """
    values = {key: value.strip() for key, value in data.items() if value.strip()}
    client_keys = {"clientId", "clientSecret", "tokenUrl"} & values.keys()
    if "token" in values and client_keys:
        raise ValueError(
            "Renku credentials Secret has both 'token' and client keys "
            f"({', '.join(sorted(client_keys))}): keep only one kind"
        )
    if "token" in values:
        return StaticToken(token=SecretStr(values["token"]))
    if not client_keys:
        raise ValueError(
            "Renku credentials Secret has neither 'token' (a static bearer token) nor "
            "'clientId', 'clientSecret' and 'tokenUrl' (a Keycloak confidential client)"
        )
    for key in ("clientId", "clientSecret", "tokenUrl"):
        if key not in values:
            raise _missing(key)
    try:
        return ClientCredentials(
            token_url=values["tokenUrl"],
            client_id=values["clientId"],
            client_secret=SecretStr(values["clientSecret"]),
            scope=values.get("scope"),
        )
    except ValidationError as exc:  # hide_input_in_errors keeps values out of the text
        reasons = "; ".join(str(error["msg"]) for error in exc.errors())
        raise ValueError(f"Renku credentials Secret is invalid: {reasons}") from None


class StaticTokenAuth(httpx.Auth):
    """Adds a fixed ``Authorization: Bearer`` header; a 401 is final (nothing to refresh)."""

    def __init__(self, credentials: StaticToken):
        self._token = credentials.token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request

    def __repr__(self) -> str:
        return "StaticTokenAuth(token=**********)"


class ClientCredentialsAuth(httpx.Auth):
    """Client-credentials grant with a cached token, early refresh and one retry on 401.

    The token request goes through the same httpx client (same transport and TLS settings).
    One instance belongs to one event loop (it holds an ``asyncio.Lock``).
    """

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        refresh_margin: float = 30.0,
        wait: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._credentials = credentials
        self._refresh_margin = refresh_margin
        self._wait = wait
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: SecretStr | None = None
        self._refresh_at = 0.0
        # A token request that failed fails every call that waited for it: a hung or broken
        # token endpoint costs one request per round of the client's retries, not one per call.
        self._failure: RenkuError | None = None
        self._failures = 0

    def __repr__(self) -> str:
        return f"ClientCredentialsAuth(client_id={self._credentials.client_id!r})"

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        failures = await self._acquire()  # one refresh at a time; the others reuse its token
        try:
            if self._token is None or self._clock() >= self._refresh_at:
                self._raise_failure_since(failures)
                try:
                    answer = yield self._token_request()
                except GeneratorExit:  # no answer: a timeout, the connection lost
                    self._failed(
                        RenkuUnavailableError("the Keycloak token endpoint did not answer")
                    )
                    raise
                await self._refresh(answer)
            used = self._token
        finally:
            self._lock.release()
        request.headers["Authorization"] = self._bearer()
        response = yield request
        if response.status_code != 401:
            return
        failures = await self._acquire()
        try:
            if self._token is used:  # nobody refreshed since we sent: fetch a new token
                self._raise_failure_since(failures)
                log.debug("Renku answered 401; fetching a fresh token and retrying once")
                try:
                    answer = yield self._token_request()
                except GeneratorExit:  # no answer: a timeout, the connection lost
                    self._failed(
                        RenkuUnavailableError("the Keycloak token endpoint did not answer")
                    )
                    raise
                await self._refresh(answer)
        finally:
            self._lock.release()
        request.headers["Authorization"] = self._bearer()
        yield request

    async def _acquire(self) -> int:
        """The token lock, within `wait` seconds: a token request that hangs (bounded only by
        the client's timeouts, per read) must not queue every Renku call behind it. Returns
        the count of failed token requests before the wait."""
        failures = self._failures
        try:
            async with asyncio.timeout(self._wait):
                await self._lock.acquire()
        except TimeoutError:
            raise RenkuUnavailableError(
                f"no Renku access token within {self._wait:g}s: the token endpoint "
                f"({self._credentials.token_url}) does not answer"
            ) from None
        return failures

    def _raise_failure_since(self, failures: int) -> None:
        if self._failure is not None and self._failures > failures:
            raise self._failure  # the request this call waited for failed: so does this call

    async def _refresh(self, response: httpx.Response) -> None:
        try:
            await self._store(response)
        except RenkuError as exc:
            self._failed(exc)
            raise
        self._failure = None

    def _failed(self, exc: RenkuError) -> None:
        self._failure, self._failures = exc, self._failures + 1

    def _bearer(self) -> str:
        if self._token is None:
            raise RenkuError("no access token after a token request")
        return f"Bearer {self._token.get_secret_value()}"

    def _token_request(self) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._credentials.client_id,
            "client_secret": self._credentials.client_secret.get_secret_value(),
        }
        if self._credentials.scope:
            form["scope"] = self._credentials.scope
        return httpx.Request(
            "POST",
            self._credentials.token_url,
            data=form,
            headers={"Accept": "application/json"},
        )

    async def _store(self, response: httpx.Response) -> None:
        await response.aread()
        token, expires_in = _read_token_response(response)
        margin = min(self._refresh_margin, expires_in / 2)
        self._token = SecretStr(token)
        self._refresh_at = self._clock() + expires_in - margin
        log.debug("fetched a Renku access token valid for %ss", expires_in)


def _read_token_response(response: httpx.Response) -> tuple[str, float]:
    """Return (access token, lifetime in seconds), or raise a credentials/unavailable error."""
    status = response.status_code
    body = _json_or_none(response)
    if status in (400, 401, 403):
        error = body.get("error") if isinstance(body, dict) else None
        raise RenkuCredentialsError(
            "Credentials problem: Keycloak refused the client credentials "
            "(check clientId, clientSecret and tokenUrl)",
            status=status,
            detail=error if isinstance(error, str) else None,
        )
    if status == 429 or status >= 500:
        raise RenkuUnavailableError("Keycloak token endpoint is unavailable", status=status)
    token = body.get("access_token") if isinstance(body, dict) else None
    if status != 200 or not isinstance(token, str) or not token:
        raise RenkuCredentialsError(
            "Credentials problem: the token endpoint gave no access token "
            "(is tokenUrl the Keycloak token endpoint?)",
            status=status,
        )
    expires_in = body.get("expires_in") if isinstance(body, dict) else None
    lifetime = float(expires_in) if isinstance(expires_in, int | float) else 60.0
    return token, max(lifetime, 0.0)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def auth_for(credentials: Credentials, *, wait: float = 15.0) -> httpx.Auth:
    """The httpx auth flow for the given kind of credentials (`wait`: the longest wait for
    the token lock)."""
    if isinstance(credentials, StaticToken):
        return StaticTokenAuth(credentials)
    return ClientCredentialsAuth(credentials, wait=wait)
