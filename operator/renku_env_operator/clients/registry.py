"""An async client for the OCI distribution API: what a public image is, anonymously.

No maintained async registry client exists (oras and python-dxf are sync), so this is a small
one on httpx. It reads manifests and config blobs within size limits, verifies their digests,
caches them by digest (content-addressed, so a moved tag is still seen: tags are always
resolved with a HEAD), retries transient failures with stamina and translates every httpx or
HTTP error into a `RegistryError`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection
from types import TracebackType
from typing import Any, Self

import httpcore
import httpx
import stamina

from ..domain.images import ImageFacts, ImageReference
from ..domain.outbound import AddressPolicy
from .registry_auth import (
    MAX_TOKEN_CHARS,
    SCOPE_EXTENSION,
    AnonymousTokenAuth,
    TokenResponseError,
)
from .registry_cache import BoundedCache
from .registry_errors import (
    ImageNotFoundError,
    ImageNotPublicError,
    InvalidImageError,
    RegistryError,
    RegistryNotAllowedError,
    RegistryResponseTooLargeError,
    RegistryUnavailableError,
    raise_for_status,
)
from .registry_http import (
    TRANSIENT_STATUSES,
    BodyTooLarge,
    MeteredTransport,
    ReadBudget,
    TransientStatus,
    read_limited,
    retry_hook,
)
from .registry_manifests import (
    DIGEST_PATTERN,
    MANIFEST_ACCEPT,
    ConfigFacts,
    Descriptor,
    Manifest,
    choose_platform,
    parse_config,
    parse_manifest,
    parse_tags,
    verify_digest,
)
from .registry_net import Resolver, TargetRefused, guarded_transport, resolve

__all__ = [
    "ImageNotFoundError",
    "ImageNotPublicError",
    "InvalidImageError",
    "RegistryClient",
    "RegistryError",
    "RegistryNotAllowedError",
    "RegistryResponseTooLargeError",
    "RegistryUnavailableError",
]

logger = logging.getLogger(__name__)
SMALL_ANSWER = 64 * 1024  # bytes: answers this small never wait for the read budget


class RegistryClient:
    """Reads public images from OCI registries, anonymously. Use as an async context manager.

    `insecure_registries` lists registries (host[:port] as in image references) spoken to over
    plain http, for loopback tests; every other registry is https.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_manifest_bytes: int = 4 * 1024 * 1024,
        max_config_bytes: int = 4 * 1024 * 1024,
        insecure_registries: Collection[str] = frozenset(),
        transport: httpx.AsyncBaseTransport | None = None,
        internal_allowlist: Collection[str] = (),
        cluster_cidrs: Collection[str] = (),
        resolver: Resolver = resolve,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_error_bytes: int = 64 * 1024,
        max_redirects: int = 3,
        retry_attempts: int = 3,
        retry_timeout: float = 20.0,
        retry_wait_initial: float = 0.2,
        retry_wait_max: float = 5.0,
        cache_entries: int = 512,
        cache_bytes: int = 8 * 1024 * 1024,
        read_budget_bytes: int = 32 * 1024 * 1024,
        max_token_chars: int = MAX_TOKEN_CHARS,
        tag_page_size: int = 1000,
        max_tag_pages: int = 20,
    ) -> None:
        policy = AddressPolicy.of(internal_allowlist, cluster_cidrs)
        inner = transport or guarded_transport(policy, resolver=resolver, inner=network_backend)
        self._auth = AnonymousTokenAuth(
            max_body=max_error_bytes,
            max_token_chars=max_token_chars,
            cache_entries=cache_entries,
            cache_bytes=cache_bytes,
        )
        self._client = httpx.AsyncClient(
            transport=MeteredTransport(inner),
            timeout=timeout,
            # Redirects are followed here, hop by hop, so that each is judged (blobs are often
            # served from a CDN or object store); httpx would also read every redirect's body.
            follow_redirects=False,
            auth=self._auth,
            headers={"User-Agent": "renku-env-operator", "Accept-Encoding": "identity"},
            trust_env=False,  # an environment proxy would connect without the address rules
        )
        self._max_error_bytes = max_error_bytes
        self._max_redirects = max_redirects
        self._max_manifest_bytes = max_manifest_bytes
        self._max_config_bytes = max_config_bytes
        self._insecure = frozenset(insecure_registries)
        self._retry_attempts = retry_attempts
        self._retry_timeout = retry_timeout
        self._retry_wait_initial = retry_wait_initial
        self._retry_wait_max = retry_wait_max
        self._retry_on = retry_hook(retry_wait_max)
        # Keyed by digest, so never stale; each bounded by entries and estimated bytes.
        self._manifests: BoundedCache[str, Manifest] = BoundedCache(cache_entries, cache_bytes)
        self._configs: BoundedCache[str, ConfigFacts] = BoundedCache(cache_entries, cache_bytes)
        # Shared by every check: what their answers being read at once may hold in all.
        self._budget = ReadBudget(read_budget_bytes, small=2 * SMALL_ANSWER)
        self._tag_page_size = tag_page_size
        self._max_tag_pages = max_tag_pages

    @property
    def caches(self) -> dict[str, BoundedCache[Any, Any]]:
        """What the client keeps between checks, each bounded by entries and bytes."""
        return {"manifests": self._manifests, "configs": self._configs, "tokens": self._auth.tokens}

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, traceback)

    async def inspect(
        self, ref: ImageReference, node_architectures: Collection[str] | None = None
    ) -> ImageFacts:
        """What `ref` points to now: its digest, platforms and (one platform's) config."""
        digest = await self._resolve(ref)
        top = await self._manifest(ref, digest)
        image, platforms = top, []
        if top.is_index:
            entries = top.runnable()
            platforms = [entry.platform for entry in entries if entry.platform is not None]
            chosen = choose_platform(entries, node_architectures)
            if chosen is None:
                raise InvalidImageError(f"the index of {ref.familiar} lists no image manifest")
            image = await self._manifest(ref, chosen.digest)
        if image.is_index:
            raise InvalidImageError(f"{ref.familiar}: an index inside an index is not supported")
        if image.config is None:
            raise InvalidImageError(f"the manifest of {ref.familiar} names no config blob")
        blob = await self._config(ref, image.config)
        if not platforms and blob.platform is not None:
            platforms = [blob.platform]
        return ImageFacts(digest=digest, platforms=platforms, config=blob.config)

    async def list_tags(self, ref: ImageReference) -> list[str]:
        """All tags of the repository, following `Link` pagination up to a bound."""
        url = httpx.URL(self._url(ref, "tags/list"), params={"n": self._tag_page_size})
        origin = url.copy_with(path="/", query=None)
        tags: list[str] = []
        for _ in range(self._max_tag_pages):
            response, body = await self._get(ref, url, "application/json", "tag list")
            tags += parse_tags(body, ref)
            link = response.links.get("next", {}).get("url")
            if not link:
                return tags
            url = url.join(link)
            if url.copy_with(path="/", query=None) != origin:
                raise RegistryNotAllowedError(
                    f"the tag list of {ref.name} points its next page (Link header) to {url.host}"
                    f", another origin than {origin.host}: refused, pages must stay on the "
                    "registry"
                )
        logger.warning(
            "tag list of %s has more than %d pages; using the first %d tags",
            ref.name,
            self._max_tag_pages,
            len(tags),
        )
        return tags

    def _url(self, ref: ImageReference, suffix: str) -> str:
        insecure = ref.registry in self._insecure or ref.api_host in self._insecure
        return f"{'http' if insecure else 'https'}://{ref.api_host}/v2/{ref.repository}/{suffix}"

    async def _resolve(self, ref: ImageReference) -> str:
        """The digest the reference points to now: a HEAD, so a moved tag is always seen."""
        url = httpx.URL(self._url(ref, f"manifests/{ref.manifest_reference}"))
        what = f"digest {ref.digest}" if ref.digest else f"tag {ref.manifest_reference}"
        response, _ = await self._request(
            "HEAD", url, ref, accept=MANIFEST_ACCEPT, limit=0, what=what
        )
        if response.status_code == 404:  # HEAD has no body: GET for the error code
            response, _ = await self._get(ref, url, MANIFEST_ACCEPT, what)
        raise_for_status(response, b"", ref, what)
        digest = response.headers.get("Docker-Content-Digest")
        if ref.digest:
            if digest and digest != ref.digest:
                raise InvalidImageError(f"{ref.familiar}: the registry serves digest {digest}")
            return ref.digest
        if digest:
            if re.fullmatch(DIGEST_PATTERN, digest) is None:
                raise InvalidImageError(f"{ref.familiar}: the registry sent a malformed digest")
            return str(digest)
        # Registries may leave the header out: fetch the manifest and hash it ourselves.
        response, body = await self._get(ref, url, MANIFEST_ACCEPT, what)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        self._manifests.put(digest, parse_manifest(body, response, ref))
        return digest

    async def _manifest(self, ref: ImageReference, digest: str) -> Manifest:
        cached = self._manifests.get(digest)
        if cached is not None:
            return cached
        url = httpx.URL(self._url(ref, f"manifests/{digest}"))
        response, body = await self._get(ref, url, MANIFEST_ACCEPT, f"manifest {digest}")
        verify_digest(body, digest, ref, "manifest")
        manifest = parse_manifest(body, response, ref)
        self._manifests.put(digest, manifest)
        return manifest

    async def _config(self, ref: ImageReference, descriptor: Descriptor) -> ConfigFacts:
        cached = self._configs.get(descriptor.digest)
        if cached is not None:
            return cached
        if descriptor.size > self._max_config_bytes:
            raise RegistryResponseTooLargeError(
                f"the config blob of {ref.familiar} is {descriptor.size} bytes, over the limit "
                f"of {self._max_config_bytes}"
            )
        url = httpx.URL(self._url(ref, f"blobs/{descriptor.digest}"))
        _, body = await self._request(
            "GET",
            url,
            ref,
            accept="*/*",
            limit=self._max_config_bytes,
            what="config blob",
            check=True,
        )
        verify_digest(body, descriptor.digest, ref, "config blob")
        blob = parse_config(body, ref)  # the raw bytes go when this returns
        self._configs.put(descriptor.digest, blob)
        return blob

    async def _get(
        self, ref: ImageReference, url: httpx.URL, accept: str, what: str
    ) -> tuple[httpx.Response, bytes]:
        limit = self._max_manifest_bytes
        return await self._request(
            "GET", url, ref, accept=accept, limit=limit, what=what, check=True
        )

    async def _request(
        self,
        method: str,
        url: httpx.URL,
        ref: ImageReference,
        *,
        accept: str,
        limit: int,
        what: str,
        check: bool = False,
    ) -> tuple[httpx.Response, bytes]:
        """One request with retries; the body is read (up to `limit`) and the response closed."""
        try:
            async for attempt in stamina.retry_context(
                on=self._retry_on,
                attempts=self._retry_attempts,
                timeout=self._retry_timeout,
                wait_initial=self._retry_wait_initial,
                wait_max=self._retry_wait_max,
                wait_jitter=self._retry_wait_initial,
            ):
                with attempt:
                    response, body = await self._attempt(method, url, ref, accept, limit)
        except TransientStatus as error:
            raise RegistryUnavailableError(
                f"{ref.api_host} keeps answering {error.status} to {what} requests for "
                f"{ref.familiar}; try again later"
            ) from error
        except httpx.TransportError as error:
            raise RegistryUnavailableError(f"cannot reach {ref.api_host}: {error!r}") from error
        except httpx.HTTPError as error:
            raise RegistryError(f"talking to {ref.api_host} failed: {error!r}") from error
        except TokenResponseError as error:
            raise RegistryError(f"anonymous login to {ref.api_host} failed: {error}") from error
        except BodyTooLarge as error:
            raise RegistryResponseTooLargeError(
                f"an answer to the {what} request for {ref.familiar} is too large ({error}); "
                f"the operator reads at most {limit} bytes of a manifest, config or tag list and "
                f"{self._max_error_bytes} of an error or token answer"
            ) from error
        except TargetRefused as error:
            raise RegistryNotAllowedError(f"{what} of {ref.familiar}: {error}") from error
        if check:
            raise_for_status(response, body, ref, what)
        return response, body

    async def _attempt(
        self, method: str, url: httpx.URL, ref: ImageReference, accept: str, limit: int
    ) -> tuple[httpx.Response, bytes]:
        # A token, if one is needed, is for this image's repository, whatever a redirect says.
        scope = {SCOPE_EXTENSION: f"repository:{ref.repository}:pull"}
        for _ in range(self._max_redirects + 1):
            request = self._client.build_request(
                method, url, headers={"Accept": accept}, extensions=scope
            )
            response = await self._client.send(request, stream=True)
            location = response.headers.get("Location") if response.is_redirect else None
            if location is None:
                return await self._body(response, method, limit, ref.api_host)
            await response.aclose()  # a redirect's body is never read
            target = response.url.join(location)
            if target.scheme not in ("http", "https"):
                raise TargetRefused(f"a redirect to {target.scheme}: is refused")
            if response.url.scheme == "https" and target.scheme == "http":
                raise TargetRefused(
                    f"{response.url.host} redirects to http://{target.host}: refused, no "
                    "downgrade from https to http"
                )
            url = target
        raise TargetRefused(f"more than {self._max_redirects} redirects in a row")

    async def _body(
        self, response: httpx.Response, method: str, limit: int, registry: str
    ) -> tuple[httpx.Response, bytes]:
        try:
            if response.status_code in TRANSIENT_STATUSES:
                raise TransientStatus(response.status_code, response.headers.get("Retry-After"))
            if method == "HEAD":  # Content-Length describes the GET body: nothing to read
                return response, b""
            if response.status_code >= 300:  # only read for its error codes: the start will do
                return response, await read_limited(response, self._max_error_bytes, truncate=True)
            declared = response.headers.get("Content-Length", "")
            expected = int(declared) if declared.isdigit() and int(declared) <= limit else limit
            # Twice the length: the chunks and the body joined from them live together for a
            # moment. The caller parses the body as soon as this returns, with no await in
            # between: the reservation covers the raw bytes for as long as they live.
            async with self._budget.reserve(2 * expected, registry):
                body = await read_limited(response, limit)
                await response.aclose()
                return response, body
        finally:
            await response.aclose()
