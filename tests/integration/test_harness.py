"""Proof of the Kubernetes test harness: emulator semantics, kopf, the kubelet, the official client.

A tiny kopf operator (own finalizer) runs in a thread against the emulator, logging in through
the kubeconfig exactly as in production.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import kmock
import kopf
import kubernetes.client
import kubernetes.config
import kubernetes.watch
import pytest

from tests.support.kube import GENV, PODS, Kube, KubeApiError, dig
from tests.support.kube_pods import ProxyAnswer
from tests.support.kube_steps import hold, scheduled, started
from tests.support.kubelet import Kubelet, scenario
from tests.support.operator_runner import OperatorTarget, OperatorThread, configure_for_emulator

NS = "renku"
FINALIZER = "test.example/finalizer"
GROUP_VERSION_PLURAL = ("renku.io", "v1alpha1", "globalenvironments")
IMAGE = "ghcr.io/acme/env:1.0"


def genv(name: str, image: str = "python:3.12") -> dict[str, Any]:
    """A GlobalEnvironment body."""
    meta = {"name": name, "namespace": NS}
    return {"apiVersion": "renku.io/v1alpha1", "kind": "GlobalEnvironment", "metadata": meta,
            "spec": {"image": image}, "status": {"ignored": "on create"}}  # fmt: skip


def smoke_pod(name: str, image: str) -> dict[str, Any]:
    """The pod the tiny operator creates for an environment."""
    labels = {"renku.io/environment": name}
    container = {"name": "main", "image": image, "ports": [{"containerPort": 8888}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-smoke", "namespace": NS, "labels": labels},
            "spec": {"containers": [container]}}  # fmt: skip


def tiny_operator(deleted: list[str]) -> OperatorTarget:
    """A kopf operator: creates a pod (official client), writes status, releases on delete."""
    registry = kopf.OperatorRegistry()
    settings = configure_for_emulator(kopf.OperatorSettings())
    settings.persistence.finalizer = FINALIZER

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)  # reads the kubeconfig, as in production

    @kopf.on.create(*GROUP_VERSION_PLURAL, registry=registry)
    def created(name: str, spec: Any, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        kopf.info(body, reason="Creating", message="the smoke pod")  # an Event with generateName
        api = kubernetes.client.CoreV1Api()
        api.create_namespaced_pod(NS, smoke_pod(name, spec["image"]))  # sync: kopf's executor
        patch.status["phase"] = "Created"

    @kopf.on.update(*GROUP_VERSION_PLURAL, field="spec", registry=registry)
    def updated(meta: Any, patch: kopf.Patch, **_: Any) -> None:
        patch.status["seenGeneration"] = meta["generation"]

    @kopf.on.delete(*GROUP_VERSION_PLURAL, registry=registry)
    def released(name: str, **_: Any) -> None:
        deleted.append(name)

    def target(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
        kopf.run(registry=registry, settings=settings, namespaces=[NS],
                 stop_flag=stop_flag, ready_flag=ready_flag)  # fmt: skip

    return target


async def test_kopf_drives_a_global_environment_through_its_life(
    kube: Kube, kube_env: object
) -> None:
    deleted: list[str] = []
    async with OperatorThread(tiny_operator(deleted)):
        await kube.wait_watching(GENV, NS)
        await kube.create(genv("py"))
        obj = await kube.wait_for(GENV, NS, "py", lambda o: dig(o, "status.phase") == "Created")
        assert FINALIZER in obj["metadata"]["finalizers"]
        assert obj["metadata"]["generation"] == 1  # status and finalizer writes keep it
        assert "ignored" not in obj["status"]
        finalizer_patch = [
            r for r in kube.emulator[kmock.method.PATCH]
            if isinstance(r.data, list) and r.data[0]["op"] == "test"
        ]  # fmt: skip
        assert finalizer_patch[0].data[0]["path"] == "/metadata/resourceVersion"

        await kube.patch(GENV, NS, "py", {"spec": {"image": "python:3.13"}})
        obj = await kube.wait_for(GENV, NS, "py", lambda o: dig(o, "status.seenGeneration") == 2)
        assert obj["metadata"]["generation"] == 2

        event = await kube.wait_event("py", "Creating")
        assert event["metadata"]["name"].startswith("kopf-event-")
        assert len(event["metadata"]["name"]) == len("kopf-event-") + 5

        marked = await kube.delete(GENV, NS, "py")
        assert marked["metadata"]["deletionTimestamp"]
        assert marked["metadata"]["generation"] == 3  # set deletionTimestamp bumps it
        await kube.wait_gone(GENV, NS, "py")
    assert deleted == ["py"]
    kinds = [e.type for e in kube.emulator.log.entries if e.resource == GENV]
    assert kinds[-2:] == ["MODIFIED", "DELETED"]


async def test_kopf_pods_are_driven_by_the_kubelet(
    kube: Kube, kube_env: object, kubelet: Kubelet
) -> None:
    kubelet.plan({"renku.io/environment": "ok"}, scenario("ready", log="up\n", body="fine"))
    kubelet.plan({"renku.io/environment": "bad"}, scenario("crashloop", exit_code=3, log="boom\n"))
    async with OperatorThread(tiny_operator([])):
        await kube.wait_watching(GENV, NS)
        await kube.create(genv("ok"))
        await kube.create(genv("bad"))
        await kubelet.wait_done(NS, "ok-smoke")
        await kubelet.wait_done(NS, "bad-smoke")

    ok = await kube.get(PODS, NS, "ok-smoke")
    assert ok["status"]["phase"] == "Running"
    assert {c["type"]: c["status"] for c in ok["status"]["conditions"]}["Ready"] == "True"
    assert ok["status"]["containerStatuses"][0]["imageID"].startswith(
        "docker.io/library/python@sha256:"
    )

    bad = await kube.get(PODS, NS, "bad-smoke")
    main = bad["status"]["containerStatuses"][0]
    assert main["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["restartCount"] == 1
    assert "BackOff" in [e["reason"] for e in kube.events_for("bad-smoke", NS)]

    # The sub-resources, through the official client as the operator will call them.
    api = kubernetes.client.CoreV1Api()
    assert await asyncio.to_thread(api.read_namespaced_pod_log, "ok-smoke", NS) == "up\n"
    body = await asyncio.to_thread(
        api.connect_get_namespaced_pod_proxy_with_path, "ok-smoke:8888", NS, "api/status"
    )
    assert body == "fine"
    prev = await asyncio.to_thread(api.read_namespaced_pod_log, "bad-smoke", NS, previous=True)
    assert prev == "boom\n"


async def test_official_client_works_against_the_emulator(kube: Kube, kube_env: object) -> None:
    kubernetes.config.load_kube_config()  # reads $KUBECONFIG, as production does
    core, custom = kubernetes.client.CoreV1Api(), kubernetes.client.CustomObjectsApi()
    pod = await asyncio.to_thread(core.create_namespaced_pod, NS, smoke_pod("c", "busybox"))
    assert pod.metadata.uid
    assert pod.metadata.resource_version
    assert pod.status.phase == "Pending"

    with pytest.raises(kubernetes.client.ApiException) as exc:
        await asyncio.to_thread(core.create_namespaced_pod, NS, smoke_pod("c", "busybox"))
    assert exc.value.status == 409
    with pytest.raises(kubernetes.client.ApiException) as exc:
        await asyncio.to_thread(core.read_namespaced_pod, "missing", NS)
    assert exc.value.status == 404
    assert json.loads(exc.value.body)["reason"] == "NotFound"

    group, version, plural = GROUP_VERSION_PLURAL
    create = custom.create_namespaced_custom_object
    created = await asyncio.to_thread(create, group, version, NS, plural, genv("g"))
    patch = {"status": {"phase": "Ready"}}
    patch_status = custom.patch_namespaced_custom_object_status  # a merge patch by default
    patched = await asyncio.to_thread(patch_status, group, version, NS, plural, "g", patch)
    assert patched["status"] == {"phase": "Ready"}
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    watch = kubernetes.watch.Watch()
    stream = watch.stream(core.list_namespaced_pod, NS, timeout_seconds=5)
    first = await asyncio.to_thread(next, stream)
    watch.stop()
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "c-smoke")
    await asyncio.to_thread(core.delete_namespaced_pod, "c-smoke", NS)
    assert kube.peek(PODS, NS, "c-smoke") is None


async def test_server_side_metadata_and_errors(kube: Kube) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": "x-", "namespace": NS},
    }
    event = await kube.create(body)
    assert event["metadata"]["name"].startswith("x-")
    assert len(event["metadata"]["name"]) == len("x-") + 5

    obj = await kube.create(genv("g"))
    assert (obj["metadata"]["generation"], "status" in obj) == (1, False)
    with pytest.raises(KubeApiError) as exc:
        await kube.create(genv("g"))
    assert (exc.value.status, exc.value.reason) == (409, "AlreadyExists")

    rv = obj["metadata"]["resourceVersion"]
    status = await kube.patch(GENV, NS, "g", {"status": {"phase": "A"}, "spec": {"image": "x"}},
                              subresource="status")  # fmt: skip
    assert (status["spec"]["image"], status["metadata"]["generation"]) == ("python:3.12", 1)
    main = await kube.patch(
        GENV, NS, "g", {"status": {"phase": "B"}, "metadata": {"labels": {"a": "b"}}}
    )
    assert (main["status"]["phase"], main["metadata"]["generation"]) == ("A", 1)
    same = await kube.patch(GENV, NS, "g", {"metadata": {"labels": {"a": "b"}}})
    assert same["metadata"]["resourceVersion"] == main["metadata"]["resourceVersion"]  # no-op

    stale = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv}]
    with pytest.raises(KubeApiError) as exc:
        await kube.patch(GENV, NS, "g", stale)
    assert (exc.value.status, exc.value.reason) == (422, "Invalid")
    with pytest.raises(KubeApiError) as exc:
        await kube.patch(GENV, NS, "g", {"metadata": {"resourceVersion": rv}, "spec": {"a": 1}})
    assert exc.value.status == 409
    path = kube.path(GENV, NS, "g")
    with pytest.raises(KubeApiError) as exc:
        await kube.request(
            "PATCH", path, {"spec": {}}, content_type="application/strategic-merge-patch+json"
        )
    assert exc.value.status == 415

    labelled = {**genv("g"), "spec": {"image": "r"}}
    labelled["metadata"] = {**labelled["metadata"], "labels": {"a": "b"}}
    replaced = await kube.request("PUT", path, labelled)
    assert (replaced["metadata"]["generation"], replaced["status"]) == (2, {"phase": "A"})
    assert [
        o["metadata"]["name"] for o in await kube.list(GENV, NS, label_selector="a in (b,c)")
    ] == ["g"]
    assert await kube.list(GENV, NS, label_selector="a!=b") == []
    await kube.delete(GENV, NS, "g")  # no finalizers: gone at once
    assert kube.peek(GENV, NS, "g") is None


async def test_namespaces_are_cluster_scoped_objects(kube: Kube) -> None:
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert [n["metadata"]["name"] for n in await kube.list("v1/namespaces")] == ["team"]
    assert (await kube.get("v1/namespaces", None, "team"))["metadata"]["uid"]


async def test_watch_replays_what_happened_after_its_resource_version(kube: Kube) -> None:
    created = await kube.create(genv("w"))
    await kube.patch(GENV, NS, "w", {"spec": {"image": "two"}})
    since = created["metadata"]["resourceVersion"]
    url = f"{kube.path(GENV, NS)}?watch=true&resourceVersion={since}&timeoutSeconds=1"
    async with kube.server.client.get(url) as rsp:
        first = json.loads(await rsp.content.readline())
    assert (first["type"], first["object"]["spec"]["image"]) == ("MODIFIED", "two")


async def test_injected_faults_do_not_change_state(kube: Kube) -> None:
    await kube.create(genv("f"))
    kube.emulator["patch", kmock.resource(GENV)] << 500
    with pytest.raises(KubeApiError):
        await kube.patch(GENV, NS, "f", {"spec": {"image": "changed"}})
    assert dig(kube.peek(GENV, NS, "f"), "spec.image") == "python:3.12"


async def test_pod_sideband_defaults(kube: Kube) -> None:
    await kube.create(smoke_pod("s", "busybox"))
    with pytest.raises(KubeApiError) as exc:
        await kube.request("GET", kube.path(PODS, NS, "s-smoke", "log"))
    assert "is waiting to start: ContainerCreating" in exc.value.body["message"]
    with pytest.raises(KubeApiError) as exc:
        await kube.request("GET", kube.path(PODS, NS, "s-smoke:8888", "proxy/"))
    assert exc.value.status == 503
    kube.set_proxy_answer(NS, "s-smoke", 8888, ProxyAnswer(404, "nope"), path="/x")
    with pytest.raises(KubeApiError) as exc:
        await kube.request("GET", kube.path(PODS, NS, "s-smoke:8888", "proxy/x"))
    assert (exc.value.status, exc.value.body) == (404, "nope")


@pytest.mark.parametrize(
    ("name", "params", "phase", "path", "value", "event"),
    [
        ("never_ready", {}, "Running", "containerStatuses.0.ready", False, "Unhealthy"),
        ("oom", {}, "Running", "containerStatuses.0.lastState.terminated.reason", "OOMKilled",
         "BackOff"),
        ("image_not_found", {}, "Pending", "containerStatuses.0.state.waiting.message",
         f'Back-off pulling image "{IMAGE}": ErrImagePull: rpc error: code = NotFound desc = '
         f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
         f"{IMAGE}: not found", "Failed"),
        ("image_auth", {}, "Pending", "containerStatuses.0.state.waiting.reason",
         "ImagePullBackOff", "Failed"),
        ("unschedulable", {}, "Pending", "conditions.0.message",
         "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
         "available: 3 No preemption victims found for incoming pod.", "FailedScheduling"),
        ("evicted", {}, "Failed", "reason", "Evicted", "Evicted"),
        ("deadline", {}, "Failed", "reason", "DeadlineExceeded", "DeadlineExceeded"),
        ("completed", {}, "Running", "containerStatuses.0.state.terminated.exitCode", 0, "Started"),
    ],
)  # fmt: skip
async def test_kubelet_scenarios_write_real_shapes(
    kube: Kube, kubelet: Kubelet, name: str, params: dict[str, Any], phase: str, path: str,
    value: Any, event: str,
) -> None:  # fmt: skip
    kubelet.plan("renku.io/environment=k", scenario(name, **params))
    await kube.create(smoke_pod("k", IMAGE))
    await kubelet.wait_done(NS, "k-smoke")
    pod = await kube.get(PODS, NS, "k-smoke")
    assert pod["status"]["phase"] == phase
    assert dig(pod["status"], path) == value
    assert event in [e["reason"] for e in kube.events_for("k-smoke", NS)]


async def test_kubelet_steps_compose_and_can_be_held(kube: Kube, kubelet: Kubelet) -> None:
    gate = asyncio.Event()
    kubelet.plan({"renku.io/environment": "h"}, [scheduled(), hold(gate), started()])
    await kube.create(smoke_pod("h", "busybox"))
    pod = await kube.wait_for(
        PODS, NS, "h-smoke", lambda p: dig(p, "status.conditions") is not None
    )
    assert pod["status"]["phase"] == "Pending"  # held after scheduling
    gate.set()
    await kubelet.wait_done(NS, "h-smoke")
    assert dig(kube.peek(PODS, NS, "h-smoke"), "status.containerStatuses.0.ready") is True
    await kube.create(smoke_pod("h2", "busybox"))  # no plan: a pod without a kubelet stays Pending
    assert kubelet.runs.keys() == {(NS, "h-smoke")}


async def test_operator_thread_reraises_what_the_operator_raised() -> None:
    def crashes_at_start(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
        raise kopf.LoginError("no credentials")

    with pytest.raises(kopf.LoginError, match="no credentials"):
        async with OperatorThread(crashes_at_start):
            pass  # never reached: the thread died before it was ready

    def crashes_at_stop(stop_flag: threading.Event, ready_flag: threading.Event) -> None:
        ready_flag.set()
        stop_flag.wait()
        raise RuntimeError("failed while stopping")

    with pytest.raises(RuntimeError, match="failed while stopping"):
        async with OperatorThread(crashes_at_stop) as operator:
            assert operator.thread.is_alive()
