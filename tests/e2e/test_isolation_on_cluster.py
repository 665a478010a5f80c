"""The chart's smoke namespace really fences its pods in: NetworkPolicy enforced by the node.

A pod in the smoke namespace (where session images under test run) cannot reach the API server
nor a pod of another namespace; the same pod in the run's namespace (no policy) reaches both,
so the check itself can tell. The LimitRange refuses a container above the smoke pods' limits.

NetworkPolicy is enforced by the node's plugin after the pod has started: kube-router installs
a new pod's rules once it sees the pod's IP, and a connection made in the pod's first second
got through (seen on `make cluster`; Kubernetes allows this: "that pod may be started
unprotected"). So the probe tries for ROUNDS seconds and the fence is judged by its last rounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.cluster import POD, Cluster, api_message
from tests.e2e.helm import Helm, chart_values
from tests.e2e.watching import wait_for_async

SECRET_NAME = "e2e-isolation-credentials"
WAIT = 180.0
RELEASE = "e2e-isolation"
ROUNDS = 10
SETTLED = 5  # the last rounds, which must all say the same
# Prints one line per round: "open"/"blocked" for each host:port argument (2 s connect bound).
PROBE = f"""
import socket, sys, time
for _ in range({ROUNDS}):
    seen = []
    for target in sys.argv[1:]:
        host, port = target.rsplit(":", 1)
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((host, int(port)))
            seen.append("open")
        except OSError:
            seen.append("blocked")
        finally:
            s.close()
    print(" ".join(seen), flush=True)
    time.sleep(1)
"""


def restricted_pod(name: str, namespace: str, image: str, command: list[str]) -> dict[str, Any]:
    """A pod the `restricted` Pod Security level admits."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "command": command,
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _phase(*phases: str) -> Any:
    return lambda obj: obj is not None and (obj.get("status") or {}).get("phase") in phases


def _ready(obj: Any) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def image(image_registry: str) -> str:
    return f"{image_registry}/renku-e2e/python:3.11"


@pytest.fixture(scope="module")
def smoke_namespace(cluster: Cluster, namespace: str, helm: Helm) -> Iterator[str]:
    """The chart's default smoke namespace, with its NetworkPolicy, quota and LimitRange."""
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": namespace},
            "stringData": {"token": "e2e-not-a-real-token"},
        }
    )
    with helm.installed(RELEASE, chart_values(namespace, SECRET_NAME)):
        yield f"{namespace}-smoke"


async def probe(
    cluster: Cluster, name: str, namespace: str, image: str, *targets: str
) -> list[list[str]]:
    """The probe pod's verdicts, one list per round, after it ran to completion."""
    command = ["python3", "-c", PROBE, *targets]
    cluster.create(restricted_pod(name, namespace, image, command))
    done = await wait_for_async(
        cluster, POD, namespace, name, _phase("Succeeded", "Failed"), timeout=WAIT, what="done"
    )
    assert done is not None
    assert done["status"]["phase"] == "Succeeded", done
    log = str(client.CoreV1Api(cluster.api).read_namespaced_pod_log(name, namespace))
    return [line.split() for line in log.splitlines() if line.strip()]


@pytest.mark.timeout(600)
async def test_a_smoke_pod_reaches_neither_the_api_server_nor_another_namespace(
    cluster: Cluster, namespace: str, smoke_namespace: str, image: str
) -> None:
    # A server in the run's namespace (another team's pod, as far as the smoke pod knows).
    server = restricted_pod(
        "isolation-target", namespace, image, ["python3", "-m", "http.server", "8888"]
    )
    cluster.create(server)
    ready = await wait_for_async(
        cluster, POD, namespace, "isolation-target", _ready, timeout=WAIT, what="Ready"
    )
    assert ready is not None
    api_service = cluster.get(("v1", "Service"), "default", "kubernetes")
    assert api_service is not None
    targets = (f"{ready['status']['podIP']}:8888", f"{api_service['spec']['clusterIP']}:443")

    outside = await probe(cluster, "isolation-control", namespace, image, *targets)
    inside = await probe(cluster, "isolation-probe", smoke_namespace, image, *targets)

    # Without a policy both answer: the probe can see a connection when there is one.
    assert outside == [["open", "open"]] * ROUNDS, outside
    assert len(inside) == ROUNDS, inside
    assert inside[-SETTLED:] == [["blocked", "blocked"]] * SETTLED, (targets, inside)
    opened = sum(round_ != ["blocked", "blocked"] for round_ in inside)
    print(f"smoke pod: {opened} of {ROUNDS} first rounds got through before the policy applied")


@pytest.mark.timeout(300)
def test_the_limit_range_refuses_a_container_above_the_smoke_limits(
    cluster: Cluster, smoke_namespace: str, image: str
) -> None:
    greedy = restricted_pod("greedy", smoke_namespace, image, ["true"])
    greedy["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "8", "memory": "64Gi"}}

    with pytest.raises(ApiException) as caught:
        cluster.create(greedy)

    message = api_message(caught.value)
    assert caught.value.status == 403, message
    assert "maximum cpu usage per Container" in message, message
    assert cluster.get(POD, smoke_namespace, "greedy") is None
