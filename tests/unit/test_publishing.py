"""Publisher and RenkuSync over an in-memory Renku: what is sent when, and what is reported."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.renku_errors import (
    RenkuCredentialsError,
    RenkuError,
    RenkuUnavailableError,
    RenkuValidationError,
)
from renku_env_operator.services.objects import ObjectState
from renku_env_operator.services.ownership import Ownership
from renku_env_operator.services.publishing import Publisher
from renku_env_operator.services.renku_sync import RenkuSnapshot
from renku_env_operator.services.retiring import Retirer
from renku_env_operator.services.work import ObjectRef, Work
from tests.support.claims import age_attempt, stored_claims
from tests.support.kube import CLAIMS, Kube
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.renku_double import new_ulid
from tests.support.work import applied, event_reasons, synced, work_for

IMAGE = "ghcr.io/example/env:1.0.0"
REF = ObjectRef(namespace="renku", name="python", uid="uid-1", generation=1)
OTHER = ObjectRef(namespace="renku", name="other", uid="uid-2", generation=1)
LOST = RenkuUnavailableError("Cannot reach Renku (RemoteProtocolError)", maybe_applied=True)


def spec(**fields: Any) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


async def published(renku: MemoryRenku, publisher: Publisher, **fields: Any) -> Work:
    """Create the environment, return the stored state; the log starts empty afterwards."""
    work = work_for(REF)
    await publisher.publish(work, spec(**fields), IMAGE)
    renku.log.clear()
    return applied(work)


# ---------------------------------------------------------------- create, recover


async def test_create_records_the_attempt_before_the_post(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    work = work_for(REF)
    at_post: list[dict[str, Any]] = []
    create = renku.create_environment

    async def recording(body: Mapping[str, Any]) -> dict[str, Any]:
        at_post.extend(stored_claims(kube, "attempt").values())
        return await create(body)

    renku.create_environment = recording  # type: ignore[method-assign,assignment]
    await publisher_for(renku, claims).publish(work, spec(port=8888), IMAGE)

    [env_id] = renku.envs
    # Recorded where users cannot write, before the POST, with what was sent.
    [attempt] = at_post
    assert attempt["spec"]["owner"] == {"namespace": "renku", "name": "python", "uid": "uid-1"}
    assert attempt["spec"]["createAttempt"]["environment"]["port"] == 8888
    assert renku.log == ["POST"]
    # Confirmed: the attempt is gone, the id is owned, with what was published.
    assert stored_claims(kube, "attempt") == {}
    [owned] = stored_claims(kube, "env").values()
    assert owned["spec"]["renkuId"] == env_id
    assert owned["spec"]["lastKnownGood"]["environment"]["port"] == 8888
    assert work.status.renku_id == env_id
    assert work.status.create_attempt is None
    assert work.status.published is not None
    assert synced(work)[:2] == ("True", "Created")
    assert event_reasons(work) == ["Created"]


async def test_nothing_is_sent_while_in_sync_and_recently_checked(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher)

    await publisher.publish(work, spec(), IMAGE)

    assert renku.log == []
    assert work.events == []


async def test_a_lost_create_answer_is_recovered_from_the_list(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    renku.fail("POST", LOST, applied=True)
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    assert synced(work)[:2] == ("False", "RenkuUnavailable")
    assert work.status.create_attempt is not None
    renku.log.clear()

    retry = applied(work)
    await publisher.publish(retry, spec(), IMAGE)

    [env_id] = renku.envs
    assert renku.log == ["LIST"]  # found, not created again
    assert retry.status.renku_id == env_id
    assert retry.status.create_attempt is None
    assert synced(retry)[:2] == ("True", "Recovered")
    assert event_reasons(retry) == ["Recovered"]


async def test_recovery_ignores_environments_that_others_own_or_that_differ(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    publisher = publisher_for(renku, claims, retry_backoff_seconds=1e-6)
    renku.fail("POST", LOST, applied=True)
    work = work_for(REF)
    await publisher.publish(work, spec(), IMAGE)
    [lost_id] = renku.envs
    renku.envs[lost_id]["port"] = 1234  # not what was sent: not ours to take
    renku.envs[lost_id]["creation_date"] = "2020-01-01T00:00:00Z"

    await Ownership(claims).claim(OTHER, lost_id)  # and another object owns it
    retry = applied(work)
    await publisher.publish(retry, spec(), IMAGE)
    assert synced(retry)[:2] == ("Unknown", "CreateInFlight")  # the attempt is still young
    assert len(renku.envs) == 1
    await age_attempt(kube, REF.uid)

    await publisher.publish(retry, spec(), IMAGE)

    assert len(renku.envs) == 2
    assert retry.status.renku_id not in (None, lost_id)
    assert synced(retry)[:2] == ("True", "Created")


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("error", "reason", "hint"),
    [
        (RenkuValidationError("Renku refused the request: uid", status=422), "RejectedByRenku", "Fix the spec"),
        (RenkuCredentialsError("token lacks renku-admin", status=403), "CredentialsRejected", "Secret"),
        (RenkuUnavailableError("Renku is unavailable", status=503), "RenkuUnavailable", "Will retry"),
        (RenkuError("Unexpected answer from Renku", status=418), "RenkuError", "Will retry"),
    ],
)  # fmt: skip
async def test_errors_become_a_reason_and_are_not_retried_before_the_backoff(
    renku: MemoryRenku, claims: ClaimsClient, error: RenkuError, reason: str, hint: str
) -> None:
    publisher = publisher_for(renku, claims)
    renku.fail("POST", error)
    work = work_for(REF)

    await publisher.publish(work, spec(), IMAGE)
    again = applied(work)
    await publisher.publish(again, spec(), IMAGE)

    status, got, message = synced(work)
    assert (status, got) == ("False", reason)
    assert str(error) in message
    assert hint in message
    assert [(e.type, e.reason) for e in work.events] == [("Warning", reason)]
    assert renku.log.count("POST") == 1
    assert renku.envs == {}


async def test_suspend_sends_nothing(renku: MemoryRenku, claims: ClaimsClient) -> None:
    work = work_for(REF)

    await publisher_for(renku, claims).publish(work, spec(suspend=True), IMAGE)

    assert renku.log == []
    assert synced(work)[:2] == ("False", "Suspended")


# ---------------------------------------------------------------- updates, adoption


async def test_a_new_spec_is_patched_after_reading_the_environment(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher, workingDirectory="/work", command=["bash"])

    await publisher.publish(work, spec(port=8888), IMAGE)

    assert renku.log == ["GET", "PATCH"]
    [env] = renku.envs.values()
    assert env["port"] == 8888
    assert "working_directory" not in env
    assert "command" not in env
    assert synced(work)[:2] == ("True", "Updated")
    assert event_reasons(work) == ["Updated"]


async def test_adoption_patches_the_named_environment(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    env_id = new_ulid()
    renku.envs[env_id] = {"id": env_id, "name": "old", "container_image": "ghcr.io/x/y:1"}
    work = work_for(REF)

    await publisher_for(renku, claims).publish(work, spec(renkuId=env_id), IMAGE)

    assert "POST" not in renku.log
    assert renku.envs[env_id]["name"] == "python"
    assert work.status.renku_id == env_id
    assert event_reasons(work) == ["Adopted", "Updated"]


@pytest.mark.parametrize("owned", [True, False])
async def test_adoption_refuses_an_owned_or_unknown_id(
    renku: MemoryRenku, claims: ClaimsClient, owned: bool
) -> None:
    env_id = new_ulid()
    if owned:
        renku.envs[env_id] = {"id": env_id, "name": "theirs", "container_image": IMAGE}
        await Ownership(claims).claim(OTHER, env_id)
    work = work_for(REF)

    await publisher_for(renku, claims).publish(work, spec(renkuId=env_id), IMAGE)

    status, reason, message = synced(work)
    assert (status, reason) == ("False", "AdoptionFailed")
    assert ("another GlobalEnvironment" if owned else "does not exist") in message
    assert [m for m in renku.log if m in ("POST", "PATCH")] == []
    assert work.status.renku_id is None


# ---------------------------------------------------------------- drift


async def drift_check(renku: MemoryRenku, publisher: Publisher, work: Work, **fields: Any) -> Work:
    """The periodic check, as a restarted operator makes it at once (nothing in memory)."""
    work.memo = ObjectState(REF.uid)  # what a restarted operator knows: nothing
    publisher.ownership.forget(REF.uid)
    publisher.sync.snapshot.invalidate()
    await publisher.publish(work, spec(**fields), IMAGE)
    return work


@pytest.mark.parametrize("policy", ["Overwrite", "Report"])
async def test_drift_is_restored_or_reported(
    renku: MemoryRenku, claims: ClaimsClient, policy: str
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher, driftPolicy=policy)
    [env] = renku.envs.values()
    env["port"] = 1234

    await drift_check(renku, publisher, work, driftPolicy=policy)

    status, reason, message = synced(work)
    assert "port: declared 8080, Renku has 1234" in message
    if policy == "Overwrite":
        assert (status, reason, env["port"]) == ("True", "DriftCorrected", 8080)
        assert renku.log == ["LIST", "PATCH"]
        assert event_reasons(work) == ["DriftCorrected"]
    else:
        assert (status, reason, env["port"]) == ("False", "Drifted", 1234)
        assert renku.log == ["LIST"]


@pytest.mark.parametrize("policy", ["Overwrite", "Report"])
async def test_a_deleted_environment_is_recreated_or_reported(
    renku: MemoryRenku, claims: ClaimsClient, policy: str
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher, driftPolicy=policy)
    old_id = work.status.renku_id
    renku.envs.clear()

    await drift_check(renku, publisher, work, driftPolicy=policy)

    assert renku.log[:2] == ["LIST", "GET"]  # the list's answer is confirmed by id
    if policy == "Overwrite":
        assert work.status.renku_id not in (None, old_id)
        assert list(renku.envs) == [work.status.renku_id]
        assert event_reasons(work) == ["Recreating", "Created"]
    else:
        assert synced(work)[:2] == ("False", "Drifted")
        assert work.status.renku_id == old_id
        assert renku.envs == {}


# ---------------------------------------------------------------- retire


@pytest.mark.parametrize(
    ("policy", "in_use", "reason", "calls"),
    [
        # LIST: Renku's current list, read first (is this the last active environment?).
        ("Archive", False, "Archived", ["LIST", "PATCH"]),
        ("Delete", False, "Deleted", ["LIST", "DELETE"]),
        ("Delete", True, "ArchivedInUse", ["LIST", "DELETE", "PATCH"]),
        ("Orphan", False, "Orphaned", []),
        (
            "Bogus",
            False,
            "Archived",
            ["LIST", "PATCH"],
        ),  # the safe choice for a value nobody checked
    ],
)
async def test_retire_applies_the_deletion_policy(
    renku: MemoryRenku,
    claims: ClaimsClient,
    policy: str,
    in_use: bool,
    reason: str,
    calls: list[str],
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher)
    if in_use:
        renku.launchers.add(str(work.status.renku_id))

    delay = await Retirer(publisher.settings, publisher.sync).retire(
        work, {"deletionPolicy": policy}, attempt=1
    )

    assert delay is None
    assert renku.log == calls
    # The only environment in Renku: retiring it is warned about (not when it is left alone).
    warned = ["LastActiveEnvironment"] if calls else []
    assert event_reasons(work) == [*warned, reason]


async def test_retiring_many_shares_one_list_and_still_warns_at_the_last(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    """Deleting a thousand objects must not list Renku's thousand environments a thousand
    times (quadratic, and what made a real deletion of 1,000 take minutes)."""
    publisher = publisher_for(renku, claims)
    works = []
    for n in range(30):
        work = work_for(ObjectRef("renku", f"env-{n}", f"uid-{n}", 1))
        await publisher.publish(work, spec(), IMAGE)
        works.append(applied(work))
    renku.log.clear()
    retirer = Retirer(publisher.settings, publisher.sync)

    for work in works:
        assert await retirer.retire(work, {"deletionPolicy": "Archive"}, attempt=1) is None

    assert renku.log.count("LIST") == 1
    assert renku.log.count("PATCH") == 30
    warned = [w.ref.name for w in works if "LastActiveEnvironment" in event_reasons(w)]
    assert warned == ["env-29"]  # the last active one, from the shared list kept current


async def test_retire_leaves_renku_alone_while_suspended(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims)
    work = await published(renku, publisher)

    retirer = Retirer(publisher.settings, publisher.sync)
    delay = await retirer.retire(work, {"deletionPolicy": "Delete", "suspend": True}, attempt=1)

    assert (delay, renku.log, event_reasons(work)) == (None, [], ["Orphaned"])


async def test_retire_retries_then_says_how_to_release_the_object(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    publisher = publisher_for(renku, claims, delete_attempts=2, retry_backoff_seconds=3.0)
    work = await published(renku, publisher)
    down = RenkuUnavailableError("Renku is unavailable", status=503)
    retirer = Retirer(publisher.settings, publisher.sync)

    renku.fail("PATCH", down)
    first = await retirer.retire(work, {}, attempt=1)
    assert first == 3.0
    assert synced(work)[:2] == ("False", "Deleting")
    assert "attempt 1 of 2" in synced(work)[2]

    renku.fail("PATCH", down)
    last = await retirer.retire(work, {}, attempt=2)
    assert last == 12.0
    status, reason, message = synced(work)
    assert (status, reason) == ("False", "DeletionBlocked")
    assert "kubectl patch globalenvironment python -n renku --type merge" in message


# ---------------------------------------------------------------- the shared snapshot


async def test_the_snapshot_lists_once_per_interval(renku: MemoryRenku) -> None:
    snapshot = RenkuSnapshot(renku, max_age=300.0)

    await asyncio.gather(*(snapshot.get() for _ in range(5)))

    assert renku.log == ["LIST"]


async def test_a_write_during_a_list_makes_that_list_stale(renku: MemoryRenku) -> None:
    snapshot = RenkuSnapshot(renku, max_age=300.0)
    renku.list_gate = asyncio.Event()
    listing = asyncio.create_task(snapshot.get())
    await renku.listing.wait()

    snapshot.invalidate()  # our own write, while the list was in flight
    renku.list_gate.set()
    await listing
    await snapshot.get()

    assert renku.log == ["LIST", "LIST"]


async def test_a_failed_list_is_shared_by_every_waiter_and_kept_for_the_backoff(
    renku: MemoryRenku,
) -> None:
    """Finding 4(a): passes queued behind a list that fails get its failure, and so does every
    pass within the backoff: one request, not one per pass."""
    snapshot = RenkuSnapshot(renku, max_age=300.0, retry_after=60.0)
    renku.list_gate = asyncio.Event()
    waiters = [asyncio.create_task(snapshot.get()) for _ in range(5)]
    await renku.listing.wait()
    renku.fail("LIST", RenkuUnavailableError("Cannot reach Renku (ReadTimeout)"))
    renku.list_gate.set()

    results = await asyncio.gather(*waiters, return_exceptions=True)
    with pytest.raises(RenkuUnavailableError, match="ReadTimeout"):
        await snapshot.get()  # within the backoff: the same failure, no request

    assert all(isinstance(r, RenkuUnavailableError) for r in results), results
    assert renku.log == ["LIST"]


async def test_no_create_is_sent_when_the_attempt_cannot_be_recorded(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    kube.emulator["post", CLAIMS] << 403
    publisher = publisher_for(renku, claims)
    work = work_for(REF)

    await publisher.publish(work, spec(), IMAGE)

    assert renku.envs == {}
    assert "POST" not in renku.log
    status, reason, message = synced(work)
    assert (status, reason) == ("False", "ClaimFailed")
    assert "Renku is not written to without these records" in message
    assert "create, patch and delete on globalenvironmentclaims in its namespace renku" in message
