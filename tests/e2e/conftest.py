"""Fixtures of the real-cluster suite. Without --kubeconfig every test here is skipped.

Per run: one namespace with a random suffix (deleted at the end, after releasing any finalizer
left behind), the CRD applied from crds/ (deleted at the end only if this run created it).
Per test: Renku (a real one from --renku-url/--renku-token or RENKU_E2E_URL/RENKU_E2E_TOKEN,
else the loopback test double) with clean-up of what the test made, and the operator.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import yaml

from renku_env_operator.config import Settings
from tests.e2e.cluster import CRD, GENV, NAMESPACE, Cluster, ClusterUnavailableError
from tests.e2e.genv import (
    CLAIM_CRD_NAME,
    CLAIM_CRD_PATH,
    CRD_NAME,
    CRD_PATH,
    CrdInstall,
    established,
    gone,
)
from tests.e2e.helm import Helm
from tests.e2e.operator import kubeconfig_environment, operator_settings, operator_thread
from tests.e2e.options import NEEDS_KUBECONFIG, E2EOptions, read_options
from tests.e2e.renku_api import RenkuApi
from tests.e2e.watching import wait_for, wait_for_async

HERE = Path(__file__).parent
HELM_MANAGED = "app.kubernetes.io/managed-by"
MIN_VERSION = (1, 28)  # the chart's kubeVersion; the CRD's CEL rules use `reason` (1.28)
OPTIONS = pytest.StashKey[E2EOptions]()


def pytest_configure(config: pytest.Config) -> None:
    options = read_options(config)
    config.stash[OPTIONS] = options
    if options.kubeconfig is not None and options.problems():
        raise pytest.UsageError("e2e: " + "; ".join(options.problems()))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks of this conftest see the whole session's items: only ours are marked.
    skip = config.stash[OPTIONS].kubeconfig is None
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)
            if skip:
                item.add_marker(pytest.mark.skip(reason=NEEDS_KUBECONFIG))


@pytest.fixture(scope="session")
def e2e_options(pytestconfig: pytest.Config) -> E2EOptions:
    return pytestconfig.stash[OPTIONS]


@pytest.fixture(scope="session")
def image_registry() -> str:
    """The registry with tests/cluster/images.sh's test images (`make e2e` sets it)."""
    found = os.environ.get("RENKU_E2E_IMAGE_REGISTRY")
    if not found:
        pytest.skip(
            "set RENKU_E2E_IMAGE_REGISTRY to a registry with tests/cluster/images.sh's images"
        )
    return found


@pytest.fixture(scope="session")
def run_id() -> str:
    """Tells this run's objects (namespace, Renku names) from any other run's."""
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def cluster(e2e_options: E2EOptions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster of --kubeconfig; the run stops at once if it cannot be reached."""
    if e2e_options.kubeconfig is None:
        pytest.skip(NEEDS_KUBECONFIG)
    try:
        connected = Cluster.connect(e2e_options.kubeconfig, tmp_path_factory.mktemp("discovery"))
    except ClusterUnavailableError as exc:
        pytest.exit(f"e2e: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
    if connected.version is not None and connected.version < MIN_VERSION:
        connected.close()
        pytest.skip(f"the operator needs Kubernetes >= 1.28; this cluster runs {connected.version}")
    try:
        yield connected
    finally:
        connected.close()


@pytest.fixture(scope="session")
def crd(cluster: Cluster) -> Iterator[CrdInstall]:
    """crds/ applied (server-side apply) and Established: GlobalEnvironment, and the operator's
    ownership records (GlobalEnvironmentClaim)."""
    preexisting = cluster.get(CRD, None, CRD_NAME) is not None
    claims_preexisting = cluster.get(CRD, None, CLAIM_CRD_NAME) is not None
    cluster.apply(yaml.safe_load(CRD_PATH.read_text(encoding="utf-8")))
    cluster.apply(yaml.safe_load(CLAIM_CRD_PATH.read_text(encoding="utf-8")))
    try:
        for name in (CRD_NAME, CLAIM_CRD_NAME):
            wait_for(cluster, CRD, None, name, established, timeout=60, what="Established")
        yield CrdInstall(preexisting, claims_preexisting)
    finally:
        if not preexisting:
            cluster.delete(CRD, None, CRD_NAME)
        if not claims_preexisting:
            cluster.delete(CRD, None, CLAIM_CRD_NAME)


@pytest.fixture(scope="session")
def namespace(
    cluster: Cluster, crd: CrdInstall, e2e_options: E2EOptions, run_id: str
) -> Iterator[str]:
    """A fresh namespace for the run; deleted at the end, whatever happened."""
    name = f"{e2e_options.namespace_prefix}-{run_id}"
    labels = {"app.kubernetes.io/created-by": "renku-env-operator-e2e"}
    cluster.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )
    try:
        yield name
    finally:
        # No operator runs any more: finalizers left behind would keep the namespace forever.
        for obj in cluster.list(GENV, name):
            if obj["metadata"].get("finalizers"):
                cluster.patch(
                    GENV, name, obj["metadata"]["name"], {"metadata": {"finalizers": None}}
                )
        cluster.delete(NAMESPACE, None, name)
        # The chart's default smoke namespace of releases installed in it ("<namespace>-smoke"),
        # should a failed test have left one behind.
        smoke = f"{name}-smoke"
        found = cluster.get(NAMESPACE, None, smoke)
        if found and found["metadata"].get("labels", {}).get(HELM_MANAGED) == "Helm":
            cluster.delete(NAMESPACE, None, smoke)


@pytest.fixture
def renku(
    request: pytest.FixtureRequest, e2e_options: E2EOptions, run_id: str
) -> Iterator[RenkuApi]:
    """Renku for one test; what the test created there is removed afterwards."""
    prefix = f"e2e-{run_id} {request.node.name}"[:60]
    if e2e_options.renku_url and e2e_options.renku_token:
        api = RenkuApi(e2e_options.renku_url, e2e_options.renku_token, prefix)
    else:
        double = request.getfixturevalue("renku_double")
        api = RenkuApi(double.url, double.admin_token, prefix)
    try:
        yield api
        api.remove_created()
    finally:
        api.close()


@pytest_asyncio.fixture
async def operator(cluster: Cluster, namespace: str, renku: RenkuApi) -> AsyncIterator[Settings]:
    """The operator, running in this process until the test ends.

    At the end every GlobalEnvironment still in the namespace is deleted while the operator
    runs, so that it releases them as it would in production (and cleans up Renku).
    """
    settings = operator_settings(namespace, renku)
    with kubeconfig_environment(cluster.kubeconfig):
        thread = operator_thread(settings)
        await thread.__aenter__()
        try:
            yield settings
            for obj in cluster.list(GENV, namespace):
                cluster.delete(GENV, namespace, obj["metadata"]["name"])
            for obj in cluster.list(GENV, namespace):
                name = obj["metadata"]["name"]
                await wait_for_async(
                    cluster,
                    GENV,
                    namespace,
                    name,
                    gone,
                    timeout=120,
                    what="released by the operator",
                )
        finally:
            await thread.stop()


@pytest.fixture(scope="session")
def helm(
    e2e_options: E2EOptions,
    cluster: Cluster,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Helm:
    """helm against the cluster ($HELM, .tools/bin/helm or PATH)."""
    if e2e_options.helm is None:
        pytest.skip(
            "no helm binary: set HELM, run `make install` (.tools/bin/helm) or put it on PATH"
        )
    return Helm(e2e_options.helm, cluster.kubeconfig, namespace, tmp_path_factory.mktemp("helm"))
