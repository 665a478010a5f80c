"""Adopting existing Renku environments, and what deleting a GlobalEnvironment does in Renku.

The real operator runs against the emulated API server and the Renku double.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    env_writes,
    genv,
    has_condition,
    published,
    synced_message,
)
from tests.support.renku_double import RenkuDouble, new_ulid

IMAGE = "ghcr.io/example/env:1.0.0"


# ---------------------------------------------------------------- adoption


async def test_adopting_patches_the_existing_environment_without_creating_one(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    existing = renku_double.admin_create(
        name="Hand-made",
        container_image="ghcr.io/example/old:0.1.0",
        description="made in the admin panel",
        port=7777,
        command=["old-entrypoint"],
    )
    await start_operator()

    renku_id = await published(kube, "adopted", renkuId=existing["id"], port=8888)

    assert renku_id == existing["id"]
    assert [m for m, _ in env_writes(renku_double)] == ["PATCH"]  # no POST
    env = renku_double.environments[renku_id]
    assert (env["name"], env["container_image"], env["port"]) == ("adopted", IMAGE, 8888)
    assert env["description"] == ""  # declared as unset: emptied, the only way in Renku
    assert "command" not in env
    assert env["creation_date"] == existing["creation_date"]
    event = await kube.wait_event("adopted", "Adopted", namespace=NAMESPACE)
    assert renku_id in event["message"]


async def test_adopting_an_unknown_id_fails_with_a_hint(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(retry_backoff_seconds=60)
    missing = new_ulid()
    await kube.create(genv("ghost", renkuId=missing, smokeTest=NO_SMOKE))

    obj = await kube.wait_for(
        GENV, NAMESPACE, "ghost", has_condition("Synced", "False", "AdoptionFailed")
    )

    message = synced_message(obj)
    assert missing in message
    assert "does not exist" in message
    assert "remove spec.renkuId" in message
    assert env_writes(renku_double) == []
    assert "renkuId" not in obj["status"]
    await kube.wait_event("ghost", "AdoptionFailed", namespace=NAMESPACE)


async def test_an_environment_another_globalenvironment_owns_is_not_adopted(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(retry_backoff_seconds=60)
    owned = await published(kube, "owner")

    await kube.create(genv("usurper", renkuId=owned, smokeTest=NO_SMOKE))

    obj = await kube.wait_for(
        GENV, NAMESPACE, "usurper", has_condition("Synced", "False", "AdoptionFailed")
    )
    assert "already managed by another GlobalEnvironment" in synced_message(obj)
    assert [m for m, _ in env_writes(renku_double)] == ["POST"]  # only the owner's create


async def test_a_same_named_environment_is_never_adopted(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    # Names are not unique in Renku: only spec.renkuId may link to an existing environment.
    other = renku_double.admin_create(name="shared", container_image=IMAGE)
    await start_operator()

    renku_id = await published(kube, "shared")

    assert renku_id != other["id"]
    assert renku_double.environments[other["id"]] == other  # untouched
    named = [e for e in renku_double.environments.values() if e["name"] == "shared"]
    assert len(named) == 2
    assert [m for m, _ in env_writes(renku_double)] == ["POST"]


# ---------------------------------------------------------------- deletion policies


@pytest.mark.parametrize(
    ("policy", "reason"),
    [("Archive", "Archived"), ("Delete", "Deleted"), ("Orphan", "Orphaned")],
)
async def test_deletion_policy_is_applied_and_the_object_released(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any, policy: str, reason: str
) -> None:
    await start_operator()
    renku_id = await published(kube, "retired", deletionPolicy=policy)
    before = renku_double.environments[renku_id]
    renku_double.clear_requests()

    await kube.delete(GENV, NAMESPACE, "retired")
    event = await kube.wait_event("retired", reason, namespace=NAMESPACE)
    await kube.wait_gone(GENV, NAMESPACE, "retired")

    assert renku_id in event["message"]
    after = renku_double.environments.get(renku_id)
    if policy == "Archive":
        assert after == before | {"is_archived": True}  # still readable by id
        assert env_writes(renku_double) == [("PATCH", f"{ENVS}/{renku_id}")]
    elif policy == "Delete":
        assert after is None
        assert env_writes(renku_double) == [("DELETE", f"{ENVS}/{renku_id}")]
    else:
        assert after == before
        assert env_writes(renku_double) == []


async def test_delete_archives_an_environment_that_launchers_use(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    renku_id = await published(kube, "in-use", deletionPolicy="Delete")
    renku_double.add_launcher(renku_id)

    await kube.delete(GENV, NAMESPACE, "in-use")
    event = await kube.wait_event("in-use", "ArchivedInUse", namespace=NAMESPACE)
    await kube.wait_gone(GENV, NAMESPACE, "in-use")

    assert "session launchers" in event["message"]
    assert renku_double.environments[renku_id]["is_archived"] is True
    assert not [e for e in kube.events_for("in-use") if e["reason"] == "Deleted"]


async def test_unreachable_renku_blocks_deletion_until_released_with_orphan(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(delete_attempts=2, retry_backoff_seconds=0.1)
    renku_id = await published(kube, "stuck")
    renku_double.set_down(True)

    await kube.delete(GENV, NAMESPACE, "stuck")
    blocked = await kube.wait_for(
        GENV, NAMESPACE, "stuck", has_condition("Synced", "False", "DeletionBlocked")
    )

    message = synced_message(blocked)
    assert "2 attempts" in message
    hint = (
        "kubectl patch globalenvironment stuck -n renku --type merge "
        """-p '{"spec":{"deletionPolicy":"Orphan"}}'"""
    )
    assert hint in message
    assert blocked["metadata"]["finalizers"]  # still held

    # What the hint says to do: the object goes, Renku is not touched.
    renku_double.clear_requests()
    await kube.patch(GENV, NAMESPACE, "stuck", {"spec": {"deletionPolicy": "Orphan"}})
    await kube.wait_gone(GENV, NAMESPACE, "stuck")

    await kube.wait_event("stuck", "Orphaned", namespace=NAMESPACE)
    assert renku_double.requests == []
    renku_double.set_down(False)
    assert renku_double.environments[renku_id]["is_archived"] is False
