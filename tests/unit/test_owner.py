"""An object's owner with an in-memory Renku and an in-memory status store: what it reads,
what it writes and when, and that no error escapes it."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.clients.claims import ClaimsClient
from renku_env_operator.clients.globalenvironments import StatusWriteError
from renku_env_operator.config import Settings
from renku_env_operator.services.objects import Objects
from renku_env_operator.services.owner import Owners
from renku_env_operator.services.reconciler import Reconciler
from renku_env_operator.services.work import Outcome, Slots, waiting
from tests.support.memory_renku import MemoryRenku, publisher_for

FINALIZER = "globalenvironments.renku.io/finalizer"
SPEC: dict[str, Any] = {"image": "ghcr.io/example/env:1.0.0", "smokeTest": {"enabled": False}}


class Server:
    """The API server's side of status: merge patches applied, resourceVersions counted."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.version = 1
        self.patches: list[dict[str, Any]] = []

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str:
        self.patches.append(copy.deepcopy(status))
        self.status = _merge(self.status, status)
        self.version += 1
        return str(self.version)


def _merge(old: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def body(status: dict[str, Any], version: int, uid: str = "uid-1", **spec: Any) -> dict[str, Any]:
    """What the watch delivered: the object at `version`."""
    meta = {"name": uid, "namespace": "renku", "uid": uid, "generation": 1}
    meta |= {"resourceVersion": str(version), "finalizers": [FINALIZER]}
    return {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": meta,
        "spec": {**SPEC, **spec},
        "status": copy.deepcopy(status),
    }


Posted = list[tuple[str, str, str]]


def owners_for(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted, **settings: Any
) -> Owners:
    config = Settings(image_checks=False, **settings)
    objects = Objects()
    publisher = publisher_for(renku, claims, objects, **settings)
    reconciler = Reconciler(config, publisher, images=None, smoke=None)

    def post(_: Any, type_: str, reason: str, message: str) -> None:
        posted.append((type_, reason, message))

    return Owners(config, reconciler, server, post, finalizer=FINALIZER, objects=objects)


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def posted() -> Posted:
    return []


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


async def test_a_view_lagging_behind_the_last_write_never_creates_a_second_environment(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    assert server.status["renkuId"] in renku.envs
    writes = len(server.patches)

    # Woken again before the watch delivered that write: the view still shows no status.
    await owners.look(body({}, version=1, description="edited"))

    assert len(renku.envs) == 1
    assert renku.envs[server.status["renkuId"]]["description"] == "edited"
    assert len(server.patches) == writes + 1


async def test_in_steady_state_nothing_is_written(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    writes, calls = len(server.patches), list(renku.log)

    for _ in range(3):  # caught up or lagging: the same answer
        await owners.look(body(server.status, version=server.version))
        await owners.look(body({}, version=1))

    assert len(server.patches) == writes
    assert renku.log == calls


async def test_a_status_someone_else_wrote_is_seen_once_the_view_is_newer(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    # Someone else removed a condition after our write: the next view shows it.
    server.status["conditions"] = [c for c in server.status["conditions"] if c["type"] != "Synced"]
    server.version += 1

    await owners.look(body(server.status, version=server.version))

    assert condition(server.status, "Synced")["status"] == "True"  # written back
    assert len(renku.envs) == 1


async def test_unreadable_status_fields_are_reported_and_dropped(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    server.status = {
        "createAttempt": {"startedAt": "last tuesday", "fingerprint": "f"},
        "smokeTest": {"result": "Passed", "fromANewerCrd": True},
    }

    await owners.look(body(server.status, version=1))
    await owners.look(body(server.status, version=server.version))

    [report] = [p for p in posted if p[1] == "StatusUnreadable"]  # once, not per pass
    assert report[0] == "Warning"
    assert "status.createAttempt.startedAt" in report[2]
    assert "status.smokeTest.fromANewerCrd: unknown field" in report[2]
    assert "createAttempt" not in server.status
    assert "fromANewerCrd" not in server.status.get("smokeTest", {})
    assert condition(server.status, "Ready")["status"] == "True"


class Broken(RuntimeError):
    pass


async def test_an_error_of_any_type_in_a_step_becomes_a_condition_and_a_retry(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted, retry_backoff_seconds=7.0)

    async def broken(*_: Any, **__: Any) -> Any:
        raise Broken("a bug")

    renku.list_environments = broken  # type: ignore[method-assign]
    renku.create_environment = broken  # type: ignore[method-assign]

    delay = await owners.look(body({}, version=1))

    synced = condition(server.status, "Synced")
    assert (synced["status"], synced["reason"]) == ("Unknown", "OperatorError")
    assert "Broken: a bug" in synced["message"]
    assert ("Warning", "OperatorError") in [(t, r) for t, r, _ in posted]
    assert 0 < delay <= 7.0


async def test_a_retire_error_of_any_type_is_bounded(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted, delete_attempts=2)
    await owners.look(body({}, version=1))

    async def broken(*_: Any, **__: Any) -> Any:
        raise Broken("a bug")

    renku.archive_environment = broken  # type: ignore[method-assign]
    deleting = body(server.status, version=server.version)

    first, _ = await owners.retire(deleting, attempt=1)
    assert condition(server.status, "Synced")["reason"] == "Deleting"
    last, message = await owners.retire(body(server.status, server.version), attempt=2)

    assert first is not None
    assert last is not None
    assert condition(server.status, "Synced")["reason"] == "DeletionBlocked"
    assert "deletionPolicy" in message
    assert "a bug" in message


async def test_retire_with_an_unreadable_status_is_not_fatal(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    server.status = {"renkuId": 42, "createAttempt": {"startedAt": "never", "fingerprint": "f"}}

    retry_after, _ = await owners.retire(body(server.status, version=1), attempt=1)

    assert retry_after is None  # nothing readable to clean up: released
    assert [r for _, r, _ in posted].count("StatusUnreadable") == 1


async def test_an_id_another_objects_owner_published_is_not_adopted(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    taken = server.status["renkuId"]

    other = Server()
    owners._status = other  # the second object's status lives elsewhere
    await owners.look(body({}, version=1, uid="uid-2", renkuId=taken))

    synced = condition(other.status, "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "AdoptionFailed")
    assert "renkuId" not in other.status


async def test_forgetting_an_object_ends_its_record(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    assert "uid-1" in owners.objects
    assert owners.objects.get("uid-1").claims  # the ownership cache is part of the record

    owners.gone("uid-1")

    assert "uid-1" not in owners.objects
    assert len(owners.objects) == 0


class Refusing(Server):
    """An API server that refuses status writes (RBAC, or an outage)."""

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> str:
        raise StatusWriteError(f"cannot write status of {namespace}/{name}: 403 Forbidden")


async def test_a_refused_status_write_is_reported_and_retried_not_raised(
    renku: MemoryRenku, claims: ClaimsClient, posted: Posted
) -> None:
    owners = owners_for(renku, claims, Refusing(), posted, retry_backoff_seconds=3.0)

    delay = await owners.look(body({}, version=1))

    assert delay == 3.0
    assert any(r == "OperatorError" and "403 Forbidden" in m for _, r, m in posted)


async def test_a_retire_done_in_renku_releases_the_object_even_if_status_cannot_be_written(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted)
    await owners.look(body({}, version=1))
    renku_id = server.status["renkuId"]
    owners._status = Refusing()

    retry_after, _ = await owners.retire(body(server.status, server.version), attempt=1)

    assert retry_after is None
    assert renku.envs[renku_id]["is_archived"] is True


async def test_a_failing_retire_whose_status_cannot_be_written_is_still_bounded(
    renku: MemoryRenku, claims: ClaimsClient, server: Server, posted: Posted
) -> None:
    owners = owners_for(renku, claims, server, posted, delete_attempts=2)
    await owners.look(body({}, version=1))
    owners._status = Refusing()

    async def broken(*_: Any, **__: Any) -> Any:
        raise Broken("Renku is down")

    renku.archive_environment = broken  # type: ignore[method-assign]

    first, _ = await owners.retire(body(server.status, server.version), attempt=1)
    last, message = await owners.retire(body(server.status, server.version), attempt=2)

    assert first is not None
    assert last is not None
    assert [r for _, r, _ in posted][-2:] == ["Deleting", "DeletionBlocked"]
    assert "attempt 2 of 2" in message


class GatedReconciler:
    """A reconciler whose passes wait until the test lets each one finish."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.arrived = asyncio.Event()
        self.gates: dict[str, asyncio.Event] = {}
        self.retired: list[str] = []

    async def reconcile(self, ref: Any, spec: Any, status: Any, state: Any) -> Outcome:
        self.entered.append(ref.uid)
        self.arrived.set()
        await self.gates.setdefault(ref.uid, asyncio.Event()).wait()
        return Outcome(status=GlobalEnvironmentStatus())

    async def retire(self, ref: Any, spec: Any, status: Any, state: Any, attempt: int) -> Outcome:
        self.retired.append(ref.uid)
        return Outcome(status=GlobalEnvironmentStatus())

    async def until_entered(self, count: int) -> None:
        while len(self.entered) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def let_through(self, *uids: str) -> None:
        for uid in uids:
            self.gates.setdefault(uid, asyncio.Event()).set()


def gated_owners(server: Server, reconciler: GatedReconciler, **settings: Any) -> Owners:
    config = Settings(image_checks=False, **settings)
    return Owners(
        config,
        reconciler,  # type: ignore[arg-type]
        server,
        lambda *_: None,
        finalizer=FINALIZER,
    )


async def test_passes_beyond_the_concurrency_limit_wait_their_turn(
    server: Server, posted: Posted
) -> None:
    reconciler = GatedReconciler()
    owners = gated_owners(server, reconciler, max_concurrent_reconciles=2)
    uids = [f"uid-{n}" for n in range(5)]
    passes = [asyncio.create_task(owners.look(body({}, 1, uid=uid))) for uid in uids]
    await reconciler.until_entered(2)
    for _ in range(20):  # every runnable pass gets its turn on the loop: none may enter
        await asyncio.sleep(0)
    assert reconciler.entered == uids[:2]
    for done, uid in enumerate(uids, start=1):
        reconciler.gates.setdefault(uid, asyncio.Event()).set()
        await reconciler.until_entered(min(done + 2, len(uids)))
        assert len(reconciler.entered) == min(done + 2, len(uids))
    await asyncio.gather(*passes)
    assert sorted(reconciler.entered) == uids


async def test_retiring_never_waits_behind_passes_queued_for_a_slot(server: Server) -> None:
    reconciler = GatedReconciler()
    owners = gated_owners(server, reconciler, max_concurrent_reconciles=1)
    busy = asyncio.create_task(owners.look(body({}, 1, uid="uid-0")))
    await reconciler.until_entered(1)  # uid-0 holds the only slot
    queued = asyncio.create_task(owners.look(body({}, 1, uid="uid-1")))
    for _ in range(5):  # zero-time turns of the loop: the queued pass reaches its wait
        await asyncio.sleep(0)
    assert not queued.done()
    retry_after, _ = await owners.retire(body({}, 1, uid="uid-1"), attempt=1)
    assert (retry_after, reconciler.retired) == (None, ["uid-1"])
    reconciler.let_through("uid-0", "uid-1")
    await asyncio.gather(busy, queued)


async def test_a_pass_that_waited_for_its_slot_skips_an_object_being_deleted(
    server: Server,
) -> None:
    reconciler = GatedReconciler()
    owners = gated_owners(server, reconciler, max_concurrent_reconciles=1)
    busy = asyncio.create_task(owners.look(body({}, 1, uid="uid-0")))
    await reconciler.until_entered(1)
    live = body({}, 1, uid="uid-1")
    queued = asyncio.create_task(owners.look(live))
    for _ in range(5):  # zero-time turns of the loop: the queued pass reaches its wait
        await asyncio.sleep(0)
    assert not queued.done()
    live["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"  # the live view moves on
    reconciler.let_through("uid-0")
    await asyncio.gather(busy, queued)
    assert reconciler.entered == ["uid-0"]


async def test_a_sleeping_owner_ends_on_the_stop_flag_without_being_cancelled(
    server: Server,
) -> None:
    reconciler = GatedReconciler()
    reconciler.let_through("uid-1")
    owners = gated_owners(server, reconciler)
    stop = asyncio.Event()
    owner = asyncio.create_task(owners.own(body({}, 1), stop.is_set, stop.wait))
    await reconciler.until_entered(1)  # it passed once, and sleeps until the periodic look
    stop.set()
    await owner  # returns on its own: kopf cancels (and warns) only an owner that does not
    assert not owner.cancelled()
    assert reconciler.entered == ["uid-1"]


async def test_an_owner_ends_when_its_object_is_being_deleted(server: Server) -> None:
    reconciler = GatedReconciler()
    owners = gated_owners(server, reconciler)
    stop = asyncio.Event()
    deleting = body({}, 1)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-01T00:00:00Z"
    await owners.own(deleting, stop.is_set, stop.wait)
    assert reconciler.entered == []  # the delete handler retires it, not the owner


async def test_an_owner_looks_again_at_its_periodic_interval(server: Server) -> None:
    reconciler = GatedReconciler()
    reconciler.let_through("uid-1")
    every = {"drift_interval_seconds": 0.05, "retry_backoff_seconds": 0.05}
    every |= {"image_check_interval_seconds": 0.05, "smoke_poll_seconds": 0.05}
    owners = gated_owners(server, reconciler, **every)
    stop = asyncio.Event()
    owner = asyncio.create_task(owners.own(body({}, 1), stop.is_set, stop.wait))
    await reconciler.until_entered(3)  # no watch event: the timer woke it twice
    stop.set()
    await owner


class RegistryWaitingReconciler(GatedReconciler):
    """Passes whose image check waits on a registry that drips (until the test lets it go)."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = asyncio.Event()

    async def reconcile(self, ref: Any, spec: Any, status: Any, state: Any) -> Outcome:
        self.entered.append(ref.uid)
        self.arrived.set()
        if ref.uid.startswith("slow-"):
            async with waiting("registry slow.example"):
                await self.registry.wait()
        return Outcome(status=GlobalEnvironmentStatus())


def in_namespace(namespace: str, uid: str) -> dict[str, Any]:
    live = body({}, 1, uid=uid)
    live["metadata"]["namespace"] = namespace
    return live


async def test_a_slow_registry_holds_no_slot_and_no_namespace_takes_them_all(
    server: Server,
) -> None:
    """Finding 4(c): one namespace's images on a slow registry, ten times the slots: another
    team's pass, and the same team's pass that needs no registry, still run at once."""
    reconciler = RegistryWaitingReconciler()
    owners = gated_owners(
        server,
        reconciler,
        max_concurrent_reconciles=2,
        max_concurrent_reconciles_per_namespace=1,
    )
    slow = [f"slow-{n}" for n in range(20)]
    waiting_passes = [asyncio.create_task(owners.look(in_namespace("team-a", uid))) for uid in slow]
    await reconciler.until_entered(1)  # the registry's share (1) waits on it; the rest queue

    async with asyncio.timeout(5):  # nothing here waits on the registry
        await owners.look(in_namespace("team-b", "other-team"))
        await owners.look(in_namespace("team-a", "no-registry"))

    assert {"other-team", "no-registry"} <= set(reconciler.entered)
    reconciler.registry.set()
    await asyncio.gather(*waiting_passes)
    assert set(slow) <= set(reconciler.entered)


async def test_liveness_says_stuck_when_no_pass_gives_a_slot_back() -> None:
    """Every slot taken and none freed for the limit: the probe fails (and kopf's /healthz with
    it); passes waiting on the network do not count, they hold no slot."""
    now = [100.0]
    slots = Slots(2, 2, clock=lambda: now[0])
    release = asyncio.Event()
    entered = asyncio.Queue[str]()

    async def wedged(name: str) -> None:
        async with slots.hold("team-a"):
            await entered.put(name)
            await release.wait()

    async def on_the_network() -> None:
        async with slots.hold("team-b"), waiting("renku"):
            await entered.put("net")
            await release.wait()

    net = asyncio.create_task(on_the_network())
    await entered.get()
    now[0] += 1000
    assert slots.health(600)["stuck"] is False  # a pass waiting on Renku holds no slot
    assert slots.health(600)["waitingOn"] == {"renku": 1}

    tasks = [asyncio.create_task(wedged(f"p{n}")) for n in range(2)]
    for _ in tasks:
        await entered.get()
    now[0] += 599
    assert slots.health(600)["stuck"] is False
    now[0] += 2
    assert slots.health(600) == {
        "slots": "2/2",
        "waitingOn": {"renku": 1},
        "stuck": True,
        "secondsAllSlotsBusy": 601.0,
    }
    release.set()
    await asyncio.gather(net, *tasks)
    assert slots.health(600)["stuck"] is False
