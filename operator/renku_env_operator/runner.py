"""Running the operator: kopf with an explicit registry, settings and logging."""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

import kopf
from prometheus_client import start_http_server

from .config import Settings
from .handlers import globalenvironment, startup


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


_LOG_FORMATS = {
    "plain": kopf.LogFormat.PLAIN,
    "full": kopf.LogFormat.FULL,
    "json": kopf.LogFormat.JSON,
}


def _quiet_events(record: logging.LogRecord) -> bool:
    """Drop kopf's "Handler 'wake' succeeded." lines: one per watch event is noise."""
    return record.getMessage() != "Handler 'wake' succeeded."


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
    kopf.configure(
        debug=config.log_level == "DEBUG",
        verbose=config.log_level == "DEBUG",
        quiet=config.log_level in {"WARNING", "ERROR"},
        log_format=_LOG_FORMATS[config.log_format],
        log_refkey="object",
    )
    if config.log_level != "DEBUG":
        logging.getLogger("kopf.objects").addFilter(_quiet_events)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    settings = kopf.OperatorSettings()
    startup.configure_kopf(settings, config)
    if tune is not None:
        tune(settings)
    asyncio.run(
        kopf.operator(
            registry=build_registry(config),
            settings=settings,
            clusterwide=not config.namespaces,
            namespaces=config.namespaces,
            liveness_endpoint=config.liveness_endpoint or None,
            standalone=config.peering is None,
            peering_name=config.peering,
            # kopf pauses every peer that shares the highest priority: give each replica its own.
            priority=secrets.randbelow(1_000_000) if config.peering else None,
            stop_flag=stop_flag,
            ready_flag=ready_flag,
        )
    )
    logging.getLogger(__name__).info("operator stopped")
