"""Operator settings: environment variables (prefix RENKU_ENV_OPERATOR_) and CLI flags.

Loaded and checked once at start-up; a bad value stops the start with a message naming the
setting. The prefix is deliberately distinctive: Kubernetes injects `<SERVICE>_PORT` variables,
so a plain `RENKU_` prefix would collide with a Service called `renku`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic_settings
from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .domain.outbound import AddressPolicy, OutboundRuleError

ENV_PREFIX = "RENKU_ENV_OPERATOR_"
OPERATOR_NAME = "renku-env-operator"

CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the operator, with its environment variable RENKU_ENV_OPERATOR_<NAME>."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )

    # --- Kubernetes ---
    namespaces: CommaList = Field(default_factory=list)
    """Namespaces to watch for GlobalEnvironments, comma-separated; empty watches all (needs
    cluster-wide RBAC)."""
    operator_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices(f"{ENV_PREFIX}OPERATOR_NAMESPACE", "POD_NAMESPACE"),
    )
    """Namespace the operator runs in (from the downward API's POD_NAMESPACE)."""
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    """kopf liveness endpoint; empty disables it."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """Port of the Prometheus /metrics endpoint; 0 disables it."""
    metrics_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """A connection to the metrics port must send its request within this time (it is then
    closed); none stays open longer than twice this."""
    metrics_max_connections: int = Field(default=32, ge=1, le=1024)
    """Connections to the metrics port at once; a new one closes the oldest (an idle one
    first), so idle connections cannot keep a scrape out."""
    log_format: Literal["plain", "full", "json"] = "plain"
    """Log format: plain, full (with timestamps and object) or json (one object per line)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Log level."""
    peering: str | None = None
    """kopf peering name for HA mode (several replicas, one active); empty runs standalone."""
    trusted_namespaces: CommaList = Field(default_factory=list)
    """Namespaces whose GlobalEnvironments may adopt an existing Renku environment
    (spec.renkuId) and use deletionPolicy Delete, comma-separated; `*` trusts all. Empty (the
    default): only the operator's own namespace. Elsewhere both are refused, nothing changes in
    Renku."""
    watch_server_timeout_seconds: int = Field(default=300, ge=10)
    """Server-side watch timeout: streams are re-established at least this often, so a silent
    stream (a dead load balancer) cannot hide changes for longer."""
    watch_client_timeout_seconds: int = Field(default=330, ge=10)
    """Client-side watch timeout, a little longer than the server's."""

    # --- Renku ---
    renku_url: AnyHttpUrl | None = None
    """Renku data service root, e.g. http://renku-data-service.renku.svc/api/data or
    https://renku.example.org/api/data."""
    renku_public_url: AnyHttpUrl | None = None
    """Renku's public address, e.g. https://renku.example.org: smoke pods get it in
    RENKU_BASE_URL as sessions do. Default: the host of renku_url."""
    renku_credentials_secret: str | None = None
    """Name of the Secret with the Renku credentials (keys `token`, or `clientId`,
    `clientSecret` and `tokenUrl`)."""
    renku_credentials_namespace: str | None = None
    """Namespace of that Secret; default: the operator's namespace."""
    renku_token: SecretStr | None = None
    """A static bearer token instead of a Secret (for development only)."""
    renku_ca_bundle: Path | None = None
    """CA bundle (PEM) for Renku's TLS certificate; default: the system's."""
    renku_timeout_seconds: float = Field(default=10.0, gt=0)
    """Timeout of one request to Renku."""
    renku_retry_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts for a transient failure of one Renku request, within one reconcile."""
    drift_interval_seconds: float = Field(default=300.0, gt=0)
    """How often Renku is compared with the declared state (one list request per interval)."""
    claim_gc_interval_seconds: float = Field(default=300.0, gt=0)
    """How often the claims of GlobalEnvironments gone without their clean-up (force-deleted)
    are collected: one list of the claims, one list per namespace with claims of objects this
    process does not hold, one GET per owner that list does not show."""
    delete_attempts: int = Field(default=10, ge=1)
    """Reconcile attempts to clean up Renku when a GlobalEnvironment is deleted; after that it
    stays blocked with a condition saying how to release it."""
    retry_backoff_seconds: float = Field(default=15.0, gt=0)
    """Delay before a failed reconcile is retried."""
    max_concurrent_reconciles: int = Field(default=32, ge=1)
    """Reconcile passes at once (across all objects); the others wait their turn. Bounds the
    operator's memory and its load on Renku and the API server when many objects need work at
    once (a start with 1,000 objects, the end of a Renku outage). Retiring never waits."""
    max_concurrent_reconciles_per_namespace: int = Field(default=8, ge=1)
    """Of those, at most this many passes of one namespace at once, and at most this many
    waits on one dependency (Renku, one registry host): one team's slow registry cannot take
    every slot. A pass gives its slot back while it waits on the network."""
    renku_token_wait_seconds: float = Field(default=15.0, gt=0)
    """Longest wait for the Renku access token (the Keycloak token endpoint): past it the call
    fails as Renku unavailable instead of queueing behind a token request that hangs."""
    renku_image_check_timeout_seconds: float = Field(default=5.0, gt=0)
    """Deadline of Renku's own image check (GET /sessions/images) for one reference; no answer
    in time is remembered for the retry backoff (doubling to the drift interval), for every
    object with that reference."""

    # --- Smoke tests ---
    smoke_namespace: str | None = None
    """Namespace for smoke-test pods; default: the operator's namespace."""
    smoke_timeout_seconds: int = Field(default=300, ge=10)
    """Default time a smoke pod may take to become ready (spec.smokeTest.timeoutSeconds wins)."""
    smoke_stable_seconds: int = Field(default=20, ge=0)
    """Default time a pod must stay ready with no restart (spec.smokeTest.stableSeconds wins)."""
    smoke_max_concurrent: int = Field(default=2, ge=1)
    """Smoke pods running at once; the rest wait their turn."""
    smoke_keep_failed_seconds: int = Field(default=3600, ge=0)
    """How long a failed smoke pod is kept for `kubectl logs` before it is deleted. Its
    containers are stopped at once (the pod object stays, its logs readable); a new test of the
    same object deletes it sooner."""
    smoke_cpu_request: str = "100m"
    """CPU request of a smoke pod."""
    smoke_memory_request: str = "256Mi"
    """Memory request of a smoke pod."""
    smoke_cpu_limit: str = "1"
    """CPU limit of a smoke pod."""
    smoke_memory_limit: str = "2Gi"
    """Memory limit of a smoke pod."""
    smoke_ephemeral_storage_request: str = "100Mi"
    """Ephemeral-storage request of a smoke pod (and of its probe pod): the writable layer,
    logs and the disk-backed volumes."""
    smoke_ephemeral_storage_limit: str = "1Gi"
    """Ephemeral-storage limit of a smoke pod (and of its probe pod): above it the kubelet
    evicts the pod (reason Evicted), so an image cannot fill the node's disk."""
    smoke_node_selector: dict[str, str] = Field(default_factory=dict)
    """Node selector for smoke pods, as JSON (e.g. GPU images need GPU nodes)."""
    smoke_tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Tolerations for smoke pods, as a JSON list."""
    smoke_poll_seconds: float = Field(default=2.0, gt=0)
    """How often a running smoke test looks at its pod."""

    # --- Images ---
    image_checks: bool = True
    """Check images in their registry (public, digest, platforms, config, updates)."""
    image_check_interval_seconds: float = Field(default=3600.0, gt=0)
    """How often tags are re-resolved (moved tags, new versions)."""
    tag_policy: Literal["Warn", "Error"] = "Warn"
    """What a `latest` or non-semver tag is: a warning or an error that blocks publishing."""
    node_architectures: CommaList = Field(default_factory=list)
    """CPU architectures of the cluster's nodes (e.g. amd64,arm64); empty reads them from the
    nodes (needs list permission on nodes) or skips the check."""
    renku_image_check: Literal["Warn", "Error", "Off"] = "Warn"
    """Renku's own checks before publishing: its anonymous image check (can Renku's data service
    pull exactly the reference it will get?) and the platforms of its resource pools. Warn:
    published with a warning; Error: a finding blocks publishing; Off: Renku is not asked."""
    registry_insecure_hosts: CommaList = Field(default_factory=list)
    """Registry hosts spoken to over plain HTTP (tests, local mirrors)."""
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    """Timeout of one registry request."""
    registry_check_deadline_seconds: float = Field(default=60.0, gt=0)
    """One deadline for a whole image check (every request, retry, redirect and token fetch
    of it): a registry that answers slowly, byte by byte, is cut off here."""
    registry_cache_entries: int = Field(default=512, ge=0)
    """Entries each of the registry client's three caches keeps at most: manifests and config
    facts by digest, anonymous tokens by (realm, service, scope). 0 keeps nothing."""
    registry_cache_mib: float = Field(default=8.0, ge=0)
    """MiB each of those caches keeps at most, by the operator's estimate of what its entries
    hold; least recently used entries go first, expired tokens at once."""
    registry_read_budget_mib: float = Field(default=32.0, gt=0)
    """MiB of memory for registry answers (manifests, config blobs, tag lists) being read at
    once, across every check and registry: a read reserves twice its declared length (else
    twice the 4 MiB limit) first and waits when the budget is spent, within the check's
    deadline. One registry holds at most a quarter of it; answers up to 64 KiB never wait."""
    registry_internal_allowlist: CommaList = Field(default_factory=list)
    """Registries that may be reached although they resolve to loopback, private, link-local
    or cluster addresses (internal mirrors), comma-separated: host (any port), host:port, or a
    CIDR range of addresses. Their redirect targets and token services must be listed too."""
    cluster_cidrs: CommaList = Field(default_factory=list)
    """The cluster's service and pod ranges (e.g. 10.96.0.0/12,10.244.0.0/16), comma-separated:
    refused as registry targets like private ranges, even where they are public addresses."""

    @field_validator(
        "namespaces",
        "trusted_namespaces",
        "node_architectures",
        "registry_insecure_hosts",
        "registry_internal_allowlist",
        "cluster_cidrs",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("registry_internal_allowlist", "cluster_cidrs")
    @classmethod
    def _outbound_rules(cls, value: list[str], info: ValidationInfo) -> list[str]:
        try:
            if info.field_name == "cluster_cidrs":
                AddressPolicy.of(cluster_cidrs=value)
            else:
                AddressPolicy.of(allowlist=value)
        except OutboundRuleError as error:
            raise ValueError(str(error)) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @property
    def smoke_pod_namespace(self) -> str:
        return self.smoke_namespace or self.operator_namespace

    @property
    def renku_verify(self) -> str | bool:
        """What the Renku clients verify TLS with: the CA bundle's path, or the system's."""
        return str(self.renku_ca_bundle) if self.renku_ca_bundle else True

    def is_trusted(self, namespace: str) -> bool:
        """Whether GlobalEnvironments in `namespace` may adopt and use deletionPolicy Delete."""
        trusted = self.trusted_namespaces or [self.operator_namespace]
        return "*" in trusted or namespace in trusted

    @property
    def credentials_namespace(self) -> str:
        return self.renku_credentials_namespace or self.operator_namespace


class SettingsError(Exception):
    """A setting has a bad value; the message names the environment variable."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with CLI flags as overrides."""
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError("invalid operator settings:\n  " + "\n  ".join(unknown))
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(describe_settings_error(exc)) from None
    except pydantic_settings.SettingsError as exc:
        # Raised for JSON that does not parse; its message names the field, not the variable.
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        raise SettingsError(
            f"invalid operator settings:\n  setting {ENV_PREFIX}{field.upper()}: not valid JSON "
            '(write e.g. {"key": "value"} for a map or [{...}] for a list)'
        ) from None


# Variables Kubernetes injects for a Service named renku-env-operator[-...] (service links).
_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_\w+)?)?)$"
)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Misspelled RENKU_ENV_OPERATOR_* variables: silently ignoring them hides mistakes."""
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    problems = []
    candidates = (v for v in environ if v.startswith(ENV_PREFIX) and v not in known)
    for variable in sorted(v for v in candidates if not _SERVICE_LINK.search(v)):
        close = difflib.get_close_matches(variable, known, n=1)
        hint = f": did you mean {close[0]}?" if close else ": no such setting"
        problems.append(f"setting {variable} is unknown{hint}")
    return problems


def describe_settings_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"])
        env = field if field.isupper() else f"{ENV_PREFIX}{field.upper()}"
        # Never echo what might be a secret (a token, or a URL with user:password@).
        secretive = any(word in field.lower() for word in ("token", "url", "secret"))
        shown = "" if secretive else f" (got {error.get('input')!r})"
        link = str(error.get("input", "")).startswith("tcp://")
        hint = (
            " (a Kubernetes service link: set enableServiceLinks: false on the pod)" if link else ""
        )
        lines.append(f"setting {env}: {error['msg']}{shown}{hint}")
    return "invalid operator settings:\n  " + "\n  ".join(lines)
