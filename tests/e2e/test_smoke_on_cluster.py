"""Smoke tests with real pods: a kubelet pulls the image, runs the probes, kills the pod.

The image is a small public one that really serves HTTP (python's http.server); set
RENKU_E2E_SMOKE_IMAGE to a mirror of it on clusters without Docker Hub. It runs as uid 1000
in the session volume, which is its working directory, so "/" answers a directory listing.
"""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.config import Settings
from tests.e2e.cluster import POD, Cluster
from tests.e2e.genv import SESSION_PORT, SESSION_WORK, checks, condition, genv, gone, smoke_session
from tests.e2e.options import E2EOptions
from tests.e2e.renku_api import RenkuApi
from tests.e2e.watching import until_ready, until_smoke_failed, wait_for_async

WORK = SESSION_WORK
PORT = SESSION_PORT
PASSING_TIMEOUT = 300  # spec.smokeTest.timeoutSeconds: a cold node pulls the image first
# Pull included: 60s would do on a warm node, a cold one may need half of it for the pull.
NEVER_READY_TIMEOUT = 90
MARGIN = 180.0  # on top of the smoke test's own timeout: scheduling, the probe pod, clean-up


def http_server_spec(image: str, display: str, bind: str, timeout: int) -> dict[str, Any]:
    """A session that serves its working directory on `bind`:8888."""
    command = ["python", "-m", "http.server", str(PORT), "--bind", bind]
    return smoke_session(image, display, timeout, command=command)


@pytest.mark.timeout(PASSING_TIMEOUT + 2 * MARGIN)
async def test_a_working_image_passes_and_is_published(
    cluster: Cluster,
    namespace: str,
    renku: RenkuApi,
    operator: Settings,
    e2e_options: E2EOptions,
) -> None:
    name, display = "smoke-passes", renku.name_for("smoke passes")
    spec = http_server_spec(e2e_options.smoke_image, display, "0.0.0.0", PASSING_TIMEOUT)
    cluster.create(genv(name, namespace, **spec))

    ready = await until_ready(
        cluster,
        namespace,
        name,
        timeout=PASSING_TIMEOUT + MARGIN,
        what="Ready after its smoke test",
    )
    tested = condition(ready, "SmokeTested")
    assert tested is not None
    assert (tested["status"], tested["reason"]) == ("True", "Passed"), tested
    smoke = ready["status"]["smokeTest"]
    assert (smoke["result"], smoke["image"]) == ("Passed", e2e_options.smoke_image)
    found = checks(ready)
    for check in ("Pull", "Ready", "Stable", "SessionUrl", "User", "MountWritable"):
        assert found.get(check, ("missing", ""))[0] == "Passed", (check, found)
    env = renku.get(ready["status"]["renkuId"])
    assert env is not None
    assert (env["container_image"], env["port"], env["strip_path_prefix"]) == (
        e2e_options.smoke_image,
        PORT,
        True,
    )
    # A passed test leaves no pod behind: neither the session pod nor its probe pod.
    pod = smoke["podName"]
    for leftover in (pod, f"{pod}-probe"):
        await wait_for_async(
            cluster, POD, namespace, leftover, gone, timeout=MARGIN, what="deleted after the pass"
        )


@pytest.mark.timeout(NEVER_READY_TIMEOUT + 2 * MARGIN)
async def test_a_server_on_localhost_fails_and_never_reaches_renku(
    cluster: Cluster,
    namespace: str,
    renku: RenkuApi,
    operator: Settings,
    e2e_options: E2EOptions,
) -> None:
    name, display = "smoke-never-ready", renku.name_for("smoke never ready")
    spec = http_server_spec(e2e_options.smoke_image, display, "127.0.0.1", NEVER_READY_TIMEOUT)
    cluster.create(genv(name, namespace, **spec))

    failed = await until_smoke_failed(
        cluster, namespace, name, timeout=NEVER_READY_TIMEOUT + MARGIN
    )
    smoke = failed["status"]["smokeTest"]
    assert (smoke["result"], smoke["reason"]) == ("Failed", "NeverReady"), smoke
    assert f"0.0.0.0:{PORT}" in smoke["message"]
    assert (condition(failed, "Ready") or {}).get("status") == "False"
    synced = condition(failed, "Synced")
    assert synced is not None
    assert (synced["status"], synced["reason"]) == ("False", "NotPublished"), synced
    assert "renkuId" not in failed["status"]
    assert renku.named(display) == []
    # The failed pod is kept for `kubectl logs` (SMOKE_KEEP_FAILED_SECONDS).
    assert cluster.get(POD, namespace, smoke["podName"]) is not None
