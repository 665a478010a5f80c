"""What the e2e suite was asked to do: command-line options, with environment fallbacks.

Only ``--kubeconfig``, ``--e2e-namespace``, ``--renku-url`` and ``--renku-token`` are registered
(in ``tests/conftest.py``). ``--smoke-image`` and ``--operator-image`` are read when a conftest
registers them and otherwise fall back to the environment, so the suite works either way.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SMOKE_IMAGE = "docker.io/library/python:3.12-alpine"
NEEDS_KUBECONFIG = "needs --kubeconfig (a real cluster; see README: End-to-end tests)"


@dataclass(frozen=True)
class E2EOptions:
    """The suite's inputs, resolved once per session."""

    kubeconfig: Path | None
    namespace_prefix: str
    renku_url: str | None
    renku_token: str | None
    smoke_image: str
    operator_image: str | None
    helm: Path | None

    def problems(self) -> list[str]:
        """Inconsistent inputs, as messages for a usage error (empty when all is well)."""
        found = []
        if self.kubeconfig is not None and not self.kubeconfig.is_file():
            found.append(f"--kubeconfig {self.kubeconfig}: no such file")
        if bool(self.renku_url) != bool(self.renku_token):
            found.append(
                "a real Renku needs both --renku-url and --renku-token "
                "(or RENKU_E2E_URL and RENKU_E2E_TOKEN); give neither to use the Renku test double"
            )
        if len(self.namespace_prefix) > 50:
            found.append("--e2e-namespace: at most 50 characters (a random suffix is added)")
        return found


def _option(config: pytest.Config, name: str) -> str | None:
    """An option's value; None when it is unset or not registered at all."""
    value = config.getoption(name, default=None)
    return str(value) if value else None


def find_helm() -> Path | None:
    """$HELM, else the repository's .tools/bin/helm, else helm on the PATH."""
    candidates = [
        os.environ.get("HELM"),
        str(ROOT / ".tools" / "bin" / "helm"),
        shutil.which("helm"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def read_options(config: pytest.Config) -> E2EOptions:
    """Options first, then RENKU_E2E_* environment variables."""
    kubeconfig = _option(config, "--kubeconfig")
    return E2EOptions(
        kubeconfig=Path(kubeconfig).expanduser() if kubeconfig else None,
        namespace_prefix=_option(config, "--e2e-namespace") or "renku-env-operator-e2e",
        renku_url=_option(config, "--renku-url") or os.environ.get("RENKU_E2E_URL") or None,
        renku_token=_option(config, "--renku-token") or os.environ.get("RENKU_E2E_TOKEN") or None,
        smoke_image=_option(config, "--smoke-image")
        or os.environ.get("RENKU_E2E_SMOKE_IMAGE")
        or DEFAULT_SMOKE_IMAGE,
        operator_image=_option(config, "--operator-image")
        or os.environ.get("RENKU_E2E_OPERATOR_IMAGE")
        or None,
        helm=find_helm(),
    )
