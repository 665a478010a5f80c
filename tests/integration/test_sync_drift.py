"""Drift: changes made in Renku outside the GlobalEnvironment, found by the periodic check.

The real operator runs against the emulated API server and the Renku double. The drift
interval is the smallest the settings allow (1 s); detection takes up to two intervals (the
object's own check, on a shared snapshot that may be up to one interval old).
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    genv,
    has_condition,
    synced_message,
)
from tests.support.renku_double import RenkuDouble

DRIFT = 0.3  # seconds between drift checks: short, so that tests see several
DETECTION = 2 * DRIFT + 2.0  # two intervals, plus slack for a loaded machine


def env_writes(renku: RenkuDouble) -> list[tuple[str, Any]]:
    """(method, body) of every write to the environments API."""
    return [
        (r.method, r.body)
        for r in renku.requests
        if r.method in ("POST", "PATCH", "DELETE") and r.path.startswith(ENVS)
    ]


def list_requests(renku: RenkuDouble) -> int:
    """GETs of the whole list (not of single environments)."""
    return renku.count("GET", ENVS)


async def published(kube: Kube, name: str, **spec: Any) -> dict[str, Any]:
    """Create a GlobalEnvironment and return it once Ready."""
    await kube.create(genv(name, smokeTest=NO_SMOKE, **spec))
    return await kube.wait_for(GENV, NAMESPACE, name, has_condition("Ready", "True"))


async def test_overwrite_restores_a_field_changed_in_renku(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=DRIFT)
    renku_id = (await published(kube, "drifty", port=8888))["status"]["renkuId"]
    renku_double.clear_requests()

    renku_double.admin_edit(renku_id, port=1234, description="edited by hand")
    event = await kube.wait_event("drifty", "DriftCorrected", timeout=DETECTION)

    assert event["type"] == "Warning"
    assert "port: declared 8888, Renku has 1234" in event["message"]
    assert env_writes(renku_double) == [("PATCH", {"port": 8888, "description": ""})]
    env = renku_double.environments[renku_id]
    assert (env["port"], env["description"]) == (8888, "")
    await kube.wait_for(
        GENV, NAMESPACE, "drifty", has_condition("Synced", "True", "DriftCorrected")
    )


async def test_report_names_the_changed_field_and_leaves_renku_alone(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=DRIFT)
    obj = await published(kube, "watched", port=8888, driftPolicy="Report")
    renku_id = obj["status"]["renkuId"]
    renku_double.clear_requests()

    renku_double.admin_edit(renku_id, port=1234)
    drifted = await kube.wait_for(
        GENV,
        NAMESPACE,
        "watched",
        has_condition("Synced", "False", "Drifted"),
        timeout=DETECTION,
    )

    message = synced_message(drifted)
    assert "port: declared 8888, Renku has 1234" in message
    assert "not restored" in message
    assert has_condition("Ready", "False", "Drifted")(drifted)
    assert env_writes(renku_double) == []
    assert renku_double.environments[renku_id]["port"] == 1234
    await kube.wait_event("watched", "Drifted", namespace=NAMESPACE)


async def test_overwrite_recreates_an_environment_deleted_in_renku(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=DRIFT)
    old_id = (await published(kube, "phoenix", port=8888))["status"]["renkuId"]

    renku_double.admin_delete(old_id)

    def recreated(obj: dict[str, Any]) -> bool:
        return obj["status"].get("renkuId") not in (None, old_id) and has_condition(
            "Synced", "True", "Created"
        )(obj)

    obj = await kube.wait_for(GENV, NAMESPACE, "phoenix", recreated, timeout=DETECTION)

    new_id = obj["status"]["renkuId"]
    assert list(renku_double.environments) == [new_id]
    env = renku_double.environments[new_id]
    assert (env["name"], env["port"]) == ("phoenix", 8888)
    assert "createAttempt" not in obj["status"]
    recreating = await kube.wait_event("phoenix", "Recreating", namespace=NAMESPACE)
    assert old_id in recreating["message"]


async def test_report_does_not_recreate_a_deleted_environment(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=DRIFT)
    old_id = (await published(kube, "gone", driftPolicy="Report"))["status"]["renkuId"]
    renku_double.clear_requests()

    renku_double.admin_delete(old_id)
    drifted = await kube.wait_for(
        GENV, NAMESPACE, "gone", has_condition("Synced", "False", "Drifted"), timeout=DETECTION
    )

    message = synced_message(drifted)
    assert f"{old_id} was deleted in Renku" in message
    assert drifted["status"]["renkuId"] == old_id
    assert env_writes(renku_double) == []
    assert renku_double.environments == {}


async def test_one_list_request_per_interval_serves_every_object(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=DRIFT)
    names = [f"shared-{i}" for i in range(5)]
    for name in names:
        await kube.create(genv(name, smokeTest=NO_SMOKE))
    ids = {}
    for name in names:
        obj = await kube.wait_for(GENV, NAMESPACE, name, has_condition("Ready", "True"))
        ids[name] = obj["status"]["renkuId"]
    renku_double.clear_requests()
    started = time.monotonic()

    # Several intervals of drift checks (a check that finds nothing writes nothing anywhere).
    await renku_double.wait_until_async(lambda d: list_requests(d) >= 3, timeout=10 * DRIFT + 2)
    intervals = (time.monotonic() - started) / DRIFT
    lists = list_requests(renku_double)

    # Listing per object would take 5 lists per interval. Shared: at most one per interval,
    # plus one in flight across clear_requests() and one at the window's end.
    assert intervals >= 1
    assert 1 <= lists <= intervals + 2, (lists, intervals)
    assert lists < 2 * len(names)
    assert env_writes(renku_double) == []
    # And that list serves every object: a change to each is found and restored.
    for name in names:
        renku_double.admin_edit(ids[name], description="edited in the admin panel")
    for name in names:
        await kube.wait_for(
            GENV,
            NAMESPACE,
            name,
            has_condition("Synced", "True", "DriftCorrected"),
            timeout=DETECTION + DRIFT,
        )
