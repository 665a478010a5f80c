"""The real operator, run in the test process against the cluster under test.

In-process, so that a loopback Renku test double is reachable by it, and so that a failing
run shows the operator's own traceback. Watches only the run's namespace; no ports are opened.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import kopf
import kubernetes.client
import kubernetes.config.kube_config
import pytest

from renku_env_operator.config import Settings
from renku_env_operator.runner import run_operator
from tests.e2e.renku_api import RenkuApi
from tests.support.operator_runner import OperatorThread

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def operator_settings(namespace: str, renku: RenkuApi) -> Settings:
    """Settings for the operator under test: the run's namespace, quick retries."""
    return Settings(
        namespaces=[namespace],
        operator_namespace=namespace,
        trusted_namespaces=[namespace],
        smoke_namespace=namespace,
        liveness_endpoint=None,
        metrics_port=0,
        renku_url=renku.url,
        renku_token=renku.token,
        # Registry checks need the test machine to reach the image's registry: not assumed.
        image_checks=False,
        retry_backoff_seconds=2.0,
        drift_interval_seconds=600.0,
        smoke_poll_seconds=1.0,
    )


def tune_for_cluster(settings: kopf.OperatorSettings) -> None:
    """kopf's settings for a test run: bounded requests and a quick stop."""
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150
    settings.watching.connect_timeout = 15
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 15
    settings.queueing.exit_timeout = 5
    settings.process.ultimate_exiting_timeout = 20


@contextmanager
def kubeconfig_environment(kubeconfig: Path) -> Iterator[None]:
    """Make the kubeconfig the one kopf's login and the operator's clients load.

    ``kubernetes.config`` reads $KUBECONFIG once, at import: its default location is patched
    too. The in-cluster variables are removed, or a test run inside a pod would use the pod's
    own service account instead of the cluster named on the command line.
    """
    configuration = kubernetes.client.Configuration
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(kubeconfig))
        patch.setattr(
            kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
        )
        patch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        patch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
        # load_kube_config() sets a process-wide default: restore the previous one afterwards.
        patch.setattr(configuration, "_default", configuration._default)
        yield


def operator_thread(settings: Settings) -> OperatorThread:
    """The operator in a thread (not started): ``await thread.__aenter__()`` starts it."""

    def target(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
        run_operator(settings, stop_flag=stop_flag, ready_flag=ready_flag, tune=tune_for_cluster)

    return OperatorThread(
        target, name="e2e-operator", ready_timeout=READY_TIMEOUT, stop_timeout=STOP_TIMEOUT
    )
