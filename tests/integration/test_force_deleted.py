"""Force-deleted GlobalEnvironments (finalizer removed by hand while the operator could not
retire them), end to end (issue 19, finding 6): the same name created again gets its
environment back, with or without spec.renkuId; with no successor the garbage collection
retires the environment per the deletionPolicy recorded in the claim, with an Event and a
metric (tests/unit/test_claims_gc.py: it never acts on an object that still exists)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.support.claims import age_attempt, stored_claims
from tests.support.kube import CLAIMS, GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    RunningOperator,
    genv,
    has_condition,
    published,
)
from tests.support.renku_double import RenkuDouble

NEVER = 3600.0  # a claims GC interval that does not come round during a test
SOON = 0.2


def collected(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "renku_env_operator_claims_collected_total", {"outcome": outcome}
    )
    return value or 0.0


async def force_delete(kube: Kube, running: RunningOperator, name: str) -> str:
    """What an admin does when deletion is stuck: with no operator to retire it, delete the
    object and remove its finalizer. Returns the gone object's uid."""
    uid = str((await kube.get(GENV, NAMESPACE, name))["metadata"]["uid"])
    await running.thread.stop()
    await kube.delete(GENV, NAMESPACE, name)
    await kube.patch(GENV, NAMESPACE, name, {"metadata": {"finalizers": []}})
    await kube.wait_gone(GENV, NAMESPACE, name)
    return uid


def owner_uid(kube: Kube, renku_id: str) -> str:
    return str(stored_claims(kube, "env")[f"env-{renku_id.lower()}"]["spec"]["owner"]["uid"])


async def ready_with(kube: Kube, name: str, renku_id: str) -> dict[str, Any]:
    return await kube.wait_for(
        GENV,
        NAMESPACE,
        name,
        lambda o: (
            o.get("status", {}).get("renkuId") == renku_id
            and has_condition("Ready", "True")(o)
            and has_condition("Synced", "True")(o)
        ),
        timeout=10,
    )


async def test_recreated_without_renku_id_gets_its_environment_back(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await start_operator(claim_gc_interval_seconds=NEVER)
    renku_id = await published(kube, "again")
    old_uid = await force_delete(kube, first, "again")

    await start_operator(claim_gc_interval_seconds=NEVER)
    created = await kube.create(genv("again", smokeTest=NO_SMOKE))
    await ready_with(kube, "again", renku_id)

    assert list(renku_double.environments) == [renku_id]  # not a second environment
    assert renku_double.count("POST", ENVS) == 1
    assert renku_double.environments[renku_id]["is_archived"] is False
    assert owner_uid(kube, renku_id) == created["metadata"]["uid"] != old_uid
    event = await kube.wait_event("again", "ClaimTakenOver", namespace=NAMESPACE)
    assert renku_id in event["message"]
    assert old_uid in event["message"]


async def test_recreated_with_renku_id_gets_its_environment_back(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    admins = renku_double.admin_create(name="Admin's", container_image="ghcr.io/x/y:1.0.0")
    first = await start_operator(claim_gc_interval_seconds=NEVER)
    renku_id = await published(kube, "adopter", renkuId=admins["id"])
    assert renku_id == admins["id"]
    await force_delete(kube, first, "adopter")

    await start_operator(claim_gc_interval_seconds=NEVER)
    created = await kube.create(genv("adopter", smokeTest=NO_SMOKE, renkuId=renku_id))
    # Before: AdoptionFailed, "already managed by another GlobalEnvironment (renku/adopter)".
    await ready_with(kube, "adopter", renku_id)

    assert list(renku_double.environments) == [renku_id]
    assert renku_double.count("POST", ENVS) == 0
    assert owner_uid(kube, renku_id) == created["metadata"]["uid"]
    await kube.wait_event("adopter", "ClaimTakenOver", namespace=NAMESPACE)


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [("Archive", "archived"), ("Delete", "deleted"), ("Orphan", "released")],
)
async def test_a_force_deleted_objects_environment_is_retired_per_its_recorded_policy(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any, policy: str, outcome: str
) -> None:
    first = await start_operator(claim_gc_interval_seconds=NEVER)
    renku_id = await published(kube, "gone", deletionPolicy=policy)
    claim = f"env-{renku_id.lower()}"
    assert stored_claims(kube, "env")[claim]["spec"]["deletionPolicy"] == policy
    before = dict(renku_double.environments[renku_id])
    await force_delete(kube, first, "gone")
    counted = collected(outcome)

    await start_operator(claim_gc_interval_seconds=SOON)
    await kube.wait_gone(CLAIMS, NAMESPACE, claim)

    event = await kube.wait_event(claim, "ClaimCollected", namespace=NAMESPACE)
    assert "renku/gone" in event["message"]
    assert renku_id in event["message"]
    assert event["involvedObject"]["kind"] == "GlobalEnvironmentClaim"
    assert collected(outcome) == counted + 1
    after = renku_double.environments.get(renku_id)
    if policy == "Archive":
        assert after == before | {"is_archived": True}
    elif policy == "Delete":
        assert after is None
    else:
        assert after == before


async def test_a_claim_without_a_recorded_policy_is_released_and_renku_left_alone(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await start_operator(claim_gc_interval_seconds=NEVER)
    renku_id = await published(kube, "older")
    claim = f"env-{renku_id.lower()}"
    # As an older operator version wrote it: no deletionPolicy in the claim.
    await kube.patch(CLAIMS, NAMESPACE, claim, {"spec": {"deletionPolicy": None}})
    before = dict(renku_double.environments[renku_id])
    await force_delete(kube, first, "older")

    await start_operator(claim_gc_interval_seconds=SOON)
    await kube.wait_gone(CLAIMS, NAMESPACE, claim)

    event = await kube.wait_event(claim, "ClaimCollected", namespace=NAMESPACE)
    assert "no deletionPolicy recorded" in event["message"]
    assert renku_double.environments[renku_id] == before


async def test_a_lost_create_of_a_force_deleted_object_is_recovered_then_archived(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await start_operator(claim_gc_interval_seconds=NEVER, retry_backoff_seconds=60)
    renku_double.drop_next_response("POST")
    await kube.create(genv("lost", smokeTest=NO_SMOKE))
    await kube.wait_for(
        GENV, NAMESPACE, "lost", has_condition("Synced", "False", "RenkuUnavailable")
    )
    [env_id] = renku_double.environments
    uid = await force_delete(kube, first, "lost")
    await age_attempt(kube, uid)

    await start_operator(claim_gc_interval_seconds=SOON)
    await kube.wait_gone(CLAIMS, NAMESPACE, f"attempt-{uid}")
    # Recorded for the gone owner, then retired per the policy recorded with the attempt.
    await kube.wait_gone(CLAIMS, NAMESPACE, f"env-{env_id.lower()}", timeout=10)
    await renku_double.wait_until_async(
        lambda d: d.environments[env_id]["is_archived"] is True, timeout=5
    )
    assert stored_claims(kube, "env") == {}
    assert stored_claims(kube, "attempt") == {}


async def test_a_successor_that_adopts_another_id_retires_the_one_handed_to_it(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await start_operator(claim_gc_interval_seconds=NEVER)
    created = await published(kube, "moved")
    await force_delete(kube, first, "moved")
    admins = renku_double.admin_create(name="Admin's", container_image="ghcr.io/x/y:1.0.0")

    # Applied again before the operator is back (its collection would retire it otherwise).
    await kube.create(genv("moved", smokeTest=NO_SMOKE, renkuId=admins["id"]))
    await start_operator(claim_gc_interval_seconds=SOON)
    await ready_with(kube, "moved", admins["id"])

    # The GC hands the old environment to the new object, which retires it per its policy.
    await kube.wait_event("moved", "ClaimTakenOver", namespace=NAMESPACE)
    replaced = await kube.wait_event("moved", "Replaced", namespace=NAMESPACE, timeout=10)
    assert created in replaced["message"]
    await renku_double.wait_until_async(
        lambda d: d.environments[created]["is_archived"] is True, timeout=5
    )
    assert list(stored_claims(kube, "env")) == [f"env-{admins['id'].lower()}"]
