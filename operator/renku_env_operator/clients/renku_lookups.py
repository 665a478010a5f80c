"""Renku's read-only look-ups beside the environments API: its own image check and its
resource pools (CONTRACT.md, "Renku's own image check" and "Resource pools carry a platform").

- ``GET /sessions/images?image_url=`` is sent WITHOUT credentials: anonymously it is Renku's
  own definition of "an anonymous user's session can pull this image".
- ``GET /resource_pools`` is sent with the operator's credentials: anyone sees the public
  pools, an admin all of them, and a global environment is offered in every pool.

Both are advisory, so one attempt each (no retries): the caller keeps the answer for an
interval and asks again later. Bodies are bounded, every call has one deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from renku_env_operator import metrics
from renku_env_operator.clients.renku import parse_answer, read_capped, tls_verify
from renku_env_operator.clients.renku_errors import RenkuError, RenkuUnavailableError
from renku_env_operator.domain.renku_checks import PullAnswer, ResourcePool

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
"""Renku's answers are small; a pools list of a big deployment stays far below this."""
IMAGES = "sessions/images"
POOLS = "resource_pools"


class RenkuLookups:
    """The two look-ups against the data service root ``base_url``."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None,
        *,
        verify: str | bool = True,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        # No client-wide auth: only the pools request gets the operator's credentials.
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            verify=tls_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        self._auth = auth
        self._deadline = timeout
        self._max_body = max_body_bytes

    async def aclose(self) -> None:
        await self._http.aclose()

    async def check_image(self, reference: str) -> PullAnswer:
        """Renku's own verdict on pulling ``reference``, asked anonymously.

        RenkuNotFoundError: this Renku has no image check (404); RenkuValidationError (422):
        Renku refuses the reference; RenkuError: any other failure.
        """
        body = await self._get(IMAGES, params={"image_url": reference}, auth=None)
        if not isinstance(body, dict) or not isinstance(body.get("accessible"), bool):
            raise RenkuError("Renku's image check gave no 'accessible' boolean")
        return PullAnswer(accessible=body["accessible"], platforms=_platforms(body))

    async def list_resource_pools(self) -> list[ResourcePool]:
        """Every resource pool the operator's account sees (an admin: all of them)."""
        body = await self._get(POOLS, params=None, auth=self._auth)
        if not isinstance(body, list):
            raise RenkuError("Renku's resource pool list is not a JSON array")
        pools = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise RenkuError("Renku's resource pool list holds an entry without an id")
            platform = item.get("platform")
            name = item.get("name")
            pools.append(
                ResourcePool(
                    id=item["id"],
                    name=name if isinstance(name, str) else f"pool {item['id']}",
                    platform=platform if isinstance(platform, str) and platform else None,
                )
            )
        return pools

    async def _get(
        self, path: str, *, params: dict[str, str] | None, auth: httpx.Auth | None
    ) -> Any:
        request = self._http.build_request("GET", path, params=params)
        started = time.perf_counter()
        status = "error"
        try:
            async with asyncio.timeout(self._deadline):
                response = await self._http.send(
                    request,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    stream=True,
                )
                try:
                    status = str(response.status_code)
                    raw = await read_capped(response, self._max_body)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise RenkuUnavailableError(f"Renku did not answer GET /{path} in time") from None
        except httpx.TransportError as exc:
            raise RenkuUnavailableError(
                f"Cannot reach Renku ({type(exc).__name__})", detail=str(exc)[:200] or None
            ) from exc
        except httpx.HTTPError as exc:
            raise RenkuError(f"HTTP error talking to Renku ({type(exc).__name__})") from exc
        finally:
            metrics.RENKU_LOOKUPS.labels(endpoint=path.replace("/", "_"), status=status).inc()
            log.debug("Renku GET /%s -> %s in %.3fs", path, status, time.perf_counter() - started)
        return parse_answer("GET", response, raw)


def _platforms(body: dict[str, Any]) -> tuple[str, ...]:
    found = body.get("platforms")
    if not isinstance(found, list):
        return ()
    result = []
    for item in found:
        if isinstance(item, dict) and isinstance(item.get("os"), str):
            parts = (item.get("os"), item.get("architecture"), item.get("variant"))
            result.append("/".join(p for p in parts if isinstance(p, str) and p))
    return tuple(result)
