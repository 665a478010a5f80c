"""clients/kube.py against the emulated API server: pods, logs, events, proxy, secrets, nodes,
and the status writer built on it."""

from __future__ import annotations

import base64

import pytest

from renku_env_operator.clients.claims import ClaimError, ClaimsClient
from renku_env_operator.clients.globalenvironments import (
    GlobalEnvironmentStatusWriter,
    StatusWriteError,
)
from renku_env_operator.clients.kube import (
    KubeClient,
    KubeConflictError,
    KubeError,
    KubeNotFoundError,
)
from tests.support.kube import GENV, Kube
from tests.support.kube_pods import ProxyAnswer

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p1", "namespace": "ns", "labels": {"a": "b"}},
    "spec": {"containers": [{"name": "session", "image": "busybox"}]},
}


async def test_pod_round_trip(kube: Kube) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    created = await k.create_pod("ns", POD)
    assert created["metadata"]["name"] == "p1"
    with pytest.raises(KubeConflictError):
        await k.create_pod("ns", POD)
    got = await k.get_pod("ns", "p1")
    assert got is not None
    assert got["metadata"]["labels"] == {"a": "b"}
    assert await k.get_pod("ns", "nope") is None
    assert [p["metadata"]["name"] for p in await k.list_pods("ns", "a=b")] == ["p1"]
    assert await k.list_pods("ns", "a=c") == []
    assert [p["metadata"]["name"] for p in await k.list_pods("ns", "!x")] == ["p1"]
    patched = await k.patch_pod_metadata("ns", "p1", labels={"x": "1"}, annotations={"y": "2"})
    assert patched["metadata"]["labels"] == {"a": "b", "x": "1"}
    assert await k.list_pods("ns", "!x") == []
    kube.set_pod_logs("ns", "p1", '{"json": "line"}\nline2\n', previous="old\n")
    assert await k.read_pod_log("ns", "p1", tail_lines=1) == "line2\n"
    assert await k.read_pod_log("ns", "p1") == '{"json": "line"}\nline2\n'
    assert await k.read_pod_log("ns", "p1", previous=True) == "old\n"
    stopped = await k.stop_pod("ns", "p1")
    assert stopped["spec"]["activeDeadlineSeconds"] == 1
    assert stopped["metadata"]["labels"] == {"a": "b", "x": "1"}  # the pod object stays
    await k.delete_pod("ns", "p1")
    await k.delete_pod("ns", "p1")
    assert await k.get_pod("ns", "p1") is None
    await k.close()


async def test_log_of_waiting_container_is_400(kube: Kube) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    await k.create_pod("ns", POD)
    with pytest.raises(KubeError) as info:
        await k.read_pod_log("ns", "p1")
    assert info.value.status == 400
    assert "waiting to start" in str(info.value)


async def test_proxy(kube: Kube) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    await k.create_pod("ns", POD)
    kube.set_proxy_answer(
        "ns", "p1", 8080, ProxyAnswer(302, "", {"Location": "/sessions/x/lab"}), "/sessions/x"
    )
    kube.set_proxy_answer("ns", "p1", 8080, ProxyAnswer(404, "nope" * 1000), "/other")
    r = await k.proxy_get("ns", "p1", 8080, "/other")
    print("other", r.status)
    r = await k.proxy_get("ns", "p1", 8080, "/sessions/x/")
    assert r.status == 302, r
    assert r.headers["Location"] == "/sessions/x/lab"
    r = await k.proxy_get("ns", "p1", 8080, "/other")
    assert r.status == 404
    assert len(r.body) == 2000
    r = await k.proxy_get("ns", "p1", 9999, "/")
    assert r.status == 503, r
    assert "error trying to reach service" in r.body
    r = await k.proxy_get("ns", "nope", 9999, "/")
    assert r.status == 404


async def test_secret_and_events_and_nodes(kube: Kube) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "data": {"token": base64.b64encode(b"abc").decode()},
        }
    )
    assert await k.get_secret_data("ns", "s") == {"token": "abc"}
    with pytest.raises(KubeNotFoundError):
        await k.get_secret_data("ns", "missing")
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "ns"},
            "reason": "Pulling",
            "message": "Pulling image",
            "lastTimestamp": "2026-01-01T00:00:01Z",
        }
    )
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e0", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "name": "other", "namespace": "ns"},
            "reason": "X",
            "message": "Y",
            "lastTimestamp": "2026-01-01T00:00:00Z",
        }
    )
    events = await k.list_events_for("ns", "p1")
    assert [e["reason"] for e in events] == ["Pulling"], events
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1", "labels": {"kubernetes.io/arch": "arm64"}},
        }
    )
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n2", "labels": {"kubernetes.io/arch": "amd64"}},
        }
    )
    assert await k.list_node_architectures() == {"amd64", "arm64"}


async def test_unreachable() -> None:
    from kubernetes import client

    c = client.Configuration()
    c.host = "http://127.0.0.1:1"
    k = KubeClient(client.ApiClient(c), request_timeout=2)
    with pytest.raises(KubeError) as info:
        await k.get_pod("ns", "x")
    assert info.value.status is None
    with pytest.raises(KubeError):
        await k.proxy_get("ns", "x", 1, "/")
    # What the owner and the ownership records report: which object, and that nothing answered.
    with pytest.raises(ClaimError, match=r"cannot get .* renku/env-x: Kubernetes API unreachable"):
        await ClaimsClient(k, "renku").get("env-x")
    with pytest.raises(StatusWriteError, match=r"of ns/g1: Kubernetes API unreachable"):
        await GlobalEnvironmentStatusWriter(k).patch_status("ns", "g1", {})


async def test_status_writer_merges_status_and_names_the_object_it_could_not_write(
    kube: Kube,
) -> None:
    k = KubeClient.from_environment(str(kube.kubeconfig_path))
    writer = GlobalEnvironmentStatusWriter(k)
    await kube.create(
        {
            "apiVersion": "renku.io/v1alpha1",
            "kind": "GlobalEnvironment",
            "metadata": {"name": "g1", "namespace": "ns"},
            "spec": {"image": "busybox"},
        }
    )
    version = await writer.patch_status("ns", "g1", {"renkuId": "01J0000000000000000000000A"})
    stored = await kube.get(GENV, "ns", "g1")
    assert stored["status"] == {"renkuId": "01J0000000000000000000000A"}
    assert version == stored["metadata"]["resourceVersion"]
    with pytest.raises(StatusWriteError, match="cannot write status of ns/missing: 404"):
        await writer.patch_status("ns", "missing", {"renkuId": "x"})
    await k.close()
