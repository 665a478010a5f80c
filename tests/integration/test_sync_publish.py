"""Publishing into Renku: create, update with minimal PATCHes, clearing fields, a 422.

The real operator runs against the emulated API server and the Renku double; every test
asserts what an admin sees: conditions, Events, and Renku's state in the double.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    condition,
    genv,
    has_condition,
    synced_message,
)
from tests.support.renku_double import RecordedRequest, RenkuDouble

IMAGE = "ghcr.io/example/env:1.0.0"


def writes(renku: RenkuDouble, method: str) -> list[RecordedRequest]:
    """Requests of one method to the environments API (token requests excluded)."""
    return [r for r in renku.requests if r.method == method and r.path.startswith(ENVS)]


def synced_at_generation(generation: int, reason: str) -> Callable[[dict[str, Any]], bool]:
    """Predicate: Synced is True with `reason` for `generation`, and that generation observed."""
    in_sync = has_condition("Synced", "True", reason)

    def check(obj: dict[str, Any]) -> bool:
        found = condition(obj, "Synced")
        return (
            in_sync(obj)
            and found is not None
            and found.get("observedGeneration") == generation
            and obj["status"].get("observedGeneration") == generation
        )

    return check


def without_identity(env: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if k not in ("id", "creation_date")}


async def test_create_publishes_exactly_the_declared_state(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    spec = {
        "description": "Plain Python",
        "port": 8888,
        "workingDirectory": "/home/jovyan/work",
        "command": ["sh", "-c"],
        "smokeTest": NO_SMOKE,
    }
    manifest = genv("python", **spec)
    manifest["spec"]["name"] = "Python 3.12"  # genv's own `name` is metadata.name
    await kube.create(manifest)

    obj = await kube.wait_for(GENV, NAMESPACE, "python", has_condition("Ready", "True"))

    status = obj["status"]
    assert has_condition("Synced", "True", "Created")(obj)
    assert status["lastSyncTime"].endswith("Z")
    assert "createAttempt" not in status  # the create is confirmed
    env = renku_double.environments[status["renkuId"]]
    # Unset fields carry Renku's defaults; mountDirectory and args stay null (absent).
    assert without_identity(env) == {
        "name": "Python 3.12",
        "container_image": IMAGE,
        "description": "Plain Python",
        "default_url": "/lab",
        "uid": 1000,
        "gid": 1000,
        "port": 8888,
        "working_directory": "/home/jovyan/work",
        "command": ["sh", "-c"],
        "strip_path_prefix": False,
        "is_archived": False,
    }
    assert len(writes(renku_double, "POST")) == 1
    event = await kube.wait_event("python", "Created", namespace=NAMESPACE)
    assert status["renkuId"] in event["message"]


async def test_update_sends_only_the_changed_fields(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create(genv("lab", port=8888, description="old", smokeTest=NO_SMOKE))
    created = await kube.wait_for(GENV, NAMESPACE, "lab", has_condition("Ready", "True"))
    renku_id = created["status"]["renkuId"]

    await kube.patch(GENV, NAMESPACE, "lab", {"spec": {"port": 9999, "description": "new"}})
    updated = await kube.wait_for(GENV, NAMESPACE, "lab", synced_at_generation(2, "Updated"))

    patches = writes(renku_double, "PATCH")
    assert [(p.path, p.body) for p in patches] == [
        (f"{ENVS}/{renku_id}", {"port": 9999, "description": "new"})
    ]
    assert updated["status"]["renkuId"] == renku_id
    env = renku_double.environments[renku_id]
    assert (env["port"], env["description"]) == (9999, "new")
    event = await kube.wait_event("lab", "Updated", namespace=NAMESPACE)
    assert "port" in event["message"]
    assert "description" in event["message"]
    assert len(writes(renku_double, "POST")) == 1


async def test_removing_fields_clears_them_in_renku(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    spec = {
        "workingDirectory": "/home/jovyan/work",
        "mountDirectory": "/home/jovyan",
        "command": ["tini", "--"],
        "args": ["start.sh"],
        "smokeTest": NO_SMOKE,
    }
    await kube.create(genv("clear", **spec))
    created = await kube.wait_for(GENV, NAMESPACE, "clear", has_condition("Ready", "True"))
    renku_id = created["status"]["renkuId"]

    # A merge patch with null removes the keys, as `kubectl apply` does for dropped fields.
    removed = {"spec": {"workingDirectory": None, "command": None}}
    await kube.patch(GENV, NAMESPACE, "clear", removed)
    await kube.wait_for(GENV, NAMESPACE, "clear", synced_at_generation(2, "Updated"))

    # CONTRACT: "" clears working_directory, null clears command.
    [patch] = writes(renku_double, "PATCH")
    assert patch.body == {"working_directory": "", "command": None}
    env = renku_double.environments[renku_id]
    assert "working_directory" not in env
    assert "command" not in env
    assert (env["mount_directory"], env["args"]) == ("/home/jovyan", ["start.sh"])


async def test_a_refused_create_reports_renkus_message(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    # A long backoff: the condition stays as the first attempt left it.
    await start_operator(retry_backoff_seconds=60)
    renku_double.fail_next("POST", 422)
    await kube.create(genv("refused", smokeTest=NO_SMOKE))

    obj = await kube.wait_for(
        GENV, NAMESPACE, "refused", has_condition("Synced", "False", "RejectedByRenku")
    )

    message = synced_message(obj)
    assert "Injected failure" in message  # the double's error message, passed through
    assert "HTTP 422" in message
    ready = condition(obj, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "RejectedByRenku")
    assert renku_double.environments == {}
    event = await kube.wait_event("refused", "RejectedByRenku", namespace=NAMESPACE)
    assert event["type"] == "Warning"
