"""Shared fixtures: the emulated API server, the kubelet, the Renku double, the operator."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.support.kube",
    "tests.support.kubelet",
    "tests.support.operator_runner",
    "tests.support.renku_fixtures",
    "tests.support.memory_renku",
    "tests.support.registry",
    "tests.support.operator_fixtures",
    "tests.support.claims",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("renku-env-operator end-to-end")
    group.addoption("--kubeconfig", default=None, help="run tests/e2e against this cluster")
    group.addoption(
        "--e2e-namespace", default="renku-env-operator-e2e", help="namespace for e2e objects"
    )
    group.addoption("--renku-url", default=None, help="a real Renku data service for e2e tests")
    group.addoption("--renku-token", default=None, help="an admin bearer token for --renku-url")
    group.addoption(
        "--smoke-image", default=None, help="image for the real smoke pods (RENKU_E2E_SMOKE_IMAGE)"
    )
    group.addoption(
        "--operator-image",
        default=None,
        help="an operator image the cluster can pull (RENKU_E2E_OPERATOR_IMAGE)",
    )
