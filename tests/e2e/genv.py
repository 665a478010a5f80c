"""GlobalEnvironment manifests and predicates on their status, for the e2e tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.e2e.cluster import Obj
from tests.e2e.options import ROOT

API_VERSION = "renku.io/v1alpha1"
CRD_NAME = "globalenvironments.renku.io"
CRD_PATH = ROOT / "crds" / f"{CRD_NAME}.yaml"
CLAIM_CRD_NAME = "globalenvironmentclaims.renku.io"
CLAIM_CRD_PATH = ROOT / "crds" / f"{CLAIM_CRD_NAME}.yaml"
FINALIZER = "globalenvironments.renku.io/finalizer"
RENKU_IMAGE = "ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3"
Predicate = Callable[[Obj | None], bool]


@dataclass(frozen=True)
class CrdInstall:
    """The CRD as this run found it."""

    preexisting: bool
    """The GlobalEnvironment CRD existed before the run (then it is left in place at the end)."""
    claims_preexisting: bool = False
    """The same for the GlobalEnvironmentClaim CRD (the operator's ownership records)."""


def established(obj: Obj | None) -> bool:
    """Predicate: a CRD's Established condition is True."""
    return has_condition("Established", "True")(obj)


def genv(name: str, namespace: str, /, **spec: Any) -> Obj:
    """A GlobalEnvironment manifest (spec.image defaults to a public Renku image)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "GlobalEnvironment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": RENKU_IMAGE, **spec},
    }


def condition(obj: Obj | None, type_: str) -> dict[str, Any] | None:
    """The condition of that type, if the object has one."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def has_condition(type_: str, status: str, reason: str | None = None) -> Predicate:
    """Predicate: the condition has this status (and reason)."""

    def check(obj: Obj | None) -> bool:
        found = condition(obj, type_)
        return (
            found is not None
            and found.get("status") == status
            and (reason is None or found.get("reason") == reason)
        )

    return check


def synced_at(generation: int, *reasons: str) -> Predicate:
    """Predicate: Synced is True with one of `reasons` for `generation`, fully observed."""

    def check(obj: Obj | None) -> bool:
        found = condition(obj, "Synced") or {}
        observed = ((obj or {}).get("status") or {}).get("observedGeneration")
        in_sync = found.get("status") == "True" and found.get("reason") in reasons
        return in_sync and found.get("observedGeneration") == generation == observed

    return check


def has_conditions(*types: str) -> Predicate:
    """Predicate: the operator reported all these condition types (any status)."""
    return lambda obj: all(condition(obj, type_) is not None for type_ in types)


def gone(obj: Obj | None) -> bool:
    """Predicate: the object no longer exists."""
    return obj is None


def checks(obj: Obj) -> dict[str, tuple[str, str]]:
    """The smoke test's checks: name -> (result, message)."""
    smoke = (obj.get("status") or {}).get("smokeTest") or {}
    return {c["name"]: (c["result"], c.get("message", "")) for c in smoke.get("checks") or []}


SESSION_PORT = 8888
SESSION_WORK = "/home/renku/work"


def smoke_session(
    image: str, display: str, timeout: int, *, command: list[str] | None = None
) -> dict[str, Any]:
    """A session spec on port 8888 serving /home/renku/work at "/" (Renku's proxy strips the
    session's base path), smoke-tested within `timeout` seconds; `command`: the image's own
    when None."""
    spec: dict[str, Any] = {
        "name": display,
        "image": image,
        "port": SESSION_PORT,
        "uid": 1000,
        "gid": 1000,
        "workingDirectory": SESSION_WORK,
        "mountDirectory": SESSION_WORK,
        "defaultUrl": "/",
        "stripPathPrefix": True,
        "smokeTest": {"timeoutSeconds": timeout, "stableSeconds": 5},
    }
    if command is not None:
        spec["command"] = command
    return spec
