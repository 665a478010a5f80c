"""The claims' garbage collection and the deletion policy the claims record (issue 19, finding 6).

Real claims on the emulated API server, the in-memory Renku, and a stand-in for the reads of
GlobalEnvironments, so that a list that lags behind the API server can be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pytest

from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.renku_errors import RenkuUnavailableError
from renku_env_operator.config import Settings
from renku_env_operator.services.claims_gc import ClaimCollector
from renku_env_operator.services.ownership import Ownership, OwnershipConflictError
from renku_env_operator.services.publishing import Publisher
from renku_env_operator.services.renku_sync import RenkuSnapshot, RenkuSync
from renku_env_operator.services.work import ObjectRef
from tests.support.claims import NAMESPACE, age_attempt, stored_claims
from tests.support.kube import CLAIMS, Kube
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.work import applied, event_reasons, synced, work_for
from tests.unit.test_ownership import IMAGE, LOST, spec, writes

REF = ObjectRef(namespace=NAMESPACE, name="python", uid="uid-1", generation=1)
AGAIN = ObjectRef(namespace=NAMESPACE, name="python", uid="uid-9", generation=1)
OTHER_GONE = ObjectRef(namespace=NAMESPACE, name="other", uid="uid-2", generation=1)
UNTRUSTED = ObjectRef(namespace="team-a", name="python", uid="uid-3", generation=1)


class Reads:
    """What the API server answers about GlobalEnvironments: `listed` (a list, which may lag)
    and `live` (a GET, which does not)."""

    def __init__(self) -> None:
        self.listed: set[str] = set()
        self.live: dict[tuple[str, str], str] = {}
        self.gets = 0

    async def uids(self, namespace: str) -> set[str]:
        return set(self.listed)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        uid = self.live.get((namespace, name))
        if uid is None:
            return None
        meta = {"namespace": namespace, "name": name, "uid": uid}
        return {"apiVersion": "renku.io/v1alpha1", "kind": "GlobalEnvironment", "metadata": meta}

    async def uid(self, namespace: str, name: str) -> str | None:
        return self.live.get((namespace, name))


class Posted(list[tuple[str, str, str, str]]):
    """The Events posted: (kind, name, reason, message)."""


def collector(publisher: Publisher, reads: Reads, posted: Posted) -> ClaimCollector:
    async def post(
        body: Mapping[str, Any], type_: Literal["Normal", "Warning"], reason: str, msg: str
    ) -> None:
        posted.append((body["kind"], body["metadata"]["name"], reason, msg))

    return ClaimCollector(publisher.settings, publisher.sync, reads, post)


async def published(publisher: Publisher, ref: ObjectRef = REF, **fields: Any) -> str:
    work = work_for(ref)
    await publisher.publish(work, spec(**fields), IMAGE)
    assert synced(work)[:2] == ("True", "Created"), synced(work)
    renku_id = work.status.renku_id
    assert renku_id is not None
    return renku_id


async def test_a_lagging_list_never_decides_only_the_get_does(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku_id = await published(publisher)
    before = stored_claims(kube, "env")
    reads, posted = Reads(), Posted()
    gc = collector(publisher_for(renku, claims), reads, posted)  # a process that holds nothing

    # The list does not show the object yet (it lags), the API server still holds it.
    reads.live[(NAMESPACE, "python")] = REF.uid
    assert await gc.collect() == {}
    assert reads.gets == 1
    assert stored_claims(kube, "env") == before
    assert writes(renku) == ["POST"]
    assert posted == []

    # Only when the GET answers that it is gone is anything done.
    del reads.live[(NAMESPACE, "python")]
    assert await gc.collect() == {"archived": 1}
    assert writes(renku) == ["POST", "PATCH"]
    assert renku.envs[renku_id]["is_archived"] is True
    assert stored_claims(kube, "env") == {}
    assert [p[:3] for p in posted] == [
        ("GlobalEnvironmentClaim", f"env-{renku_id.lower()}", "ClaimCollected")
    ]


async def test_an_object_this_process_holds_is_not_even_looked_up(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    await published(publisher)
    reads = Reads()
    assert await collector(publisher, reads, Posted()).collect() == {}
    assert reads.gets == 0


async def test_a_new_object_of_the_same_name_is_handed_the_environment(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku_id = await published(publisher)
    reads, posted = Reads(), Posted()
    reads.live[(NAMESPACE, "python")] = AGAIN.uid  # force-deleted, then created again

    assert await collector(publisher_for(renku, claims), reads, posted).collect() == {
        "taken_over": 1
    }
    stored = stored_claims(kube, "env")[f"env-{renku_id.lower()}"]
    assert stored["spec"]["owner"]["uid"] == AGAIN.uid
    assert stored["metadata"]["labels"]["renku.io/owner-uid"] == AGAIN.uid
    assert stored["spec"]["lastKnownGood"]["image"] == IMAGE  # the record moved whole
    assert [p[:3] for p in posted] == [("GlobalEnvironment", "python", "ClaimTakenOver")]
    assert writes(renku) == ["POST"]


async def test_a_claim_being_collected_is_not_taken_over(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku_id = await published(publisher)
    name = f"env-{renku_id.lower()}"
    await kube.patch(CLAIMS, NAMESPACE, name, {"spec": {"collecting": "2026-01-01T00:00:00Z"}})
    ownership = Ownership(claims, live=Reads().uid)
    held = await ownership.holder(renku_id)
    assert held is not None
    assert await ownership.take_over(AGAIN, held, live_uid=AGAIN.uid) is None


async def test_a_takeover_needs_the_api_server_to_hold_the_new_object_under_that_name(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku_id = await published(publisher)
    reads = Reads()
    ownership = Ownership(claims, live=reads.uid)
    held = await ownership.holder(renku_id)
    assert held is not None
    # The old object still exists (or nothing is there): no takeover.
    reads.live[(NAMESPACE, "python")] = REF.uid
    assert await ownership.take_over(AGAIN, held) is None
    del reads.live[(NAMESPACE, "python")]
    assert await ownership.take_over(AGAIN, held) is None
    # Another name never takes it.
    other = ObjectRef(namespace=NAMESPACE, name="other", uid="uid-7", generation=1)
    reads.live[(NAMESPACE, "other")] = other.uid
    assert await ownership.take_over(other, held) is None
    reads.live[(NAMESPACE, "python")] = AGAIN.uid
    taken = await ownership.take_over(AGAIN, held)
    assert taken is not None
    assert taken.taken_from == held.owner


async def test_the_claim_records_the_policy_and_keeps_it_with_the_last_known_good(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, trusted_namespaces=["renku"])
    renku_id = await published(publisher, deletionPolicy="Delete")
    name = f"env-{renku_id.lower()}"
    assert stored_claims(kube, "env")[name]["spec"]["deletionPolicy"] == "Delete"

    # A new version is published: the last known good is rewritten, the policy kept.
    work = work_for(REF)
    await publisher.publish(work, spec(deletionPolicy="Delete", description="new"), IMAGE)
    assert synced(work)[:2] == ("True", "Updated"), synced(work)
    stored = stored_claims(kube, "env")[name]["spec"]
    assert stored["lastKnownGood"]["environment"]["description"] == "new"
    assert stored["deletionPolicy"] == "Delete"

    # A changed policy, and suspend (which leaves Renku alone on delete), are recorded.
    work = applied(work)
    await publisher.publish(work, spec(deletionPolicy="Archive", description="new"), IMAGE)
    assert stored_claims(kube, "env")[name]["spec"]["deletionPolicy"] == "Archive"
    await publisher.publish(applied(work), spec(suspend=True, description="new"), IMAGE)
    assert stored_claims(kube, "env")[name]["spec"]["deletionPolicy"] == "Orphan"


async def test_delete_outside_trusted_namespaces_is_recorded_as_archive(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)  # trusts only the operator's namespace
    renku_id = await published(publisher, UNTRUSTED)
    await kube.patch(
        CLAIMS, NAMESPACE, f"env-{renku_id.lower()}", {"spec": {"deletionPolicy": "Delete"}}
    )
    reads = Reads()
    # Even a Delete written into the claim is applied as Archive there.
    assert await collector(publisher_for(renku, claims), reads, Posted()).collect() == {
        "archived": 1
    }
    assert renku.envs[renku_id]["is_archived"] is True


async def test_a_failure_in_renku_keeps_the_claim_marked_and_is_retried_later(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku_id = await published(publisher)
    name = f"env-{renku_id.lower()}"
    reads, posted = Reads(), Posted()
    gc = collector(publisher_for(renku, claims), reads, posted)

    renku.fail("PATCH", RenkuUnavailableError("Renku answered 503"))
    assert await gc.collect() == {"failed": 1}
    kept = stored_claims(kube, "env")[name]
    assert kept["spec"]["collecting"]  # decided: no one takes it over any more
    assert [p[2] for p in posted] == ["ClaimCollectionFailed"]
    assert renku.envs[renku_id].get("is_archived") is not True

    # Within an interval of the mark, another replica may be at work on it: left alone.
    assert await gc.collect() == {}
    assert writes(renku) == ["POST", "PATCH"]  # the one that failed, no other
    # An older mark was abandoned: collected, even if the name is taken again meanwhile.
    await kube.patch(CLAIMS, NAMESPACE, name, {"spec": {"collecting": "2020-01-01T00:00:00Z"}})
    reads.live[(NAMESPACE, "python")] = AGAIN.uid
    assert await gc.collect() == {"archived": 1}
    assert renku.envs[renku_id]["is_archived"] is True
    assert stored_claims(kube, "env") == {}


async def test_a_young_attempt_of_a_gone_object_is_left_until_it_cannot_be_in_flight(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    renku.fail("POST", LOST, applied=True)  # created in Renku, the answer lost
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    assert synced(work)[:2] == ("False", "RenkuUnavailable"), synced(work)
    [env_id] = renku.envs
    gc = collector(publisher_for(renku, claims), Reads(), Posted())

    assert await gc.collect() == {}  # young: its POST may still be on its way
    assert list(stored_claims(kube, "attempt")) == [f"attempt-{REF.uid}"]

    await age_attempt(kube, REF.uid)
    assert await gc.collect() == {"recovered": 1}
    assert stored_claims(kube, "attempt") == {}
    recorded = stored_claims(kube, "env")[f"env-{env_id.lower()}"]["spec"]
    assert recorded["owner"]["uid"] == REF.uid
    assert recorded["deletionPolicy"] == "Archive"  # recorded with the attempt
    assert await gc.collect() == {"archived": 1}
    assert renku.envs[env_id]["is_archived"] is True


async def test_an_object_restored_with_its_status_takes_its_claim_over(
    kube: Kube, renku: MemoryRenku, claims: ClaimsClient
) -> None:
    renku_id = await published(publisher_for(renku, claims))
    # Restored from a backup after a force-delete: a new uid, status.renkuId as it was.
    reads = Reads()
    reads.live[(NAMESPACE, "python")] = AGAIN.uid
    sync = RenkuSync(renku, RenkuSnapshot(renku, 300.0), Ownership(claims, live=reads.uid))
    publisher = Publisher(Settings(operator_namespace="renku"), sync)
    work = work_for(AGAIN, GlobalEnvironmentStatus(renku_id=renku_id))
    await publisher.publish(work, spec(), IMAGE)

    assert synced(work)[0] == "True", synced(work)
    assert "ClaimTakenOver" in event_reasons(work)
    assert "ForgedStatus" not in event_reasons(work)
    assert (
        stored_claims(kube, "env")[f"env-{renku_id.lower()}"]["spec"]["owner"]["uid"] == AGAIN.uid
    )
    assert writes(renku) == ["POST"]


async def test_a_takeover_that_lost_the_race_to_a_hand_over_still_owns_the_claim(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    renku_id = await published(publisher_for(renku, claims))
    reads = Reads()
    reads.live[(NAMESPACE, "python")] = AGAIN.uid
    ownership = Ownership(claims, live=reads.uid)
    stale = await ownership.holder(renku_id)  # read by the new object's pass...
    assert stale is not None
    gc = collector(publisher_for(renku, claims), reads, Posted())
    assert await gc.collect() == {"taken_over": 1}  # ...and handed to it meanwhile

    # Its own takeover meets a 409: the claim is its own all the same (no second create).
    taken = await ownership.take_over(AGAIN, stale)
    assert taken is not None
    assert taken.owner is not None
    assert taken.owner.uid == AGAIN.uid
    assert [c.renku_id for c in await ownership.inherit(AGAIN)] == [renku_id]


async def test_a_claim_lost_to_a_race_does_not_stop_the_pass(
    renku: MemoryRenku, claims: ClaimsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another object takes an id between the look-up and the claim: that claim is counted as
    failed and looked at again next time; the other gone objects are still collected."""
    publisher = publisher_for(renku, claims)
    first = await published(publisher)
    second = await published(publisher, OTHER_GONE)
    reads, posted = Reads(), Posted()
    gc = collector(publisher_for(renku, claims), reads, posted)
    real = gc._one
    raced: list[str] = []

    async def one(raw: dict[str, Any], owner: Any) -> Any:
        if not raced:
            raced.append(raw["metadata"]["name"])
            raise OwnershipConflictError(first, None)
        return await real(raw, owner)

    monkeypatch.setattr(gc, "_one", one)
    assert await gc.collect() == {"failed": 1, "archived": 1}
    archived = [i for i in (first, second) if renku.envs[i].get("is_archived")]
    assert len(archived) == 1
