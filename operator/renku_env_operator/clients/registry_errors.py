"""What can go wrong when asking a registry about an image: one hierarchy, translated at the
client boundary from httpx errors and HTTP statuses."""

from __future__ import annotations

import json

import httpx

from ..domain.images import ImageReference
from .registry_auth import is_token_response, parse_challenge

_PUBLIC_HINT = "global environment images must be public: Renku pulls them without credentials"
_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "NOT_FOUND"})


class RegistryError(Exception):
    """Anything that kept us from learning about an image; the message says what."""


class ImageNotFoundError(RegistryError):
    """The repository, tag or digest does not exist."""


class ImageNotPublicError(RegistryError):
    """The registry wants credentials: the image is private (or, on Docker Hub, missing)."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or kept failing (5xx, 429) after retries."""


class InvalidImageError(RegistryError):
    """The registry's documents are unusable: too big, malformed, wrong digest, old format."""


class RegistryNotAllowedError(RegistryError):
    """A target the operator may not reach (an internal address, a downgrade to http, too many
    redirects, a tag page on another origin): refused before anything was sent there."""


class RegistryResponseTooLargeError(RegistryError):
    """A response body went over its cap; reading stopped there."""


def raise_for_status(response: httpx.Response, body: bytes, ref: ImageReference, what: str) -> None:
    """Translate an unsuccessful status into our exceptions."""
    status = response.status_code
    if status < 300:
        return
    if status in (401, 403):
        raise ImageNotPublicError(f"{_refusal(response, ref)}: {_PUBLIC_HINT}")
    codes = error_codes(body)
    if status == 404 or codes & _NOT_FOUND_CODES:
        detail = ", ".join(sorted(codes)) or f"HTTP {status}"
        missing = f"repository {ref.repository}" if "NAME_UNKNOWN" in codes else f"the {what}"
        raise ImageNotFoundError(
            f"{ref.familiar} not found in {ref.registry}: {missing} does not exist ({detail}); "
            "check the repository name, tag and digest"
        )
    raise RegistryError(
        f"{ref.api_host} answered {status} to the {what} request for {ref.familiar}"
    )


def _refusal(response: httpx.Response, ref: ImageReference) -> str:
    if is_token_response(response):
        return (
            f"the token service {response.url.host} refused an anonymous pull token for "
            f"{ref.familiar} (HTTP {response.status_code})"
        )
    challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
    if challenge is not None and challenge.scheme == "basic":
        return f"{ref.registry} requires authentication (Basic login) to pull {ref.familiar}"
    return (
        f"{ref.registry} requires authentication to pull {ref.familiar} (HTTP "
        f"{response.status_code}): the repository is private or does not exist"
    )


def error_codes(body: bytes) -> set[str]:
    """The `errors[].code` values of a distribution error document, if the body is one."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return set()  # not an error document (HTML from a proxy, an empty HEAD body): no codes
    errors = document.get("errors") if isinstance(document, dict) else None
    return {
        e["code"] for e in errors or [] if isinstance(e, dict) and isinstance(e.get("code"), str)
    }
