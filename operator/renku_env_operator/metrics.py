"""Prometheus metrics: one registry of names, shared by every layer.

Labels stay low-cardinality on purpose: no image names, object names or Renku ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

PREFIX = "renku_env_operator"

RECONCILES = Counter(
    f"{PREFIX}_reconciles_total",
    "Reconciliations by handler and result (success, retry, error).",
    ["handler", "result"],
)
RECONCILE_DURATION = Histogram(
    f"{PREFIX}_reconcile_duration_seconds",
    "Time spent in one reconciliation, by handler.",
    ["handler"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SMOKE_TESTS = Counter(
    f"{PREFIX}_smoke_tests_total",
    "Finished smoke tests by result reason (Passed or a failure reason).",
    ["reason"],
)
SMOKE_TEST_DURATION = Histogram(
    f"{PREFIX}_smoke_test_duration_seconds",
    "Duration of a smoke test from pod creation to verdict.",
    buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 420, 600),
)
RENKU_REQUESTS = Counter(
    f"{PREFIX}_renku_requests_total",
    "Requests to Renku's environments API by method and HTTP status ('error' without one).",
    ["method", "status"],
)
RENKU_REQUEST_DURATION = Histogram(
    f"{PREFIX}_renku_request_duration_seconds",
    "Duration of requests to Renku's environments API by method (retries included).",
    ["method"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RENKU_LOOKUPS = Counter(
    f"{PREFIX}_renku_lookups_total",
    "Requests to Renku's image check (sessions_images) and resource pools (resource_pools), "
    "by endpoint and HTTP status ('error' without one).",
    ["endpoint", "status"],
)
RENKU_FINDINGS = Counter(
    f"{PREFIX}_renku_findings_total",
    "Findings of Renku's own checks (RenkuCannotPull, PoolPlatformMissing, "
    "NoMatchingPlatform), counted when first reported as an Event, by reason.",
    ["reason"],
)
REGISTRY_REQUESTS = Counter(
    f"{PREFIX}_registry_requests_total",
    "Requests to container registries by method and HTTP status ('error' without one).",
    ["method", "status"],
)
CLAIMS_COLLECTED = Counter(
    f"{PREFIX}_claims_collected_total",
    "Claims of GlobalEnvironments gone without their clean-up, by outcome: archived, deleted, "
    "released (left in Renku), taken_over (by a new object of the same name), "
    "attempt_cleared, recovered (a lost create found), failed (retried next pass).",
    ["outcome"],
)
GLOBAL_ENVIRONMENTS = Gauge(
    f"{PREFIX}_globalenvironments",
    "GlobalEnvironments handled by this operator, by Ready condition status.",
    ["ready"],
)
AVAILABLE_UPDATES = Gauge(
    f"{PREFIX}_available_image_updates",
    "GlobalEnvironments whose image has a newer version in the allowed range.",
)
BUILD_INFO = Info(f"{PREFIX}_build", "Version of the running operator.")


READY_STATUSES = ("True", "False", "Unknown")


def reset_object_gauges() -> None:
    """Per-object gauges start at zero (a new record set: start-up, or a test)."""
    for status in READY_STATUSES:
        GLOBAL_ENVIRONMENTS.labels(status).set(0)
    AVAILABLE_UPDATES.set(0)


def move_ready(old: str | None, new: str | None) -> None:
    """One object's Ready status changed from `old` to `new` (None: not counted)."""
    if old == new:
        return
    if old is not None:
        GLOBAL_ENVIRONMENTS.labels(old).dec()
    if new is not None:
        GLOBAL_ENVIRONMENTS.labels(new).inc()


def move_updates(old: bool, new: bool) -> None:
    """One object's "a newer image version exists" changed."""
    if old != new:
        AVAILABLE_UPDATES.inc() if new else AVAILABLE_UPDATES.dec()
