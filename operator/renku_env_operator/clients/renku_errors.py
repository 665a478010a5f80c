"""Typed errors of the Renku environments API client.

Every error carries the HTTP status (when there was one), a human message and the server's
detail. None of them ever holds a token or a client secret: messages are built from the
status and the server's error body only, never from request headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Server texts can be long (stack traces, HTML from an ingress): keep messages readable.
_MAX_TEXT = 500


class RenkuError(Exception):
    """Base class of everything the Renku client raises on purpose."""

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        text = self.message if self.status is None else f"{self.message} (HTTP {self.status})"
        return text if not self.detail else f"{text}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r})"


class RenkuInvalidIdError(RenkuError, ValueError):
    """An environment id that is not a ULID: in Renku's answer, or about to be sent."""


class RenkuValidationError(RenkuError):
    """Renku refused the request body (400/422): a spec problem, retrying cannot help."""


class RenkuNotFoundError(RenkuError):
    """The environment does not exist (404)."""


class RenkuCredentialsError(RenkuError):
    """The operator's credentials were refused (401) or lack the renku-admin role (403).

    Also raised when the Keycloak token endpoint refuses the client credentials.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        token_refused: bool = True,
    ):
        super().__init__(message, status=status, detail=detail)
        self.token_refused = token_refused


class RenkuInUseError(RenkuError):
    """DELETE refused because session launchers still use the environment: archive it."""


class RenkuUnavailableError(RenkuError):
    """Renku could not be reached or answered 5xx/429, after the retries.

    ``maybe_applied`` is True when the request may have reached the server and been carried
    out (read timeout, connection dropped after sending, a 5xx answer). For a POST this
    means an environment may exist although no id came back: look for it before creating
    another one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        maybe_applied: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message, status=status, detail=detail)
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, "
            f"maybe_applied={self.maybe_applied!r})"
        )


def _clip(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def parse_error_body(body: object) -> tuple[int | None, str | None, str | None]:
    """Read ``{"error": {"code", "message", "detail"}}``; anything else gives Nones."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return None, None, None
    code = error.get("code")
    return (
        code if isinstance(code, int) else None,
        _clip(error.get("message")),
        _clip(error.get("detail")),
    )


def _is_in_use(code: int | None, message: str | None, detail: str | None) -> bool:
    text = f"{message or ''} {detail or ''}"
    return code == 1500 and (
        "ForeignKeyViolation" in text or "launchers_environment_id_fkey" in text
    )


def error_from_response(
    method: str, status: int, body: Any, *, retry_after: float | None = None
) -> RenkuError:
    """Translate one non-2xx answer of the environments API into our exception types."""
    code, server_message, detail = parse_error_body(body)
    said = f": {server_message}" if server_message else ""
    if status in (400, 422):
        return RenkuValidationError(
            f"Renku refused the request{said}", status=status, detail=detail
        )
    if status == 401:
        return RenkuCredentialsError(
            "Credentials problem: Renku refused the operator's token (missing, invalid or"
            " expired; on PATCH also a token without the renku-admin role)",
            status=status,
            detail=server_message,
            token_refused=True,
        )
    if status == 403:
        return RenkuCredentialsError(
            "Credentials problem: the operator's token lacks the realm role renku-admin",
            status=status,
            detail=server_message,
            token_refused=False,
        )
    if status == 404:
        return RenkuNotFoundError(f"Not found in Renku{said}", status=status, detail=detail)
    if method == "DELETE" and status == 500 and _is_in_use(code, server_message, detail):
        return RenkuInUseError(
            "The environment is still used by session launchers; archive it instead",
            status=status,
            detail=server_message,
        )
    if status in (408, 429) or status >= 500:
        return RenkuUnavailableError(
            f"Renku is unavailable{said}",
            status=status,
            detail=detail,
            # 408/429 are refused before any processing; other answers may follow a change.
            maybe_applied=status not in (408, 429),
            retry_after=retry_after,
        )
    return RenkuError(f"Unexpected answer from Renku{said}", status=status, detail=detail)
