"""Start-up: kopf's own settings, and the clients the operator needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import kopf

from .. import metrics
from ..api import crd
from ..clients.claims import ClaimError, ClaimsClient
from ..clients.globalenvironments import (
    GlobalEnvironmentReader,
    GlobalEnvironmentStatusWriter,
    list_globalenvironments,
)
from ..clients.kube import KubeClient, KubeError, KubeForbiddenError, KubeNotFoundError
from ..clients.registry import RegistryClient
from ..clients.renku import RenkuClient
from ..clients.renku_auth import Credentials, StaticToken, auth_for, credentials_from_secret_data
from ..clients.renku_lookups import RenkuLookups
from ..config import OPERATOR_NAME, Settings, SettingsError
from ..domain.redact import redact
from ..services.claims_gc import ClaimCollector
from ..services.image_verify import ImageVerifier, NodeArchitectures
from ..services.objects import Objects
from ..services.owner import Owners
from ..services.ownership import Ownership
from ..services.publishing import Publisher
from ..services.reconciler import Reconciler
from ..services.renku_image_check import RenkuImageCheck
from ..services.renku_sync import RenkuSnapshot, RenkuSync
from ..services.smoketest import SmokeTester
from .context import Closer, OperatorContext
from .globalenvironment import post_event

FINALIZER = f"{crd.PLURAL}.{crd.GROUP}/finalizer"
ANNOTATION_PREFIX = f"env-operator.{crd.GROUP}"
log = logging.getLogger(__name__)


def configure_kopf(settings: kopf.OperatorSettings, config: Settings) -> None:
    """kopf's settings, chosen on purpose rather than left at kopf's defaults."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    # No change handler needs a diff: a stored diff-base would only cost a write per object.
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.posting.reporting_component = OPERATOR_NAME
    settings.posting.level = logging.WARNING  # Events come from the reconciler, not from logs.
    settings.watching.server_timeout = config.watch_server_timeout_seconds
    settings.watching.client_timeout = config.watch_client_timeout_seconds
    settings.watching.connect_timeout = 30
    settings.batching.error_delays = (1, 5, 15, 30, 60)
    settings.scanning.disabled = bool(config.namespaces)
    settings.peering.standalone = config.peering is None
    if config.peering:
        settings.peering.name = config.peering
        settings.peering.mandatory = True


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf keeps no last-handled configuration: the owners look at the live object."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


async def load_credentials(config: Settings, kube: KubeClient) -> Credentials:
    if config.renku_token is not None:
        return StaticToken(token=config.renku_token)
    if not config.renku_credentials_secret:
        raise SettingsError(
            "no Renku credentials: set RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET to the name of "
            "a Secret with key 'token' (or 'clientId', 'clientSecret', 'tokenUrl')"
        )
    name, namespace = config.renku_credentials_secret, config.credentials_namespace
    try:
        data = await kube.get_secret_data(namespace, name)
        return credentials_from_secret_data(data)
    except KubeNotFoundError:
        raise SettingsError(
            f"the Renku credentials Secret {namespace}/{name} does not exist: create it (key "
            "'token', or 'clientId', 'clientSecret' and 'tokenUrl') or point "
            "RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET at the right one"
        ) from None
    except KubeForbiddenError as exc:
        raise SettingsError(
            f"no permission to read the Renku credentials Secret {namespace}/{name} ({exc}): "
            "grant the operator's ServiceAccount 'get' on it (the Helm chart's Role does)"
        ) from None
    except (KubeError, ValueError) as exc:
        raise SettingsError(f"Renku credentials Secret {namespace}/{name}: {exc}") from None


def node_architectures(config: Settings, kube: KubeClient) -> NodeArchitectures:
    """The nodes' CPU architectures: from the setting, else read once from the nodes."""
    cache: list[set[str]] = []

    async def read() -> set[str]:
        if config.node_architectures:
            return set(config.node_architectures)
        if not cache:
            try:
                cache.append(await kube.list_node_architectures())
            except KubeError as exc:
                log.warning("cannot read node architectures (%s): platform check skipped", exc)
                cache.append(set())
        return cache[0]

    return read


async def build_publisher(
    config: Settings,
    kube: KubeClient,
    closers: list[Closer],
    objects: Objects,
    auth: httpx.Auth | None,
) -> Publisher | None:
    """Renku's side; None without a Renku URL (environments are then only validated and
    tested, and their Synced condition says so)."""
    if config.renku_url is None:
        log.warning("RENKU_ENV_OPERATOR_RENKU_URL is not set: nothing will be published")
        return None
    renku = RenkuClient(
        str(config.renku_url),
        auth,
        verify=config.renku_verify,
        timeout=config.renku_timeout_seconds,
        retry_attempts=config.renku_retry_attempts,
    )
    closers.append(renku.aclose)
    # Ownership records live in the operator's own namespace, which only the operator writes.
    # The live uid by name lets an object created again under a force-deleted one's name take
    # its records over (services/ownership.py take_over).
    ownership = Ownership(
        ClaimsClient(kube, config.operator_namespace),
        objects,
        live=GlobalEnvironmentReader(kube).uid,
    )
    try:
        # At the first start the era marker is made, listing the objects a version without
        # records published: only they may migrate their status.renkuId (README: Ownership).
        await ownership.start(lambda: list_globalenvironments(kube, list(config.namespaces)))
    except (ClaimError, KubeError) as exc:
        raise SettingsError(f"ownership records (GlobalEnvironmentClaims): {exc}") from None
    snapshot = RenkuSnapshot(renku, config.drift_interval_seconds, config.retry_backoff_seconds)
    sync = RenkuSync(renku, snapshot, ownership)
    return Publisher(config, sync)


def build_renku_check(
    config: Settings, closers: list[Closer], auth: httpx.Auth | None
) -> RenkuImageCheck | None:
    """Renku's own image check and pools (RENKU_IMAGE_CHECK); None when it is Off or nothing
    is published. The pools list is read as the operator's account (the same auth flow, so one
    token serves both clients); the image check goes out anonymously."""
    if config.renku_url is None or config.renku_image_check == "Off":
        return None
    lookups = RenkuLookups(
        str(config.renku_url),
        auth,
        verify=config.renku_verify,
        timeout=config.renku_timeout_seconds,
    )
    closers.append(lookups.aclose)
    return RenkuImageCheck(config, lookups)


def build_image_verifier(
    config: Settings,
    kube: KubeClient,
    closers: list[Closer],
    renku_check: RenkuImageCheck | None = None,
) -> ImageVerifier | None:
    if not config.image_checks:
        return None
    registry = RegistryClient(
        timeout=config.registry_timeout_seconds,
        insecure_registries=config.registry_insecure_hosts,
        internal_allowlist=config.registry_internal_allowlist,
        cluster_cidrs=config.cluster_cidrs,
        cache_entries=config.registry_cache_entries,
        cache_bytes=int(config.registry_cache_mib * 1024 * 1024),
        read_budget_bytes=int(config.registry_read_budget_mib * 1024 * 1024),
    )
    closers.append(lambda: registry.__aexit__(None, None, None))
    architectures = node_architectures(config, kube)
    if renku_check is not None:  # Renku's pools, when known, say where sessions run
        architectures = renku_check.node_architectures(architectures)
    return ImageVerifier(config, registry, architectures)


async def build_context(config: Settings) -> OperatorContext:
    try:
        kube = KubeClient.from_environment()
    except KubeError as exc:
        raise SettingsError(str(exc)) from None
    closers: list[Closer] = [kube.close]
    objects = Objects()  # the one record per object, shared by the owners and the ownership cache
    # The credentials Secret is read once; both Renku clients share one auth flow (one token).
    auth = (
        auth_for(await load_credentials(config, kube), wait=config.renku_token_wait_seconds)
        if config.renku_url
        else None
    )
    publisher = await build_publisher(config, kube, closers, objects, auth)
    renku_check = build_renku_check(config, closers, auth)
    images = build_image_verifier(config, kube, closers, renku_check)
    smoke = SmokeTester(kube, config)
    reconciler = Reconciler(config, publisher, images, smoke, renku_check)
    owners = Owners(
        config,
        reconciler,
        GlobalEnvironmentStatusWriter(kube),
        post_event,
        finalizer=FINALIZER,
        cancel_smoke=smoke.cancel,
        objects=objects,
    )
    claims = None
    if publisher is not None:

        def wake(uid: str) -> None:
            state = objects.peek(uid)
            if state is not None:
                state.wake.set()

        async def post(
            body: Mapping[str, Any], type_: Literal["Normal", "Warning"], reason: str, msg: str
        ) -> None:
            await kube.post_event(body, type_, reason, msg, OPERATOR_NAME)

        claims = ClaimCollector(config, publisher.sync, GlobalEnvironmentReader(kube), post, wake)
    return OperatorContext(config, owners, smoke, closers, claims=claims)


async def collect_garbage(context: OperatorContext) -> None:
    """Delete kept failed smoke pods once they are old enough, and pods of superseded runs."""
    interval = max(context.settings.smoke_poll_seconds * 10, 1.0)
    while True:
        try:
            await context.smoke.collect_garbage()
        except KubeError as exc:
            log.warning("smoke pod clean-up failed, will retry: %s", exc)
        await asyncio.sleep(interval)


async def collect_claims(context: OperatorContext) -> None:
    """Collect the claims of objects gone without their clean-up, every interval (the first
    one interval after start: the watch has shown the live objects by then)."""
    collector = context.claims
    if collector is None:
        return
    while True:
        await asyncio.sleep(context.settings.claim_gc_interval_seconds)
        try:
            done = await collector.collect()
        except Exception as exc:  # whatever it is: reported, tried again next interval
            log.warning("claims garbage collection failed, will retry: %s", exc)
            continue
        if done:
            log.info("claims garbage collection: %s", dict(done))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def register(registry: kopf.OperatorRegistry, config: Settings) -> None:
    @kopf.on.startup(id="startup", registry=registry)
    async def startup(memo: kopf.Memo, **_: Any) -> None:
        metrics.BUILD_INFO.info({"version": __import__("renku_env_operator").__version__})
        try:
            context = await build_context(config)
        except SettingsError as exc:
            raise kopf.PermanentError(str(exc)) from None
        memo["context"] = context
        collector = asyncio.create_task(collect_garbage(context), name="smoke-pod-gc")
        context.closers.append(lambda: _cancel(collector))
        claims = asyncio.create_task(collect_claims(context), name="claims-gc")
        context.closers.append(lambda: _cancel(claims))
        renku = redact(str(config.renku_url)) if config.renku_url is not None else None
        log.info("renku-env-operator started; Renku at %s", renku)

    @kopf.on.cleanup(id="cleanup", registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        context = memo.get("context")
        if isinstance(context, OperatorContext):
            await context.aclose()
