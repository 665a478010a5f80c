"""The smoke tests' ports and the facts of one step: what they need from Kubernetes, what they
test, and the budgets that apply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import SmokeTestStatus
from ..clients.kube import ProxyResponse
from ..config import Settings
from ..domain import smokepod as sp

API_VERSION, KIND = "renku.io/v1alpha1", "GlobalEnvironment"
Result = Literal["Pending", "Running", "Passed", "Failed"]


class KubeApi(Protocol):
    """What the smoke tests need from Kubernetes (clients/kube.py's KubeClient)."""

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    async def delete_pod(self, namespace: str, name: str) -> None: ...
    async def patch_pod_metadata(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]: ...
    async def stop_pod(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def read_pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int = 50,
        *,
        previous: bool = False,
    ) -> str: ...
    async def list_events_for(self, namespace: str, name: str) -> list[dict[str, Any]]: ...
    async def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> ProxyResponse: ...


class Target(Protocol):
    """The GlobalEnvironment under test (any object with these attributes)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def generation(self) -> int: ...


@dataclass(frozen=True)
class SmokeTarget:
    """A plain Target."""

    name: str
    namespace: str
    uid: str
    generation: int


@dataclass(frozen=True)
class Run:
    """Everything one step knows about the test it works on."""

    target: Target
    spec: GlobalEnvironmentSpec
    image: str
    image_workdir: str | None
    purpose: sp.Purpose
    now: datetime
    namespace: str
    timeout: int
    stable: int

    @property
    def owner(self) -> sp.OwnerRef:
        t = self.target
        return sp.OwnerRef(API_VERSION, KIND, t.name, t.uid, t.namespace)

    @property
    def spec_hash(self) -> str:
        return sp.smoke_hash(self.spec, self.image, self.image_workdir)

    def labels(self, role: sp.Role) -> dict[str, str]:
        return sp.smoke_labels(
            owner=self.owner,
            generation=self.target.generation,
            spec_hash=self.spec_hash,
            purpose=self.purpose,
            role=role,
        )

    @classmethod
    def of(
        cls,
        settings: Settings,
        target: Target,
        spec: GlobalEnvironmentSpec,
        image: str,
        *,
        image_workdir: str | None,
        purpose: sp.Purpose,
        now: datetime,
    ) -> Run:
        """A step's facts, with the spec's budgets or else the operator's."""
        smoke = spec.smoke_test
        timeout = smoke.timeout_seconds if smoke else None
        stable = smoke.stable_seconds if smoke else None
        return cls(
            target=target,
            spec=spec,
            image=image,
            image_workdir=image_workdir,
            purpose=purpose,
            now=now,
            namespace=settings.smoke_pod_namespace,
            timeout=settings.smoke_timeout_seconds if timeout is None else timeout,
            stable=settings.smoke_stable_seconds if stable is None else stable,
        )

    def status(self, result: Result, reason: str, message: str, **fields: Any) -> SmokeTestStatus:
        return SmokeTestStatus(
            result=result,
            reason=reason,
            message=message,
            generation=self.target.generation,
            image=self.image,
            **fields,
        )
