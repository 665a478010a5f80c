"""Running the operator: kopf with an explicit registry, settings and logging."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import secrets
import threading
import warnings
from collections.abc import Callable
from typing import Any

import kopf

from .api import claim, crd
from .clients.kube import KubeClient, KubeError, KubeForbiddenError, KubeNotFoundError
from .config import Settings, SettingsError
from .domain.redact import redact
from .handlers import globalenvironment, startup
from .metrics_http import MetricsServer

PREFLIGHT_TIMEOUT_SECONDS = 15.0
_GRANT = (
    "grant the operator's ServiceAccount get, list, watch and patch on it (the Helm chart's "
    "RBAC does), or watch only permitted namespaces with --namespace"
)


class StartupError(Exception):
    """The operator cannot start: one line that says what is wrong and what to do."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split()).rstrip(".")


def _network_reason(exc: KubeError) -> str:
    """'[Errno 111] Connection refused' rather than urllib3's nested retry report."""
    found = re.search(r"\[Errno -?\d+\] [^\"')]+|timed out|Name or service not known", str(exc))
    return found.group(0) if found else _one_line(exc)[:200]


async def preflight(config: Settings) -> None:
    """What would otherwise fail inside kopf with a traceback: the cluster configuration, the
    API server, the CRD and the permission to list it, and the Renku credentials Secret.

    Renku itself is not contacted: an unreachable Renku is an outage the operator rides out
    (Synced False, RenkuUnavailable, retried), not a reason to crash-loop.
    """
    # urllib3 logs every retry of a refused connection: the one line below says it all.
    urllib3_log = logging.getLogger("urllib3")
    level = urllib3_log.level
    urllib3_log.setLevel(logging.ERROR)
    try:
        await _preflight(config)
    finally:
        urllib3_log.setLevel(level)


async def _preflight(config: Settings) -> None:
    try:
        kube = KubeClient.from_environment()
    except KubeError as exc:
        raise StartupError(
            f"{_one_line(exc)}: set KUBECONFIG to a kubeconfig file, or run in a pod with a "
            "ServiceAccount"
        ) from None
    try:
        scopes: list[str | None] = [*config.namespaces] or [None]
        for namespace in scopes:
            await _check_global_environments(kube, namespace)
        if config.renku_url is not None:
            # Renku is written to only with the ownership records at hand.
            await _check_claims(kube, config.operator_namespace)
            try:
                await startup.load_credentials(config, kube)
            except SettingsError as exc:
                raise StartupError(_one_line(exc)) from None
    finally:
        await kube.close()


async def _check_global_environments(kube: KubeClient, namespace: str | None) -> None:
    where = f"in namespace {namespace}" if namespace else "cluster-wide"
    resource = f"{crd.PLURAL}.{crd.GROUP}"
    try:
        await kube.list_one_custom_object(
            crd.GROUP, crd.VERSION, crd.PLURAL, namespace, request_timeout=PREFLIGHT_TIMEOUT_SECONDS
        )
    except KubeNotFoundError:
        raise StartupError(
            f"the GlobalEnvironment CRD ({resource}, {crd.VERSION}) is not installed in the "
            f"cluster at {kube.server}: kubectl apply -f crds/{resource}.yaml, or install the "
            "Helm chart"
        ) from None
    except KubeForbiddenError as exc:
        raise StartupError(
            f"no permission to list {resource} {where} ({_one_line(exc)}): {_GRANT}"
        ) from None
    except KubeError as exc:
        if exc.status is not None:
            raise StartupError(f"listing {resource} {where} failed: {_one_line(exc)}") from None
        raise StartupError(
            f"cannot reach the Kubernetes API server at {kube.server} ({_network_reason(exc)}): "
            "check the kubeconfig's server address and the network"
        ) from None
    # Opening a watch just to test it would look like the operator's own watch to observers;
    # ask the authorizer instead.
    if await kube.may("watch", crd.GROUP, crd.PLURAL, namespace) is False:
        raise StartupError(f"no permission to watch {resource} {where}: {_GRANT}")


async def _check_claims(kube: KubeClient, namespace: str) -> None:
    """The ownership records (GlobalEnvironmentClaims) in the operator's own namespace."""
    resource = claim.CRD_NAME
    try:
        await kube.list_one_custom_object(
            crd.GROUP,
            crd.VERSION,
            claim.PLURAL,
            namespace,
            request_timeout=PREFLIGHT_TIMEOUT_SECONDS,
        )
    except KubeNotFoundError:
        raise StartupError(
            f"the ownership-record CRD ({resource}, {crd.VERSION}) is not installed: "
            f"kubectl apply -f crds/{resource}.yaml, or install the Helm chart"
        ) from None
    except KubeError as exc:
        raise StartupError(
            f"cannot list {resource} in namespace {namespace} ({_one_line(exc)}): the operator "
            "needs get, list, create, patch and delete on them in its own namespace (the Helm "
            "chart grants them)"
        ) from None


def build_registry(config: Settings) -> kopf.OperatorRegistry:
    """All handlers, bound to one configuration (no module-level global registry)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # Kubeconfig or in-cluster service account, through the official client.
        return kopf.login_via_client(**kwargs)

    startup.register(registry, config)
    globalenvironment.register(registry, config)
    return registry


async def operate_with_metrics(config: Settings, **operator: Any) -> None:
    """kopf's operator, with the metrics endpoint on the same loop for as long as it runs."""
    server = None
    if config.metrics_port:
        server = MetricsServer(
            config.metrics_port,
            timeout=config.metrics_timeout_seconds,
            max_connections=config.metrics_max_connections,
        )
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"cannot serve metrics on port {config.metrics_port} ({exc.strerror or exc}): "
                "set RENKU_ENV_OPERATOR_METRICS_PORT to a free port, or 0 to disable metrics"
            ) from None
    try:
        await kopf.operator(**operator)
    finally:
        if server is not None:
            await server.stop()


_LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def _quiet_events(record: logging.LogRecord) -> bool:
    """Drop kopf's "Handler 'wake' succeeded." lines: one per watch event is noise."""
    return record.getMessage() != "Handler 'wake' succeeded."


def _root_cause(exc: BaseException) -> str:
    """The innermost message of kopf's "One or more handlers failed." chain."""
    while exc.__cause__ is not None or (exc.__context__ is not None and not str(exc)):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return _one_line(exc) or type(exc).__name__


def _redact_record(record: logging.LogRecord) -> None:
    """The record's message, exception and stack text, with URL credentials masked."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it when the record is emitted
        return
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        masked = redact(text)
        if masked != text:
            # Formatters print exc_text; the JSON one re-formats exc_info when it is there.
            record.exc_info, record.exc_text = None, masked
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def install_log_redaction() -> None:
    """Mask URL credentials in every log record of the process, whichever logger made it
    (ours, kopf's, httpx's, aiohttp's...): a record factory sees them all, before any handler,
    filter or kopf's Event poster. Idempotent."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def run_operator(
    config: Settings,
    *,
    stop_flag: threading.Event | None = None,
    ready_flag: threading.Event | None = None,
    tune: Callable[[kopf.OperatorSettings], object] | None = None,
) -> None:
    """Run until stopped (a signal, or `stop_flag` in tests). Blocks.

    `tune` adjusts kopf's settings after ours (tests shorten kopf's timeouts with it).
    """
    install_log_redaction()
    asyncio.run(preflight(config))
    kopf.configure(
        debug=config.log_level == "DEBUG",
        verbose=config.log_level == "DEBUG",
        quiet=config.log_level in {"WARNING", "ERROR"},
        log_format=_LOG_FORMATS[config.log_format],
        log_refkey="object",
    )
    if config.log_level != "DEBUG":
        logging.getLogger("kopf.objects").addFilter(_quiet_events)
    settings = kopf.OperatorSettings()
    startup.configure_kopf(settings, config)
    if tune is not None:
        tune(settings)
    started = ready_flag or threading.Event()
    # If a start-up handler fails anyway, kopf drops tasks it never started: their coroutines
    # warn "never awaited" at garbage collection. That says nothing to an admin.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        try:
            asyncio.run(
                operate_with_metrics(
                    config,
                    registry=build_registry(config),
                    settings=settings,
                    clusterwide=not config.namespaces,
                    namespaces=config.namespaces,
                    liveness_endpoint=config.liveness_endpoint or None,
                    standalone=config.peering is None,
                    peering_name=config.peering,
                    # kopf pauses every peer that shares the highest priority: give each
                    # replica its own.
                    priority=secrets.randbelow(1_000_000) if config.peering else None,
                    stop_flag=stop_flag,
                    ready_flag=started,
                )
            )
        except Exception as exc:
            if started.is_set():
                raise
            raise StartupError(_root_cause(exc)) from None
        finally:
            gc.collect()
    logging.getLogger(__name__).info("operator stopped")
