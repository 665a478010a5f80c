"""What the handlers share: built once at start-up, closed at shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes import client as k8s

from ..clients.renku import RenkuClient
from ..config import Settings
from ..services.reconciler import Reconciler


@dataclass
class OperatorContext:
    settings: Settings
    api_client: k8s.ApiClient
    renku: RenkuClient
    reconciler: Reconciler
    closers: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in reversed(self.closers):
            await closer()
        await self.renku.aclose()
        self.api_client.close()
