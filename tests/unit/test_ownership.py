"""Ownership of Renku environments: from the operator's claims, never from a status.

Publisher stacks over the in-memory Renku (or the Renku double), with the real claims client on
the emulated API server: forged status, lost creates, in-flight attempts, trusted namespaces.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.renku import RenkuClient
from renku_env_operator.clients.renku_auth import StaticToken, StaticTokenAuth
from renku_env_operator.clients.renku_errors import RenkuError, RenkuUnavailableError
from renku_env_operator.config import Settings
from renku_env_operator.domain import conditions as cond
from renku_env_operator.services import renku_sync
from renku_env_operator.services.ownership import Ownership
from renku_env_operator.services.publishing import Publisher
from renku_env_operator.services.renku_sync import RenkuSnapshot, RenkuSync
from renku_env_operator.services.retiring import Retirer
from renku_env_operator.services.work import ObjectRef, Work
from tests.support.claims import NAMESPACE, age_attempt, stored_claims
from tests.support.kube import CLAIMS, Kube
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.renku_double import RenkuDouble, new_ulid
from tests.support.work import applied, event_reasons, synced, work_for

IMAGE = "ghcr.io/example/env:1.0.0"
REF = ObjectRef(namespace=NAMESPACE, name="python", uid="uid-1", generation=1)
OTHER = ObjectRef(namespace=NAMESPACE, name="other", uid="uid-2", generation=1)
# Dropped after it was carried out: no answer came back.
LOST = RenkuUnavailableError("Cannot reach Renku (RemoteProtocolError)", maybe_applied=True)
LONG_AGO = "2020-01-01T00:00:00Z"
TRUST_ENV = "RENKU_ENV_OPERATOR_TRUSTED_NAMESPACES (Helm: security.trustedNamespaces)"


def spec(**fields: Any) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


def writes(renku: MemoryRenku) -> list[str]:
    return [call for call in renku.log if call in ("POST", "PATCH", "DELETE")]


async def created(publisher: Publisher, ref: ObjectRef = REF, **fields: Any) -> Work:
    work = work_for(ref)
    await publisher.publish(work, spec(**fields), IMAGE)
    assert synced(work)[:2] == ("True", "Created"), synced(work)
    return applied(work)


# ---------------------------------------------------------------- forged status


async def test_a_forged_renku_id_never_reaches_the_other_objects_environment(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    theirs = await created(publisher, OTHER, description="theirs")
    mine = await created(publisher, REF, description="mine")
    their_id, my_id = theirs.status.renku_id, mine.status.renku_id
    renku.log.clear()

    # Someone with rights on globalenvironments/status points this object at theirs.
    forged = applied(mine)
    forged.status = forged.status.model_copy(update={"renku_id": their_id})
    await publisher.publish(forged, spec(description="mine, edited"), IMAGE)

    status, reason, message = synced(forged)
    assert (status, reason) == ("False", "ForgedStatus")
    assert f"names {their_id}, which GlobalEnvironment renku/other owns" in message
    assert "nothing was changed in Renku" in message
    assert writes(renku) == []
    assert forged.status.renku_id == my_id  # restored from the records
    assert renku.envs[str(their_id)]["description"] == "theirs"

    # The next reconcile works on its own environment again.
    again = applied(forged)
    await publisher.publish(again, spec(description="mine, edited"), IMAGE)
    assert synced(again)[:2] == ("True", "Updated")
    assert renku.envs[str(my_id)]["description"] == "mine, edited"
    assert renku.envs[str(their_id)]["description"] == "theirs"


async def test_a_forged_renku_id_is_not_deleted_on_retire(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    theirs = await created(publisher, OTHER)
    mine = await created(publisher, REF)
    forged = applied(mine)
    forged.status = forged.status.model_copy(update={"renku_id": theirs.status.renku_id})
    renku.log.clear()

    retirer = Retirer(publisher.settings, publisher.sync)
    assert await retirer.retire(forged, {"deletionPolicy": "Delete"}, attempt=1) is None

    assert list(renku.envs) == [theirs.status.renku_id]  # only its own was deleted
    assert writes(renku) == ["DELETE"]
    assert event_reasons(forged) == ["ForgedStatus", "Deleted"]


async def test_a_forged_published_state_is_never_pushed_to_renku(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, drift_interval_seconds=1e-6)
    work = await created(publisher, REF)
    good = work.status.published
    assert good is not None
    assert good.environment is not None
    evil_env = good.environment.model_copy(update={"container_image": "evil.example/x:1"})
    evil = good.model_copy(update={"environment": evil_env, "image": "evil.example/x:1"})
    renku.log.clear()

    # A newer spec failed its checks: hold() keeps "the last known good", as the status says.
    forged = applied(work)
    forged.status = forged.status.model_copy(update={"published": evil})
    await publisher.hold(forged, spec(image="ghcr.io/example/env:2.0.0"))

    assert synced(forged)[:2] == ("False", "ForgedStatus")
    assert "status.published differs from the operator's record" in synced(forged)[2]
    assert writes(renku) == []
    assert forged.status.published == good

    # Drift in the admin panel is restored to what the record holds, never the forged image.
    [env] = renku.envs.values()
    env["container_image"] = "drifted.example/y:1"
    again = applied(forged)
    await publisher.hold(again, spec(image="ghcr.io/example/env:2.0.0"))
    assert env["container_image"] == IMAGE
    assert synced(again)[:2] == ("False", "LastKnownGood")


async def test_an_id_another_object_owns_is_never_patched_whatever_the_cache_says(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    publisher = publisher_for(renku, claims)
    work = await created(publisher, REF)
    renku_id = str(work.status.renku_id)
    # The record now says another object owns it (as after a hand-over in the API server).
    owner = {"namespace": NAMESPACE, "name": "other", "uid": OTHER.uid}
    await kube.patch(CLAIMS, NAMESPACE, f"env-{renku_id.lower()}", {"spec": {"owner": owner}})
    renku.log.clear()

    edited = applied(work)
    await publisher.publish(edited, spec(port=9999), IMAGE)

    status, reason, message = synced(edited)
    assert (status, reason) == ("False", "OwnershipConflict")
    assert f"{renku_id} is owned by GlobalEnvironment renku/other" in message
    assert writes(renku) == []


# ---------------------------------------------------------------- lost creates


async def test_a_lost_create_then_an_edit_gives_exactly_one_environment(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    renku.fail("POST", LOST, applied=True)
    work = work_for(REF)
    await publisher.publish(work, spec(description="first"), IMAGE)
    assert synced(work)[:2] == ("False", "RenkuUnavailable")

    retry = applied(work)
    await publisher.publish(retry, spec(description="second"), IMAGE)

    [(env_id, env)] = renku.envs.items()
    assert env["description"] == "second"  # recovered by the attempt, then converged
    assert renku.log.count("POST") == 1
    assert retry.status.renku_id == env_id
    assert synced(retry)[:2] == ("True", "Recovered")
    assert "then updated description" in synced(retry)[2]
    assert event_reasons(retry) == ["Recovered", "Updated"]


async def test_two_identical_candidates_are_reported_not_guessed(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    renku.fail("POST", LOST, applied=True)
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    [ours] = renku.envs
    twin = new_ulid()
    renku.envs[twin] = {**renku.envs[ours], "id": twin}  # made by someone, at the same time
    renku.log.clear()

    retry = applied(work)
    await publisher.publish(retry, spec(), IMAGE)

    status, reason, message = synced(retry)
    assert (status, reason) == ("False", "RecoveryAmbiguous")
    assert ours in message
    assert twin in message
    assert "does not guess" in message
    assert writes(renku) == []
    assert retry.status.renku_id is None
    assert "RecoveryAmbiguous" in cond.NEEDS_HUMAN


async def test_an_identical_environment_made_before_the_attempt_is_not_taken(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    renku.fail("POST", LOST, applied=False)  # lost on its way: Renku never saw it
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    assert renku.envs == {}
    # An admin made an identical environment a minute before the attempt.
    theirs = new_ulid()
    renku.envs[theirs] = {
        "id": theirs,
        "name": "python",
        "container_image": IMAGE,
        "creation_date": (datetime.now(UTC) - timedelta(minutes=62)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    await age_attempt(kube, REF.uid, minutes=61)  # and the attempt has expired since

    retry = applied(work)
    await publisher.publish(retry, spec(), IMAGE)

    assert synced(retry)[:2] == ("True", "Created")
    assert retry.status.renku_id not in (None, theirs)
    assert len(renku.envs) == 2
    assert renku.envs[theirs]["container_image"] == IMAGE  # untouched, and not claimed
    assert f"env-{theirs.lower()}" not in stored_claims(kube, "env")


async def test_a_young_attempt_stops_a_second_operator_from_posting(
    renku_double: RenkuDouble, claims: ClaimsClient, kube: Kube
) -> None:
    # Two operator processes (separate caches and clients), one API server, one Renku.
    def stack() -> Publisher:
        token = StaticTokenAuth(StaticToken(token=SecretStr(renku_double.admin_token)))
        client = RenkuClient(renku_double.url, token, timeout=5.0, retry_attempts=1)
        config = Settings(operator_namespace=NAMESPACE, retry_backoff_seconds=1e-6)
        return Publisher(config, RenkuSync(client, RenkuSnapshot(client, 300.0), Ownership(claims)))

    first, second = stack(), stack()
    renku_double.stall_next_request("POST")  # the first create is still on its way
    a = work_for(REF)
    posting = asyncio.create_task(first.publish(a, spec(), IMAGE))
    await asyncio.to_thread(renku_double.stalled.wait, 5)

    b = work_for(REF)
    await second.publish(b, spec(), IMAGE)

    status, reason, message = synced(b)
    assert (status, reason) == ("Unknown", "CreateInFlight")
    assert "no second one is sent before" in message
    # The stalled first POST is not carried out (nor logged) yet: the second sent none.
    assert renku_double.count("POST") == 0
    assert renku_double.environments == {}

    renku_double.release_hung()
    await posting
    await both_end_with_one_environment(renku_double, first, a, second, b)


async def both_end_with_one_environment(
    renku_double: RenkuDouble, first: Publisher, a: Work, second: Publisher, b: Work
) -> None:
    """The first replica's create landed; the second, on its next pass, finds it: one POST."""
    assert synced(a)[:2] == ("True", "Created")
    again = applied(b)
    await second.publish(again, spec(), IMAGE)
    assert synced(again)[:2] == ("True", "InSync")
    assert again.status.renku_id == a.status.renku_id
    assert len(renku_double.environments) == 1
    assert renku_double.count("POST") == 1
    await first.sync.client.aclose()
    await second.sync.client.aclose()


class SlowAttemptWrites(ClaimsClient):
    """An API server slow to answer a create attempt's write: it lands at once (others see
    it), its answer comes only when the test releases it."""

    def __init__(self, claims: ClaimsClient) -> None:
        super().__init__(claims._kube, claims.namespace)
        self.landed, self.release = asyncio.Event(), asyncio.Event()

    async def create(self, name: str, spec: Any, labels: Any) -> dict[str, Any]:
        raw = await super().create(name, spec, labels)
        if name.startswith("attempt-"):
            self.landed.set()
            await self.release.wait()
        return raw


def renku_stack(renku_double: RenkuDouble, claims: ClaimsClient) -> Publisher:
    """One operator process: its own caches and clients (a short Renku budget)."""
    token = StaticTokenAuth(StaticToken(token=SecretStr(renku_double.admin_token)))
    client = RenkuClient(renku_double.url, token, timeout=0.3, retry_attempts=1)
    config = Settings(operator_namespace=NAMESPACE, retry_backoff_seconds=1e-6)
    return Publisher(config, RenkuSync(client, RenkuSnapshot(client, 300.0), Ownership(claims)))


async def test_a_slow_claim_write_does_not_let_a_second_operator_post(
    renku_double: RenkuDouble, claims: ClaimsClient, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The skew allowance is what used to hide a slow write: small here, so the test is quick.
    monkeypatch.setattr(renku_sync, "CLOCK_SKEW", timedelta(seconds=0.2))
    slow = SlowAttemptWrites(claims)
    first, second = renku_stack(renku_double, slow), renku_stack(renku_double, claims)
    a = work_for(REF)
    posting = asyncio.create_task(first.publish(a, spec(), IMAGE))
    await slow.landed.wait()
    # The first replica's record has landed, its answer has not: slower than budget + skew.
    await asyncio.sleep(first.sync.client.call_budget + 0.2 + 0.3)

    b = work_for(REF)
    await second.publish(b, spec(), IMAGE)
    assert synced(b)[:2] == ("Unknown", "CreateInFlight"), synced(b)
    assert renku_double.count("POST") == 0

    slow.release.set()
    await posting
    await both_end_with_one_environment(renku_double, first, a, second, b)


async def test_a_create_whose_record_took_too_long_is_not_sent(
    renku_double: RenkuDouble, claims: ClaimsClient, kube: Kube, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(renku_sync, "SEND_WITHIN", timedelta(seconds=0.2), raising=False)
    slow = SlowAttemptWrites(claims)
    publisher = renku_stack(renku_double, slow)
    work = work_for(REF)
    posting = asyncio.create_task(publisher.publish(work, spec(), IMAGE))
    await slow.landed.wait()
    await asyncio.sleep(0.4)  # the write answers later than SEND_WITHIN after its stamp
    slow.release.set()
    await posting

    status, reason, message = synced(work)
    assert (status, reason) == ("False", "ClaimFailed"), synced(work)
    assert "recording the create took" in message
    assert "not sent" in message
    assert renku_double.count("POST") == 0
    assert stored_claims(kube, "attempt") == {}  # certainly not sent: cleared
    # The next pass, with a prompt write, creates it (no wait for its own unsent attempt).
    again = applied(work)
    await publisher.publish(again, spec(), IMAGE)
    assert synced(again)[:2] == ("True", "Created"), synced(again)
    assert renku_double.count("POST") == 1
    await publisher.sync.client.aclose()


@pytest.mark.parametrize(("policy", "reason"), [("Archive", "Archived"), ("Delete", "Deleted")])
async def test_retire_with_only_an_attempt_recovers_then_retires(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube, policy: str, reason: str
) -> None:
    publisher = publisher_for(renku, claims)
    renku.fail("POST", LOST, applied=True)
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    [env_id] = renku.envs
    deleting = applied(work)
    assert deleting.status.renku_id is None

    retirer = Retirer(publisher.settings, publisher.sync)
    assert await retirer.retire(deleting, {"deletionPolicy": policy}, attempt=1) is None

    # The only environment in Renku: its retirement is warned about (Renku would re-seed).
    assert event_reasons(deleting) == ["Recovered", "LastActiveEnvironment", reason]
    if policy == "Archive":
        assert renku.envs[env_id]["is_archived"] is True
    else:
        assert renku.envs == {}
    assert stored_claims(kube, "attempt") == {}
    assert stored_claims(kube, "env") == {}  # released


async def test_retire_waits_for_an_attempt_that_may_be_in_flight(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=3.0)
    renku.fail("POST", LOST, applied=False)
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)

    deleting = applied(work)
    delay = await Retirer(publisher.settings, publisher.sync).retire(deleting, {}, attempt=1)

    assert delay == 3.0
    status, reason, message = synced(deleting)
    assert (status, reason) == ("False", "Deleting")
    assert "may still be on its way to Renku" in message
    assert renku.envs == {}


# ---------------------------------------------------------------- spec.renkuId added later


@pytest.mark.parametrize(
    ("policy", "archived"), [("Archive", True), ("Orphan", False), ("Delete", None)]
)
async def test_adding_spec_renku_id_retires_the_environment_created_before(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube, policy: str, archived: bool | None
) -> None:
    publisher = publisher_for(renku, claims)
    work = await created(publisher, REF, deletionPolicy=policy)
    old_id = str(work.status.renku_id)
    new_id = new_ulid()
    renku.envs[new_id] = {"id": new_id, "name": "hand-made", "container_image": "x/y:1"}

    switched = applied(work)
    await publisher.publish(switched, spec(deletionPolicy=policy, renkuId=new_id), IMAGE)

    assert switched.status.renku_id == new_id
    assert synced(switched)[:2] == ("True", "Updated")
    assert event_reasons(switched) == ["Adopted", "Replaced", "Updated"]
    replaced = next(e for e in switched.events if e.reason == "Replaced")
    assert new_id in replaced.message
    assert old_id in replaced.message
    if archived is None:
        assert old_id not in renku.envs
    else:
        assert renku.envs[old_id]["is_archived"] is archived
    assert list(stored_claims(kube, "env")) == [f"env-{new_id.lower()}"]


# ---------------------------------------------------------------- trusted namespaces


async def test_an_untrusted_namespace_cannot_adopt_a_hand_made_environment(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    publisher = publisher_for(renku, claims, trusted_namespaces=["admins"])
    hand_made = new_ulid()
    renku.envs[hand_made] = {"id": hand_made, "name": "admin's", "container_image": "x/y:1"}
    before = dict(renku.envs[hand_made])
    work = work_for(REF)

    await publisher.publish(work, spec(renkuId=hand_made), IMAGE)

    status, reason, message = synced(work)
    assert (status, reason) == ("False", "AdoptionNotAllowed")
    assert TRUST_ENV in message
    assert "renku is not one" in message
    assert renku.log == []
    assert renku.envs == {hand_made: before}
    assert stored_claims(kube, "env") == {}


async def test_an_untrusted_namespace_cannot_ask_for_delete(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, trusted_namespaces=["admins"])
    work = work_for(REF)

    await publisher.publish(work, spec(deletionPolicy="Delete"), IMAGE)

    status, reason, message = synced(work)
    assert (status, reason) == ("False", "DeletionNotAllowed")
    assert TRUST_ENV in message
    assert renku.log == []
    assert renku.envs == {}


async def test_delete_from_an_untrusted_namespace_archives_on_retire(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    trusted = publisher_for(renku, claims)
    work = await created(trusted, REF)  # published while it was Archive
    env_id = str(work.status.renku_id)
    publisher = publisher_for(renku, claims, trusted_namespaces=["admins"])
    renku.log.clear()

    deleting = applied(work)
    done = await Retirer(publisher.settings, publisher.sync).retire(
        deleting, {"deletionPolicy": "Delete"}, attempt=1
    )

    assert done is None
    assert renku.envs[env_id]["is_archived"] is True
    assert writes(renku) == ["PATCH"]
    warning, event = deleting.events  # the only environment: LastActiveEnvironment first
    assert warning.reason == "LastActiveEnvironment"
    assert event.reason == "Archived"
    assert "deletionPolicy Delete is not allowed in namespace renku" in event.message


@pytest.mark.parametrize("value", ["*", "renku", "a, renku ,b"])
def test_trusted_namespaces_setting(value: str) -> None:
    settings = Settings(trusted_namespaces=value)
    assert settings.is_trusted("renku")
    assert settings.is_trusted("elsewhere") is (value == "*")


def test_by_default_only_the_operators_namespace_is_trusted() -> None:
    settings = Settings(operator_namespace="renku-system")
    assert settings.is_trusted("renku-system")
    assert not settings.is_trusted("renku")


# ---------------------------------------------------------------- migration


@pytest.mark.parametrize("listed", [True, False])
async def test_a_status_renku_id_from_before_the_records(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube, listed: bool
) -> None:
    publisher = publisher_for(renku, claims, trusted_namespaces=[NAMESPACE])
    legacy_id = new_ulid()
    renku.envs[legacy_id] = {"id": legacy_id, "name": "python", "container_image": IMAGE}
    ref = ObjectRef(NAMESPACE, "python", "uid-1", 1, created=LONG_AGO)
    legacy = {"metadata": {"uid": ref.uid}, "status": {"renkuId": legacy_id}}

    async def existing() -> list[dict[str, Any]]:  # the objects when the records began
        return [legacy] if listed else []

    await publisher.ownership.start(existing)
    work = work_for(ref, GlobalEnvironmentStatus(renku_id=legacy_id))

    await publisher.publish(work, spec(), IMAGE)

    if listed:  # published by an operator that kept no records: claimed once, with an Event
        assert "OwnershipMigrated" in event_reasons(work)
        assert synced(work)[:2] == ("True", "InSync")  # Renku was what the spec declares
        assert list(stored_claims(kube, "env")) == [f"env-{legacy_id.lower()}"]
    else:  # not listed at the upgrade: forged, even from a trusted namespace
        assert synced(work)[:2] == ("False", "ForgedStatus")
        assert stored_claims(kube, "env") == {}
        assert writes(renku) == []


# ---------------------------------------------------------------- ids from Renku


async def test_a_non_ulid_id_from_renku_is_a_clear_renku_error(
    claims: ClaimsClient, kube: Kube
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content) | {"id": "not-a-ulid", "creation_date": LONG_AGO}
            return httpx.Response(201, json=body)
        return httpx.Response(200, json=[{"id": "../../etc", "name": "x"}])

    client = RenkuClient(
        "http://renku.invalid/api/data", None, transport=httpx.MockTransport(answer)
    )
    with pytest.raises(RenkuError, match="not a ULID"):
        await client.create_environment({"name": "x", "container_image": IMAGE})
    with pytest.raises(RenkuError, match="not a ULID"):
        await client.list_environments()

    config = Settings(operator_namespace=NAMESPACE, trusted_namespaces=[NAMESPACE])
    publisher = Publisher(
        config, RenkuSync(client, RenkuSnapshot(client, 300.0), Ownership(claims))
    )
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)

    status, reason, message = synced(work)
    assert (status, reason) == ("False", "RenkuError")
    assert "not a ULID ('not-a-ulid')" in message
    assert stored_claims(kube, "env") == {}
    await client.aclose()
