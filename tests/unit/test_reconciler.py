"""The reconcile pipeline with an in-memory Renku: state across calls that kopf makes."""

from __future__ import annotations

from typing import Any

from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.config import Settings
from renku_env_operator.services.reconciler import ObjectRef, Reconciler
from tests.support.memory_renku import MemoryRenku, publisher_for

REF = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=1)
SPEC: dict[str, Any] = {"image": "ghcr.io/example/env:1.0.0", "smokeTest": {"enabled": False}}


def reconciler(renku: MemoryRenku, claims: ClaimsClient) -> Reconciler:
    settings = Settings(image_checks=False)
    return Reconciler(settings, publisher_for(renku, claims), images=None, smoke=None)


async def test_a_timer_with_a_stale_view_never_creates_a_second_environment(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    operator = reconciler(renku, claims)
    first = await operator.reconcile(REF, SPEC, {})
    assert first.status.renku_id is not None

    # The timer fires before the watch delivered the status patch: it still sees {}.
    second = await operator.reconcile(REF, SPEC, {})

    assert len(renku.envs) == 1
    assert second.status.renku_id == first.status.renku_id


async def test_a_fresh_view_wins_over_the_remembered_status(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    operator = reconciler(renku, claims)
    first = await operator.reconcile(REF, SPEC, {})
    seen = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")

    again = await operator.reconcile(REF, SPEC, seen)

    assert again.status.renku_id == first.status.renku_id
    assert len(renku.envs) == 1


async def test_forgetting_an_object_drops_what_was_remembered(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    operator = reconciler(renku, claims)
    first = await operator.reconcile(REF, SPEC, {})
    operator.forget(REF.uid)
    renku.log.clear()

    # Memory is gone; the ownership records (in the API server) are not: the object starts
    # from what the API says, reads its record again and creates nothing.
    again = await operator.reconcile(REF, SPEC, {})

    assert len(renku.envs) == 1
    assert again.status.renku_id == first.status.renku_id
    assert "POST" not in renku.log


async def test_a_view_that_catches_up_only_halfway_is_still_stale(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    operator = reconciler(renku, claims)
    first = await operator.reconcile(REF, SPEC, {})
    old = first.status.model_dump(by_alias=True, exclude_none=True, mode="json")
    edited = {**SPEC, "description": "v2"}
    second = await operator.reconcile(REF, edited, {})  # stale: still {}
    calls = list(renku.log)

    # The watch now delivers the first result, not yet the second.
    third = await operator.reconcile(REF, edited, old)

    assert third.status == second.status
    assert renku.log == calls  # nothing re-read or re-sent on the half-stale view


async def test_an_id_this_process_published_for_another_object_is_not_adopted(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    operator = reconciler(renku, claims)
    first = await operator.reconcile(REF, SPEC, {})
    other = ObjectRef(namespace="renku", name="usurper", uid="uid-2", generation=1)

    second = await operator.reconcile(other, {**SPEC, "renkuId": first.status.renku_id}, {})

    synced = next(c for c in second.status.conditions if c.type == "Synced")
    assert (synced.status, synced.reason) == ("False", "AdoptionFailed")
    assert second.status.renku_id is None
