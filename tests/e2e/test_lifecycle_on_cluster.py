"""Create, update and delete a GlobalEnvironment on a real cluster; Renku follows each step.

The operator runs in this process (``operator`` fixture) against the cluster's API server:
its watches, finalizers, status patches and Events meet a real API server here, which the
emulated integration tests can only imitate. Smoke tests are off; test_smoke_on_cluster.py
has them.
"""

from __future__ import annotations

import pytest

from renku_env_operator.config import Settings
from tests.e2e.cluster import EVENT, GENV, Cluster
from tests.e2e.genv import FINALIZER, RENKU_IMAGE, condition, genv, gone, synced_at
from tests.e2e.renku_api import RenkuApi
from tests.e2e.watching import until_ready, wait_for_async, watch_until_async

# Renku and the API server answer within seconds; the margin is for slow CI clusters.
STEP_TIMEOUT = 120.0
# The reasons Synced may show after a write: the write's own, or InSync from a later check.
IN_SYNC_AFTER = {"Created": {"Created", "InSync"}, "Updated": {"Updated", "InSync"}}


async def wait_event(cluster: Cluster, namespace: str, name: str, reason: str) -> None:
    """Await a core Event about the object with this reason (kopf posts Events in the background)."""
    await watch_until_async(
        cluster,
        EVENT,
        namespace,
        bool,  # any matching Event will do
        timeout=STEP_TIMEOUT,
        what=f"an Event {reason} about {name}",
        field_selector=f"involvedObject.name={name},reason={reason}",
    )


@pytest.mark.timeout(600)
async def test_create_update_and_delete_reach_renku(
    cluster: Cluster, namespace: str, renku: RenkuApi, operator: Settings
) -> None:
    name = "lifecycle"
    display = renku.name_for("lifecycle")
    manifest = genv(
        name,
        namespace,
        name=display,
        description="created by the renku-env-operator e2e tests",
        port=8888,
        defaultUrl="/",
        workingDirectory="/home/renku/work",
        mountDirectory="/home/renku/work",
        smokeTest={"enabled": False},
        deletionPolicy="Archive",
    )

    cluster.create(manifest)
    ready = await until_ready(cluster, namespace, name, timeout=STEP_TIMEOUT, what="Ready")
    assert ready["metadata"]["finalizers"] == [FINALIZER]
    # Synced may already be InSync (a later check): the Created Event below shows the create.
    expected = {
        "Validated": {"Valid"},
        "SmokeTested": {"Disabled"},
        "Synced": IN_SYNC_AFTER["Created"],
    }
    for type_, reasons in expected.items():
        found = condition(ready, type_)
        assert found is not None, type_
        assert found["status"] == "True", found
        assert found["reason"] in reasons, found
    renku_id = ready["status"]["renkuId"]
    env = renku.get(renku_id)
    assert env is not None, f"{renku_id} is not in Renku"
    assert (env["name"], env["container_image"]) == (display, RENKU_IMAGE)
    assert (env["port"], env["default_url"], env["is_archived"]) == (8888, "/", False)
    assert env["working_directory"] == "/home/renku/work"
    await wait_event(cluster, namespace, name, "Created")

    cluster.patch(GENV, namespace, name, {"spec": {"port": 9999, "description": "updated"}})
    updated = await wait_for_async(
        cluster,
        GENV,
        namespace,
        name,
        synced_at(2, *IN_SYNC_AFTER["Updated"]),
        timeout=STEP_TIMEOUT,
        what="Synced at 2",
    )

    assert updated is not None
    assert updated["status"]["renkuId"] == renku_id  # updated in place, not created again
    env = renku.get(renku_id)
    assert env is not None
    assert (env["port"], env["description"]) == (9999, "updated")
    assert len(renku.named(display)) == 1
    await wait_event(cluster, namespace, name, "Updated")

    cluster.delete(GENV, namespace, name)
    await wait_for_async(
        cluster, GENV, namespace, name, gone, timeout=STEP_TIMEOUT, what="finalizer released"
    )

    archived = renku.get(renku_id)
    assert archived is not None, "deletionPolicy Archive must not delete the Renku environment"
    assert archived["is_archived"] is True
