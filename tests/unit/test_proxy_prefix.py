"""The pod-proxy request stays under that pod's proxy prefix, checked right before it is sent."""

from __future__ import annotations

import pytest
from kubernetes import client

from renku_env_operator.clients.kube import KubeClient, ProxyPathRefused, refuse_off_prefix

PREFIX = "https://api.example:6443/api/v1/namespaces/smoke/pods/smoke-lab%3A8888/proxy/"


def kube_client(host: str) -> KubeClient:
    """A client whose API server is a closed loopback port: nothing may be sent to it."""
    configuration = client.Configuration()
    configuration.host = host
    return KubeClient(client.ApiClient(configuration), request_timeout=1.0)


@pytest.mark.parametrize(
    "path",
    [
        "/../../../../../../api/v1/namespaces/renku/secrets/renku-admin",
        "/sessions/x/%2e%2e/%2E%2E/%2e%2e/api/v1/namespaces/renku/secrets",
        "/sessions/x/.%2E/.%2e/api",
        "/sessions/x/./lab",
    ],
)
async def test_dot_segments_never_leave_the_operator(path: str) -> None:
    kube = kube_client("http://127.0.0.1:9")  # discard port: a request would fail differently
    with pytest.raises(ProxyPathRefused, match="segment"):
        await kube.proxy_get("smoke", "smoke-lab", 8888, path)


def test_a_final_path_under_the_prefix_passes() -> None:
    refuse_off_prefix("/sessions/x/lab", PREFIX + "sessions/x/lab", PREFIX)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example:6443/api/v1/namespaces/renku/secrets/x",
        # urllib3 resolves dot segments while parsing: the check sees what it would send.
        PREFIX + "../../../secrets",
        "https://api.example:6443/api/v1/namespaces/smoke/pods/other%3A8888/proxy/",
        "https://api.example:6443/api/v1/namespaces/smoke/pods/smoke-lab%3A8888/proxyx/",
    ],
)
def test_a_final_path_off_the_prefix_is_refused(url: str) -> None:
    with pytest.raises(ProxyPathRefused, match="leaves the pod-proxy prefix"):
        refuse_off_prefix("/lab", url, PREFIX)


def test_api_server_under_a_path_prefix_is_understood() -> None:
    # Rancher and other gateways serve the API under a path: the prefix includes it.
    prefix = "https://gw.example/k8s/clusters/c-1/api/v1/namespaces/s/pods/p%3A80/proxy/"
    refuse_off_prefix("/lab", prefix + "lab", prefix)
    with pytest.raises(ProxyPathRefused):
        refuse_off_prefix("/lab", "https://gw.example/k8s/clusters/c-2/api/v1/x", prefix)
