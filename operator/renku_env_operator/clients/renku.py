"""Async client of Renku's environments API (renku-data-services, ``/api/data/environments``).

Retries transient failures with ``stamina`` (exponential backoff with jitter, Retry-After
honoured within the retry budget). GET, PATCH and DELETE are idempotent (a PATCH carries
absolute values) and are retried on any transient failure. A POST is retried only when it
certainly was not carried out (connection never established, or a 408/429 refusal);
otherwise ``RenkuUnavailableError(maybe_applied=True)`` lets the caller look for the
environment before creating a second one.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import httpx
import stamina

from renku_env_operator import metrics
from renku_env_operator.clients.renku_errors import (
    RenkuError,
    RenkuInvalidIdError,
    RenkuUnavailableError,
    error_from_response,
)

log = logging.getLogger(__name__)

#: Renku environment ids: upper-case ULIDs (CONTRACT.md); anything else is a 404 there.
ULID_PATTERN = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_IDEMPOTENT = frozenset({"GET", "PATCH", "DELETE"})
# Failures where the request certainly never reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The environments list of a large Renku is a few hundred KiB: far below this.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
_DELTA_SECONDS = re.compile(r"\d+(\.\d+)?")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        log.debug("ignoring an unparsable Retry-After header: %r", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def check_environment_id(env_id: str) -> str:
    """Return ``env_id`` if it is a Renku environment id, else raise RenkuInvalidIdError."""
    if not isinstance(env_id, str) or not ULID_PATTERN.fullmatch(env_id):
        raise RenkuInvalidIdError(
            f"not a Renku environment id (26-character upper-case ULID): {env_id!r}"[:120]
        )
    return env_id


def _unavailable(exc: httpx.TransportError, request: httpx.Request) -> RenkuUnavailableError:
    if isinstance(exc, _NOT_SENT):
        reached = False
    else:
        try:
            # A failure of the token request (inside the auth flow) never sent ours.
            reached = exc.request is request
        except RuntimeError:  # httpx raises this when no request is attached: assume the worst
            reached = True
    return RenkuUnavailableError(
        f"Cannot reach Renku ({type(exc).__name__})",
        detail=str(exc)[:200] or None,
        maybe_applied=reached,
    )


def tls_verify(verify: str | bool) -> ssl.SSLContext | bool:
    # httpx 0.28 deprecates a CA bundle path for ``verify``: build the context ourselves.
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


class RenkuClient:
    """Client of the environments API below ``base_url`` (the data service root).

    ``retry_attempts`` counts all tries of one call; ``retry_timeout`` bounds their total
    time. Use as ``async with RenkuClient(...) as renku:``.
    """

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None,
        *,
        verify: str | bool = True,
        timeout: float = 10.0,
        retry_attempts: int = 3,
        retry_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        retry_wait_initial: float = 0.5,
        retry_wait_max: float = 5.0,
    ):
        if retry_attempts < 1:
            raise ValueError("retry_attempts must be at least 1")
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            auth=auth,
            verify=tls_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._retry_timeout = retry_timeout
        waits = (
            min(retry_wait_max, retry_wait_initial * 2**i) + retry_wait_initial
            for i in range(retry_attempts - 1)
        )
        # The longest one call may take, retries included; a POST is cut off at it, so an
        # attempt older than this cannot be in flight any more.
        self.call_budget = min(retry_attempts * timeout + sum(waits), retry_timeout + timeout)
        self._caller = stamina.AsyncRetryingCaller(
            attempts=retry_attempts,
            timeout=retry_timeout,
            wait_initial=retry_wait_initial,
            wait_max=retry_wait_max,
            wait_jitter=retry_wait_initial,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def list_environments(self, include_archived: bool = True) -> list[dict[str, Any]]:
        """All global environments (archived ones too unless ``include_archived`` is False)."""
        params = {"include_archived": "true" if include_archived else "false"}
        body = await self._request("GET", "environments", params=params)
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise RenkuError("Renku's environment list is not a JSON array of objects")
        return [_with_valid_id(item) for item in body]

    async def get_environment(self, env_id: str) -> dict[str, Any]:
        """One environment by id (archived ones included)."""
        path = f"environments/{check_environment_id(env_id)}"
        return _with_valid_id(_object(await self._request("GET", path)))

    async def create_environment(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Create an environment; keep the returned ``id``, names are not unique.

        Never takes longer than ``call_budget``: cut off there, it may still have been carried
        out (``RenkuUnavailableError(maybe_applied=True)``).
        """
        body = {"environment_image_source": "image", **payload}
        try:
            async with asyncio.timeout(self.call_budget):
                answer = await self._request("POST", "environments", json=body)
        except TimeoutError:
            raise RenkuUnavailableError(
                f"Renku did not answer a create within {self.call_budget:g}s",
                maybe_applied=True,
            ) from None
        return _with_valid_id(_object(answer))

    async def patch_environment(self, env_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Set the given fields (absolute values) and return the environment."""
        path = f"environments/{check_environment_id(env_id)}"
        return _with_valid_id(_object(await self._request("PATCH", path, json=dict(payload))))

    async def delete_environment(self, env_id: str) -> None:
        """Delete an environment; RenkuInUseError if launchers use it (archive it then)."""
        await self._request("DELETE", f"environments/{check_environment_id(env_id)}")

    async def archive_environment(self, env_id: str) -> dict[str, Any]:
        """Hide an environment from new launchers; existing launchers keep working."""
        return await self.patch_environment(env_id, {"is_archived": True})

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        retry_on = self._retry_policy(method, time.monotonic() + self._retry_timeout)
        return await self._caller(retry_on, self._attempt, method, path, json, params)

    @staticmethod
    def _retry_policy(method: str, deadline: float) -> Callable[[Exception], bool | float]:
        def retry_on(exc: Exception) -> bool | float:
            if not isinstance(exc, RenkuUnavailableError):
                return False
            if method not in _IDEMPOTENT and exc.maybe_applied:
                return False  # a replayed POST could create a duplicate environment
            if exc.retry_after is None:
                return True
            # Waiting past the budget would only delay the same failure.
            return exc.retry_after if time.monotonic() + exc.retry_after < deadline else False

        return retry_on

    async def _attempt(
        self, method: str, path: str, json: Any, params: Mapping[str, str] | None
    ) -> Any:
        request = self._http.build_request(method, path, json=json, params=params)
        started = time.perf_counter()
        status = "error"
        try:
            response = await self._http.send(request, stream=True)
            status = str(response.status_code)
            try:
                content = await read_capped(response)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise _unavailable(exc, request) from exc
        except httpx.HTTPError as exc:
            raise RenkuError(f"HTTP error talking to Renku ({type(exc).__name__})") from exc
        finally:
            elapsed = time.perf_counter() - started
            metrics.RENKU_REQUESTS.labels(method=method, status=status).inc()
            metrics.RENKU_REQUEST_DURATION.labels(method=method).observe(elapsed)
            log.debug(
                "Renku %s %s -> %s in %.3fs (body keys: %s)",
                method,
                request.url.path,
                status,
                elapsed,
                sorted(json) if isinstance(json, dict) else "-",
            )
        return parse_answer(method, response, content)


async def read_capped(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """The body, refused past `limit` bytes: a broken proxy in front of Renku must not be able
    to make the operator buffer an endless answer."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            shown = f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit} bytes"
            raise RenkuError(
                f"Renku's answer is larger than {shown}: refused", status=response.status_code
            )
        chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(method: str, response: httpx.Response, content: bytes) -> Any:
    """The JSON of a successful answer (None when empty), else the error it stands for."""
    if response.is_success:
        if response.status_code == 204 or not content:
            return None
        try:
            return json.loads(content)
        except ValueError:
            raise RenkuError(
                "Renku answered with a body that is not JSON", status=response.status_code
            ) from None
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None  # e.g. an HTML error page from an ingress: the status says enough
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    raise error_from_response(method, response.status_code, body, retry_after=retry_after)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RenkuError("Renku's answer is not a JSON object")
    return body


def _with_valid_id(env: dict[str, Any]) -> dict[str, Any]:
    """Ids are checked where they arrive: everything downstream may rely on a ULID."""
    env_id = env.get("id")
    if not isinstance(env_id, str) or not ULID_PATTERN.fullmatch(env_id):
        shown = repr(env_id)[:60]
        raise RenkuInvalidIdError(
            f"Renku answered with an environment id that is not a ULID ({shown}): "
            "not acted upon; check that RENKU_ENV_OPERATOR_RENKU_URL points at Renku's data service"
        )
    return env
