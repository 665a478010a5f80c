"""The Helm chart on a real API server: installed, accepted, and removed again.

Without RENKU_E2E_OPERATOR_IMAGE the operator image is one nobody can pull (no operator may run
by accident): only the objects are checked. With it, the operator really runs in the cluster.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.cluster import CRD, DEPLOYMENT, GENV, NAMESPACE, POD, SECRET, Cluster, Obj
from tests.e2e.genv import (
    CLAIM_CRD_NAME,
    CRD_NAME,
    CrdInstall,
    condition,
    established,
    gone,
    has_conditions,
)
from tests.e2e.helm import PEERING_CRDS, RELEASE_LABEL, Helm, chart_values, image_values
from tests.e2e.options import ROOT, E2EOptions
from tests.e2e.watching import wait_for_async, watch_until_async

SECRET_NAME = "e2e-renku-credentials"
CLUSTER_KINDS = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace"}
EXPECTED_KINDS = {"Deployment", "ServiceAccount", "Role", "RoleBinding", "Service"}
# The smoke namespace the chart creates by default, and its fences.
SMOKE_KINDS = {"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange"}
CLAIM = ("renku.io/v1alpha1", "GlobalEnvironmentClaim")
ERA_CLAIM = "ownership-era"  # api/claim.py: created at the operator's first start
ACCESS_REVIEW = ("authorization.k8s.io/v1", "SubjectAccessReview")
WAIT = 180.0


@pytest.fixture(scope="module")
def credentials(cluster: Cluster, namespace: str) -> str:
    """The Secret the releases name in renku.credentials.existingSecret."""
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": namespace},
            "stringData": {"token": "e2e-not-a-real-token"},
        }
    )
    return SECRET_NAME


def located(obj: Obj, namespace: str) -> tuple[tuple[str, str], str | None, str]:
    """(apiVersion, kind), namespace (None if cluster-scoped) and name of a manifest object."""
    scoped = None if obj["kind"] in CLUSTER_KINDS else namespace
    ref = (obj["apiVersion"], obj["kind"])
    return ref, obj["metadata"].get("namespace", scoped), obj["metadata"]["name"]


def assert_installed(cluster: Cluster, manifest: list[Obj], namespace: str, release: str) -> None:
    """Every object helm installed exists on the API server, labelled with the release."""
    for obj in manifest:
        ref, where, name = located(obj, namespace)
        found = cluster.get(ref, where, name)
        assert found is not None, f"{ref[1]} {name} is missing"
        assert found["metadata"]["labels"][RELEASE_LABEL] == release, found["metadata"]


async def assert_removed(
    cluster: Cluster, manifest: list[Obj], namespace: str, keep: set[str]
) -> None:
    """Every object but those in `keep` is deleted, and no pod of the release is left."""
    for obj in manifest:
        ref, where, name = located(obj, namespace)
        if name not in keep:
            await wait_for_async(cluster, ref, where, name, gone, timeout=WAIT, what="uninstalled")


async def wait_no_pods(cluster: Cluster, namespace: str, release: str) -> None:
    """The release's pods are gone (the next test may start an operator of its own)."""
    await watch_until_async(
        cluster,
        POD,
        namespace,
        lambda pods: not pods,
        timeout=WAIT,
        what=f"the pods of {release} to be gone",
        label_selector=f"{RELEASE_LABEL}={release}",
    )


@pytest.mark.timeout(600)
async def test_release_objects_are_accepted_and_uninstalled(
    cluster: Cluster, namespace: str, helm: Helm, credentials: str
) -> None:
    release = "e2e-objects"
    with helm.installed(release, chart_values(namespace, credentials)):
        manifest = helm.manifest(release)
        assert {obj["kind"] for obj in manifest} >= EXPECTED_KINDS | SMOKE_KINDS
        assert "CustomResourceDefinition" not in {obj["kind"] for obj in manifest}
        assert_installed(cluster, manifest, namespace, release)
        smoke = f"{namespace}-smoke"
        assert cluster.get(NAMESPACE, None, smoke) is not None
        assert_rights(cluster, namespace, smoke, f"{release}-renku-env-operator")

        helm.uninstall(release)
        await assert_removed(cluster, manifest, namespace, keep=set())
        await wait_no_pods(cluster, namespace, release)
    assert cluster.get(SECRET, namespace, credentials) is not None  # not the chart's to delete


@pytest.mark.timeout(600)
async def test_the_chart_installs_the_crds_and_keeps_them_on_uninstall(
    cluster: Cluster, namespace: str, helm: Helm, credentials: str, crd: CrdInstall
) -> None:
    if crd.preexisting or crd.claims_preexisting:
        pytest.skip("the CRDs existed before this run: the chart may not take them over")
    release = "e2e-crd"
    # Helm adopts an existing object that names the release (this run applied the CRD).
    adopt = {
        "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {
            "meta.helm.sh/release-name": release,
            "meta.helm.sh/release-namespace": namespace,
        },
    }
    for name in (CRD_NAME, CLAIM_CRD_NAME):
        cluster.patch(CRD, None, name, {"metadata": adopt})
    # kopf's peering CRDs (crds/) too, unless another kopf operator installed them: Helm never
    # deletes them, so this test does, and must not remove someone else's.
    peering = not any(cluster.get(CRD, None, name) for name in PEERING_CRDS)
    # The peering CRDs come with HA only (the kopf-peering subchart's crds/).
    values = chart_values(
        namespace, credentials, crds={"install": True, "keep": True}, ha={"enabled": True}
    )
    try:
        with helm.installed(release, values, skip_crds=not peering):
            manifest = helm.manifest(release)
            crds = {o["metadata"]["name"] for o in manifest if o["kind"] == CRD[1]}
            assert {CRD_NAME, CLAIM_CRD_NAME} <= crds
            assert_installed(cluster, manifest, namespace, release)
            for name in (CRD_NAME, CLAIM_CRD_NAME):
                served = cluster.get(CRD, None, name)
                assert served is not None
                assert served["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
            for name in PEERING_CRDS if peering else ():
                await wait_for_async(
                    cluster, CRD, None, name, established, timeout=WAIT, what="installed from crds/"
                )

            helm.uninstall(release)
            await assert_removed(cluster, manifest, namespace, keep={CRD_NAME, CLAIM_CRD_NAME})
            await wait_no_pods(cluster, namespace, release)
        for name in (CRD_NAME, CLAIM_CRD_NAME):
            assert established(cluster.get(CRD, None, name)), f"{name} must survive uninstall"
    finally:
        for name in PEERING_CRDS if peering else ():
            cluster.delete(CRD, None, name)


@pytest.mark.timeout(900)
async def test_the_operator_runs_in_the_cluster(
    cluster: Cluster, namespace: str, helm: Helm, credentials: str, e2e_options: E2EOptions
) -> None:
    if not e2e_options.operator_image:
        pytest.skip("set RENKU_E2E_OPERATOR_IMAGE to an operator image the cluster can pull")
    release = "e2e-operator"
    values = chart_values(namespace, credentials, image=image_values(e2e_options.operator_image))
    with helm.installed(release, values):
        await wait_for_async(
            cluster,
            DEPLOYMENT,
            namespace,
            f"{release}-renku-env-operator",
            lambda obj: (condition(obj, "Available") or {}).get("status") == "True",
            timeout=300,
            what="Available",
        )
        [pod] = cluster.list(POD, namespace, label_selector=f"{RELEASE_LABEL}={release}")
        pod_name = pod["metadata"]["name"]
        cluster.proxy_get(namespace, pod_name, 8080, "/healthz")  # kopf's liveness endpoint
        # It started, so it could read or create its ownership records with its own rights.
        assert cluster.get(CLAIM, namespace, ERA_CLAIM) is not None
        await check_an_example_gets_conditions(cluster, namespace)
        current = cluster.get(POD, namespace, pod_name) or {}
        restarts = [s["restartCount"] for s in current["status"]["containerStatuses"]]
        assert restarts == [0], current["status"]
        helm.uninstall(release)
        await wait_no_pods(cluster, namespace, release)


def can(
    cluster: Cluster, user: str, verb: str, resource: str, namespace: str, group: str = ""
) -> bool:
    """Whether the API server's own authorizer lets ServiceAccount `user`
    (system:serviceaccount:<namespace>:<name>) do this (a SubjectAccessReview)."""
    sa_namespace = user.split(":")[2]
    name, _, subresource = resource.partition("/")
    review = cluster.create(
        {
            "apiVersion": ACCESS_REVIEW[0],
            "kind": ACCESS_REVIEW[1],
            "spec": {
                "user": user,
                # A ServiceAccount's groups: rights given to them count too.
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{sa_namespace}",
                    "system:authenticated",
                ],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": name,
                    "subresource": subresource,
                    "namespace": namespace,
                },
            },
        }
    )
    return bool(review["status"].get("allowed"))


def assert_rights(cluster: Cluster, namespace: str, smoke: str, service_account: str) -> None:
    """The operator's ServiceAccount may do what the chart says, where it says, and no more."""
    user = f"system:serviceaccount:{namespace}:{service_account}"
    claims = "globalenvironmentclaims"
    for verb in ("get", "list", "create", "patch", "delete"):
        assert can(cluster, user, verb, claims, namespace, "renku.io"), verb
        assert not can(cluster, user, verb, claims, smoke, "renku.io"), verb
    assert not can(cluster, user, "update", claims, namespace, "renku.io")
    assert can(cluster, user, "patch", "globalenvironments/status", namespace, "renku.io")
    assert not can(cluster, user, "delete", "globalenvironments", namespace, "renku.io")
    for verb in ("create", "delete", "watch"):
        assert can(cluster, user, verb, "pods", smoke), verb
        assert not can(cluster, user, verb, "pods", namespace), verb
    assert can(cluster, user, "get", "pods/proxy", smoke)
    assert not can(cluster, user, "get", "pods/proxy", namespace)
    assert not can(cluster, user, "list", "secrets", namespace)


async def check_an_example_gets_conditions(cluster: Cluster, namespace: str) -> None:
    """The in-cluster operator reconciles the shipped example and releases it on delete."""
    example: dict[str, Any] = yaml.safe_load(
        (ROOT / "examples" / "renku-jupyterlab.yaml").read_text(encoding="utf-8")
    )
    name = "example-jupyterlab"
    example["metadata"] = {"name": name, "namespace": namespace}
    cluster.create(example)
    # Renku is unreachable on purpose: the status explains that, which is all we ask here.
    seen = await wait_for_async(
        cluster,
        GENV,
        namespace,
        name,
        has_conditions("Ready", "Validated", "Synced"),
        timeout=WAIT,
        what="conditions from the operator",
    )
    assert (condition(seen, "Validated") or {}).get("status") == "True", seen
    # Orphan: nothing to clean up in the unreachable Renku, so the finalizer goes at once.
    cluster.patch(GENV, namespace, name, {"spec": {"deletionPolicy": "Orphan"}})
    cluster.delete(GENV, namespace, name)
    await wait_for_async(cluster, GENV, namespace, name, gone, timeout=WAIT, what="released")
