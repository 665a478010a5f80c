"""One owner per object, seen from outside: the finalizer before Renku, how many writes an
object costs, what needs a new smoke test and what does not, and verdicts without log tails."""

from __future__ import annotations

from typing import Any

import kmock

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.kube import GENV, PODS, Kube
from tests.support.kubelet import Kubelet
from tests.support.operator_fixtures import ENVS, NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble

FINALIZER = "globalenvironments.renku.io/finalizer"
NO_SMOKE = {"enabled": False}
SMOKE = {"timeoutSeconds": 30, "stableSeconds": 0}
PROBE_LOG = "\n".join(
    [
        "renku-probe user 1000 1000 1000 1000",
        "renku-probe mount writable /home/renku/work",
        "renku-probe workdir writable /home/renku/work",
        "renku-probe shipped-count 0 /home/renku/work",
    ]
)
# Issue 9's budgets: the finalizer, then the status (the create attempt is recorded in the
# operator's GlobalEnvironmentClaim, not in status); with a smoke test, its start and progress.
WRITES_TO_READY_WITHOUT_SMOKE = 2
WRITES_TO_READY_WITH_SMOKE = 4


def session_spec(**fields: Any) -> dict[str, Any]:
    return {
        "image": "ghcr.io/example/env:1.0.0",
        "port": 8888,
        "defaultUrl": "/",
        "workingDirectory": "/home/renku/work",
        "mountDirectory": "/home/renku/work",
        "smokeTest": SMOKE,
        **fields,
    }


def plan_passing(kubelet: Kubelet, name: str) -> None:
    kubelet.plan({ROLE: "session", GLOBAL_ENVIRONMENT: name}, kubelet.scenario("ready", port=8888))
    kubelet.plan(
        {ROLE: "probe", GLOBAL_ENVIRONMENT: name}, kubelet.scenario("completed", log=PROBE_LOG)
    )


def writes_to(kube: Kube, name: str) -> list[str]:
    """PATCH and PUT requests to the object and its status, in order (e.g. "PATCH status")."""
    writes = []
    for method in (kmock.method.PATCH, kmock.method.PUT):
        for request in kube.emulator[method, kmock.resource(GENV)]:
            if request.name == name:
                writes.append(f"{request.method.name} {request.subresource or 'object'}")
    return writes


def smoke_pods_created(kube: Kube) -> int:
    return sum(1 for _ in kube.emulator[kmock.method.POST, kmock.resource(PODS)])


async def test_the_finalizer_is_held_before_the_first_write_to_renku(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    # The API server refuses the first finalizer patches: the object stays unprotected a while.
    kube.emulator[kmock.method.PATCH, kmock.resource(GENV), kmock.subresource(None)][:2] << 500
    renku_double.hang_next_response("POST")
    await start_operator()
    await kube.create(genv("guarded", smokeTest=NO_SMOKE))

    await renku_double.wait_until_async(lambda d: d.count("POST", ENVS) == 1, timeout=10)

    # The POST is out (its answer held): the API server must already hold the finalizer.
    held = kube.peek(GENV, NAMESPACE, "guarded")
    assert held is not None
    assert FINALIZER in held["metadata"].get("finalizers", [])
    renku_double.release_hung()
    ready = await kube.wait_for(GENV, NAMESPACE, "guarded", has_condition("Ready", "True"))
    assert ready["metadata"]["finalizers"] == [FINALIZER]


async def test_apply_to_ready_without_a_smoke_test_costs_few_writes_and_then_none(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(drift_interval_seconds=0.2, retry_backoff_seconds=0.2)
    await kube.create(genv("frugal", smokeTest=NO_SMOKE))
    await kube.wait_for(GENV, NAMESPACE, "frugal", has_condition("Ready", "True"))
    to_ready = writes_to(kube, "frugal")

    # Steady state: drift checks keep asking Renku (one list per interval)...
    lists = renku_double.count("GET", ENVS)
    await renku_double.wait_until_async(lambda d: d.count("GET", ENVS) >= lists + 4, timeout=10)

    # ...and the object is never written again: a check that finds nothing changes nothing.
    steady = writes_to(kube, "frugal")[len(to_ready) :]
    assert len(to_ready) <= WRITES_TO_READY_WITHOUT_SMOKE, to_ready
    assert to_ready[0] == "PATCH object"  # the finalizer, before anything else
    assert steady == [], steady
    synced = condition(kube.peek(GENV, NAMESPACE, "frugal") or {}, "Synced")
    assert synced is not None
    assert synced["status"] == "True"
    # No kopf annotations (diff-base, progress) on a live object.
    annotations = (kube.peek(GENV, NAMESPACE, "frugal") or {})["metadata"].get("annotations", {})
    assert not [key for key in annotations if key.startswith("env-operator.renku.io")]


async def test_apply_to_ready_with_a_smoke_test_costs_at_most_four_writes(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_passing(kubelet, "tested")
    await start_operator()
    await kube.create({**genv("tested"), "spec": session_spec()})

    await kube.wait_for(GENV, NAMESPACE, "tested", has_condition("Ready", "True"), timeout=20)

    writes = writes_to(kube, "tested")
    assert len(writes) <= WRITES_TO_READY_WITH_SMOKE, writes
    assert writes[0] == "PATCH object"


async def test_a_description_edit_reaches_renku_without_a_new_smoke_test(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_passing(kubelet, "described")
    await start_operator()
    await kube.create({**genv("described"), "spec": session_spec()})
    ready = await kube.wait_for(
        GENV, NAMESPACE, "described", has_condition("Ready", "True"), timeout=20
    )
    renku_id, pods = ready["status"]["renkuId"], smoke_pods_created(kube)

    edit = {"description": "Now with a description", "name": "Described", "archived": True}
    await kube.patch(GENV, NAMESPACE, "described", {"spec": edit})

    await renku_double.wait_until_async(
        lambda d: d.environments[renku_id].get("description") == "Now with a description",
        timeout=5,
    )
    env = renku_double.environments[renku_id]
    assert (env["name"], env["is_archived"]) == ("Described", True)
    done = await kube.wait_for(
        GENV, NAMESPACE, "described", lambda o: o["status"].get("observedGeneration") == 2
    )
    assert smoke_pods_created(kube) == pods  # no new smoke test
    tested = condition(done, "SmokeTested")
    assert tested is not None
    assert tested["reason"] == "Passed"
    assert done["status"]["smokeTest"]["generation"] == 1  # the verdict of the first test holds


async def test_a_change_to_the_session_runs_a_new_smoke_test(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_passing(kubelet, "moved")
    await start_operator()
    await kube.create({**genv("moved"), "spec": session_spec()})
    await kube.wait_for(GENV, NAMESPACE, "moved", has_condition("Ready", "True"), timeout=20)
    pods = smoke_pods_created(kube)

    plan_passing(kubelet, "moved")
    await kube.patch(GENV, NAMESPACE, "moved", {"spec": {"uid": 1001}})

    retested = await kube.wait_for(
        GENV,
        NAMESPACE,
        "moved",
        lambda o: (
            (o["status"].get("smokeTest") or {}).get("generation") == 2
            and has_condition("Ready", "True")(o)
        ),
        timeout=20,
    )
    assert smoke_pods_created(kube) > pods
    assert renku_double.environments[retested["status"]["renkuId"]]["uid"] == 1001


async def test_a_crash_whose_log_cannot_be_read_still_gets_its_verdict(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    kubelet.plan(
        {ROLE: "session", GLOBAL_ENVIRONMENT: "mute"},
        kubelet.scenario("crashloop", exit_code=1, log="boom"),
    )
    # The API server cannot reach the node's kubelet: every log read fails.
    kube.emulator.pods.kubelet_unreachable = True
    await start_operator()
    await kube.create({**genv("mute"), "spec": session_spec()})

    failed = await kube.wait_for(
        GENV, NAMESPACE, "mute", has_condition("SmokeTested", "False"), timeout=20
    )

    smoke = failed["status"]["smokeTest"]
    assert smoke["reason"] == "CrashedOnStart"
    assert "log could not be read" in smoke["message"]
    assert renku_double.count("POST", ENVS) == 0


async def test_a_status_the_operator_cannot_read_is_reported_and_never_blocks_deletion(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create(genv("garbled", smokeTest=NO_SMOKE))
    ready = await kube.wait_for(GENV, NAMESPACE, "garbled", has_condition("Ready", "True"))
    renku_id = ready["status"]["renkuId"]
    # An operator rolled back under a newer CRD, or a hand-edited status.
    garbled = {
        "createAttempt": {"startedAt": "last tuesday", "fingerprint": "f"},
        "published": {**ready["status"]["published"], "signedBy": "a newer operator"},
    }
    await kube.patch(GENV, NAMESPACE, "garbled", {"status": garbled}, subresource="status")

    event = await kube.wait_event("garbled", "StatusUnreadable", namespace=NAMESPACE)
    assert "status.createAttempt.startedAt" in event["message"]
    assert "status.published.signedBy: unknown field" in event["message"]
    cleaned = await kube.wait_for(
        GENV, NAMESPACE, "garbled", lambda o: "createAttempt" not in o["status"]
    )
    assert "signedBy" not in cleaned["status"]["published"]

    await kube.delete(GENV, NAMESPACE, "garbled")
    await kube.wait_gone(GENV, NAMESPACE, "garbled", timeout=10)
    assert renku_double.environments[renku_id]["is_archived"] is True


async def test_a_passing_image_whose_logs_cannot_be_read_is_published_with_checks_skipped(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_passing(kubelet, "unheard")
    kube.emulator.pods.kubelet_unreachable = True
    await start_operator()
    await kube.create({**genv("unheard"), "spec": session_spec()})

    ready = await kube.wait_for(
        GENV, NAMESPACE, "unheard", has_condition("Ready", "True"), timeout=20
    )

    checks = {c["name"]: c for c in ready["status"]["smokeTest"]["checks"]}
    assert checks["Ready"]["result"] == "Passed"
    assert checks["MountWritable"]["result"] == "Skipped"
    assert "log could not be read" in checks["MountWritable"]["message"]
    assert renku_double.count("POST", ENVS) == 1
