"""Each smoke verdict with real pods, from the images `make cluster` pushes (tests/cluster/images.sh).

A real kubelet, containerd and registry decide what the pods do: an image that exits, one that
never opens its port, one the registry does not have, one that ships files under its mount
directory. RENKU_E2E_IMAGE_REGISTRY names the registry with those images (`make e2e` sets it).
"""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.config import Settings
from tests.e2e.cluster import POD, Cluster
from tests.e2e.genv import SESSION_PORT, SESSION_WORK, checks, condition, genv, gone, smoke_session
from tests.e2e.renku_api import RenkuApi
from tests.e2e.watching import until_ready, until_smoke_failed, wait_for_async

WORK = SESSION_WORK
PORT = SESSION_PORT
TIMEOUT = 90  # spec.smokeTest.timeoutSeconds; a pull from the local registry takes seconds
MARGIN = 180.0
# After a failure the operator lowers the kept pod's activeDeadlineSeconds to 1: the kubelet
# stops its containers and the pod ends Failed (DeadlineExceeded), its logs kept.
STOP_BOUND = 60.0


def session_spec(image: str, display: str) -> dict[str, Any]:
    """A session that runs its image's own command (the images differ only in that)."""
    return smoke_session(image, display, TIMEOUT)


@pytest.mark.timeout(TIMEOUT + 2 * MARGIN)
@pytest.mark.parametrize(
    ("image", "reason", "check"),
    [
        ("renku-e2e/exits:1.0.0", "CrashedOnStart", None),
        ("renku-e2e/never-listens:1.0.0", "NeverReady", "Ready"),
        ("renku-e2e/absent:1.0.0", "ImageNotFound", "Pull"),
    ],
    ids=["exits", "never-listens", "image-not-found"],
)
async def test_a_failing_image_gets_its_verdict_and_never_reaches_renku(
    cluster: Cluster,
    namespace: str,
    renku: RenkuApi,
    operator: Settings,
    image_registry: str,
    image: str,
    reason: str,
    check: str | None,
) -> None:
    name = f"verdict-{reason.lower()}"
    display = renku.name_for(f"verdict {reason}")
    cluster.create(genv(name, namespace, **session_spec(f"{image_registry}/{image}", display)))

    failed = await until_smoke_failed(cluster, namespace, name, timeout=TIMEOUT + MARGIN)
    smoke = failed["status"]["smokeTest"]
    assert (smoke["result"], smoke["reason"]) == ("Failed", reason), smoke
    if check is not None:
        assert checks(failed).get(check, ("missing", ""))[0] == "Failed", checks(failed)
    synced = condition(failed, "Synced")
    assert synced is not None
    assert (synced["status"], synced["reason"]) == ("False", "NotPublished"), synced
    assert "renkuId" not in failed["status"]
    assert renku.named(display) == []
    stopped = await wait_for_async(
        cluster,
        POD,
        namespace,
        smoke["podName"],
        lambda pod: pod is None or (pod.get("status") or {}).get("phase") == "Failed",
        timeout=STOP_BOUND,
        what="the failed smoke pod stopped by the kubelet",
    )
    assert stopped is not None, "the failed pod is kept for `kubectl logs`"
    assert stopped["status"].get("reason") == "DeadlineExceeded", stopped["status"]


@pytest.mark.timeout(TIMEOUT + 2 * MARGIN)
async def test_files_the_image_ships_under_the_mount_are_a_warning_not_a_failure(
    cluster: Cluster, namespace: str, renku: RenkuApi, operator: Settings, image_registry: str
) -> None:
    name, display = "verdict-hidden-files", renku.name_for("verdict hidden files")
    image = f"{image_registry}/renku-e2e/hidden-files:1.0.0"
    cluster.create(genv(name, namespace, **session_spec(image, display)))

    ready = await until_ready(
        cluster, namespace, name, timeout=TIMEOUT + MARGIN, what="Ready after its smoke test"
    )
    found = checks(ready)
    result, message = found.get("HiddenFiles", ("missing", ""))
    assert result == "Warning", found
    # What images.sh put under /home/renku/work, which the session volume hides.
    for shipped in ("README.md", ".bashrc", ".config"):
        assert shipped in message, message
    for passed in ("Pull", "Ready", "Stable", "SessionUrl", "MountWritable"):
        assert found.get(passed, ("missing", ""))[0] == "Passed", (passed, found)
    assert renku.get(ready["status"]["renkuId"]) is not None
    pod = ready["status"]["smokeTest"]["podName"]
    for leftover in (pod, f"{pod}-probe"):
        await wait_for_async(
            cluster, POD, namespace, leftover, gone, timeout=MARGIN, what="deleted after the pass"
        )
