"""The smoke-test pod: a pod that behaves like the session pod Renku would start.

Pure: builds plain manifest dicts from the spec and the operator's settings. What the pod
mirrors is listed in SESSIONS.md ("The session container", "The health check"); what it adds
is only what a test needs (a deadline, resources, labels to find it again, an owner).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from ..api.spec import GlobalEnvironmentSpec
from ..config import OPERATOR_NAME, Settings
from .paths import ResolvedPaths, resolve_paths
from .payload import RENKU_DEFAULTS

SESSION_CONTAINER = "session"
DEFAULT_HOST = "renku.example.org"
SECRETS_PATH = "/secrets"  # Renku's default secrets mount directory of a project
VOLUME_SIZE = "1Gi"  # the launcher's default disk size
SHM_SIZE = "1G"

# Labels: how a restarted operator finds its pods again.
MANAGED_BY = "app.kubernetes.io/managed-by"
SMOKE_TEST = "renku.io/smoke-test"
GLOBAL_ENVIRONMENT = "renku.io/globalenvironment"
GLOBAL_ENVIRONMENT_UID = "renku.io/globalenvironment-uid"
GENERATION = "renku.io/generation"
SPEC_HASH = "renku.io/smoke-hash"
PURPOSE = "renku.io/smoke-purpose"
ROLE = "renku.io/smoke-role"
FINISHED = "renku.io/smoke-finished"
"""Set (Unix seconds) when a verdict was reached: the pod no longer holds a slot."""

Purpose = Literal["current", "update"]
"""`current` tests spec.image, `update` an update candidate: separate pods, separate slots."""
Role = Literal["session", "probe"]


@dataclass(frozen=True)
class OwnerRef:
    """The GlobalEnvironment a smoke pod tests and belongs to."""

    api_version: str
    kind: str
    name: str
    uid: str
    namespace: str | None = None
    """The owner's namespace; None means the pod's own. An owner reference is set only when
    they are the same: the garbage collector deletes a pod whose owner is elsewhere at once."""


@dataclass(frozen=True)
class SessionSettings:
    """The spec's session fields with Renku's defaults applied, and the resolved paths."""

    port: int
    uid: int
    gid: int
    default_url: str
    strip_path_prefix: bool
    paths: ResolvedPaths

    @classmethod
    def of(cls, spec: GlobalEnvironmentSpec, image_workdir: str | None) -> SessionSettings:
        """What Renku would use for this spec and image."""
        return cls(
            port=spec.port or RENKU_DEFAULTS["port"],
            uid=spec.uid or RENKU_DEFAULTS["uid"],
            gid=spec.gid or RENKU_DEFAULTS["gid"],
            default_url=spec.default_url or RENKU_DEFAULTS["default_url"],
            strip_path_prefix=bool(spec.strip_path_prefix),
            paths=resolve_paths(spec.working_directory, spec.mount_directory, image_workdir),
        )


def smoke_hash(spec: GlobalEnvironmentSpec, image: str, image_workdir: str | None) -> str:
    """Short hash of everything that shapes the pod, to recognise the right pod again."""
    session = {
        key: getattr(spec, key)
        for key in ("port", "uid", "gid", "working_directory", "mount_directory", "command")
    }
    session |= {"args": spec.args, "default_url": spec.default_url, "strip": spec.strip_path_prefix}
    text = json.dumps([image, image_workdir, session], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def smoke_pod_name(owner_name: str, spec_hash: str, suffix: str) -> str:
    """A pod name of at most 57 characters, so that `<name>-probe` fits in 63."""
    return f"smoke-{_slug(owner_name, 28)}-{spec_hash[:8]}-{suffix[:8]}".lower()


def smoke_labels(
    *, owner: OwnerRef, generation: int, spec_hash: str, purpose: Purpose, role: Role
) -> dict[str, str]:
    """The labels of a smoke pod (label values are limited to 63 characters)."""
    return {
        MANAGED_BY: OPERATOR_NAME,
        SMOKE_TEST: "true",
        GLOBAL_ENVIRONMENT: label_value(owner.name),
        GLOBAL_ENVIRONMENT_UID: owner.uid,
        GENERATION: str(generation),
        SPEC_HASH: spec_hash,
        PURPOSE: purpose,
        ROLE: role,
    }


def server_name(owner: OwnerRef, generation: int) -> str:
    """A session name in Renku's shape: `<slug, 12 chars>-<md5 prefix, 12 chars>`."""
    digest = hashlib.md5(f"{owner.uid}-{generation}".encode(), usedforsecurity=False)
    return f"{_slug('smoke-tester', 12)}-{digest.hexdigest()[:12]}"


def build_smoke_pod(
    *,
    name: str,
    namespace: str,
    owner: OwnerRef,
    spec: GlobalEnvironmentSpec,
    image: str,
    image_workdir: str | None,
    generation: int,
    settings: Settings,
    labels: Mapping[str, str],
    timeout_seconds: int,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Pod manifest of a smoke test of `image` (ideally digest-pinned).

    `timeout_seconds` becomes activeDeadlineSeconds, a backstop should the operator go away.
    """
    session = SessionSettings.of(spec, image_workdir)
    base_path = f"/sessions/{server_name(owner, generation)}"
    container: dict[str, Any] = {
        "name": SESSION_CONTAINER,
        "image": image,
        "imagePullPolicy": "Always",
        "workingDir": session.paths.work_dir,
        **({"command": list(spec.command)} if spec.command else {}),
        **({"args": list(spec.args)} if spec.args else {}),
        "ports": [{"name": "http", "containerPort": session.port, "protocol": "TCP"}],
        "env": session_env(session, base_path, settings, owner_name=owner.name),
        "securityContext": container_security(session.uid, session.gid),
        "readinessProbe": readiness_probe(session.port),
        "resources": resources(settings),
        "volumeMounts": [
            {"name": "workspace", "mountPath": session.paths.mount_dir},
            {"name": "shm", "mountPath": "/dev/shm"},  # noqa: S108 - Renku mounts it here
        ],
        # The last log lines land in the termination message: visible in `kubectl describe`.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec = pod_basics(session.gid, settings, timeout_seconds)
    pod_spec |= {"restartPolicy": "Always", "containers": [container], "volumes": volumes()}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_metadata(name, namespace, owner, labels, annotations),
        "spec": pod_spec,
    }


def session_env(
    session: SessionSettings, base_path: str, settings: Settings, *, owner_name: str
) -> list[dict[str, str]]:
    """The variables Renku sets on an interactive session, with realistic values."""
    work, mount = session.paths.work_dir, session.paths.mount_dir
    seed = f"{owner_name}-{base_path}"
    values = {
        "RENKU_BASE_URL_PATH": base_path,
        "RENKU_BASE_URL": f"https://{public_host(settings)}{base_path}",
        "RENKU_MOUNT_DIR": mount,
        "RENKU_SESSION": "1",
        "RENKU_SESSION_IP": "0.0.0.0",  # noqa: S104 - what Renku tells the server to bind
        "RENKU_SESSION_PORT": str(session.port),
        "RENKU_WORKING_DIR": work,
        "RENKU_SECRETS_PATH": SECRETS_PATH,
        "RENKU_PROJECT_ID": fake_ulid(f"project-{seed}"),
        "RENKU_PROJECT_PATH": f"{OPERATOR_NAME}/{_slug(owner_name, 40)}",
        "RENKU_LAUNCHER_ID": fake_ulid(f"launcher-{seed}"),
        "CNB_APP_DIR": work,
    }
    return [{"name": key, "value": value} for key, value in values.items()]


def public_host(settings: Settings) -> str:
    """Renku's public host (and port): renku_public_url, else renku_url's, else an example."""
    url = settings.renku_public_url if settings.renku_public_url is not None else settings.renku_url
    if url is None:
        return DEFAULT_HOST
    # Never a user:password@ of the URL: smoke pods run images that namespace users choose.
    return urlsplit(str(url)).netloc.rpartition("@")[2] or DEFAULT_HOST


def readiness_probe(port: int) -> dict[str, Any]:
    """Renku's readiness probe of a local interactive session (Kubernetes' defaults spelt out)."""
    return {
        "tcpSocket": {"port": port},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "successThreshold": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 3,
    }


def container_security(uid: int, gid: int) -> dict[str, Any]:
    """The session container's securityContext (restricted Pod Security Standard)."""
    return {
        "runAsUser": uid,
        "runAsGroup": gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_basics(gid: int, settings: Settings, deadline_seconds: int) -> dict[str, Any]:
    """Pod-level fields shared by the smoke pod and the probe pod."""
    return {
        "securityContext": {"fsGroup": gid},
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "activeDeadlineSeconds": deadline_seconds,
        "terminationGracePeriodSeconds": 5,
        **(
            {"nodeSelector": dict(settings.smoke_node_selector)}
            if settings.smoke_node_selector
            else {}
        ),
        **({"tolerations": list(settings.smoke_tolerations)} if settings.smoke_tolerations else {}),
    }


def pod_metadata(
    name: str,
    namespace: str,
    owner: OwnerRef,
    labels: Mapping[str, str],
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    """Name, labels, annotations and, in the owner's namespace, the owner reference."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner.namespace in (None, namespace):
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]
    return metadata


def resources(settings: Settings) -> dict[str, dict[str, str]]:
    """Requests and limits of the session container, from the operator's settings."""
    return {
        "requests": {
            "cpu": settings.smoke_cpu_request,
            "memory": settings.smoke_memory_request,
            "ephemeral-storage": settings.smoke_ephemeral_storage_request,
        },
        "limits": {
            "cpu": settings.smoke_cpu_limit,
            "memory": settings.smoke_memory_limit,
            "ephemeral-storage": settings.smoke_ephemeral_storage_limit,
        },
    }


def volumes() -> list[dict[str, Any]]:
    """The session volume (an emptyDir standing in for the PVC) and Renku's /dev/shm."""
    return [
        {"name": "workspace", "emptyDir": {"sizeLimit": VOLUME_SIZE}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}},
    ]


def label_value(text: str) -> str:
    """`text` as a label value: itself when it fits, else shortened with a hash."""
    if len(text) <= 63:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{text[:52].rstrip('-_.')}-{digest}"


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fake_ulid(seed: str) -> str:
    """A stable, valid-looking ULID (26 Crockford base32 characters, first one 0-7)."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big")  # 128 bits
    chars = [_CROCKFORD[(number >> (5 * i)) & 31] for i in range(26)]
    return "".join(reversed(chars))


def _slug(text: str, length: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:length].strip("-")
    return slug if slug[:1].isalpha() else f"n{slug}"[:length]
