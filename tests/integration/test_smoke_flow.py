"""apply -> smoke pod -> verdict -> Renku -> conditions, with the kubelet played by the tests."""

from __future__ import annotations

import asyncio
from typing import Any

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.kube import GENV, PODS, Kube
from tests.support.kube_steps import hold, logs, proxy, scheduled, started
from tests.support.kubelet import Kubelet
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble

PROBE_LOG = "\n".join(
    [
        "renku-probe user 1000 1000 1000 1000",
        "renku-probe mount writable /home/renku/work",
        "renku-probe workdir writable /home/renku/work",
        "renku-probe shipped-count 0 /home/renku/work",
    ]
)
SMOKE = {"timeoutSeconds": 30, "stableSeconds": 0}


def spec(image: str = "ghcr.io/example/env:1.0.0") -> dict[str, Any]:
    return {
        "image": image,
        "port": 8888,
        "defaultUrl": "/",
        "workingDirectory": "/home/renku/work",
        "mountDirectory": "/home/renku/work",
        "smokeTest": SMOKE,
    }


def plan_session(kubelet: Kubelet, name: str, scenario: str, **params: Any) -> None:
    kubelet.plan({ROLE: "session", GLOBAL_ENVIRONMENT: name}, kubelet.scenario(scenario, **params))


def plan_probe(kubelet: Kubelet, name: str) -> None:
    kubelet.plan(
        {ROLE: "probe", GLOBAL_ENVIRONMENT: name}, kubelet.scenario("completed", log=PROBE_LOG)
    )


def checks(obj: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["result"] for c in obj["status"]["smokeTest"].get("checks", [])}


async def published_after_passing(
    kube: Kube, kubelet: Kubelet, start_operator: Any, **settings: Any
) -> dict[str, Any]:
    """Start the operator, apply `jupyter`, let its smoke test pass; the object once Ready."""
    plan_session(kubelet, "jupyter", "ready", port=8888)
    plan_probe(kubelet, "jupyter")
    await start_operator(**settings)
    await kube.create({**genv("jupyter"), "spec": spec()})
    return await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=20
    )


async def test_a_passing_image_is_published_after_its_smoke_test(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    ready = await published_after_passing(kube, kubelet, start_operator)

    tested = condition(ready, "SmokeTested")
    assert tested is not None
    assert tested["reason"] == "Passed"
    smoke = ready["status"]["smokeTest"]
    assert smoke["result"] == "Passed"
    assert smoke["image"] == "ghcr.io/example/env:1.0.0"
    assert checks(ready)["User"] == "Passed"
    assert checks(ready)["MountWritable"] == "Passed"
    env = renku_double.environments[ready["status"]["renkuId"]]
    assert env["container_image"] == "ghcr.io/example/env:1.0.0"
    await kube.wait_event("jupyter", "SmokeTestPassed", namespace=NAMESPACE)
    # The passed pod is cleaned up.
    await kube.wait_gone(PODS, NAMESPACE, smoke["podName"], timeout=10)


async def test_a_failing_update_keeps_the_last_known_good_version_in_renku(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await published_after_passing(kube, kubelet, start_operator)
    renku_id = first["status"]["renkuId"]

    plan_session(kubelet, "jupyter", "crashloop", exit_code=127, log="exec: jupyter: not found")
    await kube.patch(GENV, NAMESPACE, "jupyter", {"spec": {"image": "ghcr.io/example/env:2.0.0"}})

    failed = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("SmokeTested", "False"), timeout=20
    )
    synced = condition(failed, "Synced")
    assert synced is not None
    assert synced["reason"] == "LastKnownGood"
    assert "generation 1" in synced["message"]
    assert condition(failed, "Ready")["status"] == "False"  # type: ignore[index]
    assert failed["status"]["smokeTest"]["reason"] == "CrashedOnStart"
    assert renku_double.environments[renku_id]["container_image"] == "ghcr.io/example/env:1.0.0"
    assert len(renku_double.environments) == 1


async def test_an_image_that_cannot_be_pulled_never_reaches_renku(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_session(kubelet, "private", "image_auth")
    await start_operator()
    await kube.create({**genv("private"), "spec": spec("ghcr.io/example/private:1.0.0")})

    failed = await kube.wait_for(
        GENV, NAMESPACE, "private", has_condition("SmokeTested", "False"), timeout=20
    )

    assert failed["status"]["smokeTest"]["reason"] == "ImageNotPublic"
    assert "public" in condition(failed, "SmokeTested")["message"]  # type: ignore[index]
    assert condition(failed, "Synced")["reason"] == "NotPublished"  # type: ignore[index]
    assert renku_double.count("POST") == 0
    assert renku_double.environments == {}


async def test_smoke_pods_wait_for_a_free_slot(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    gate = asyncio.Event()
    held = [logs(""), proxy(8888), scheduled(), hold(gate), started(ready=True)]
    kubelet.plan({ROLE: "session", GLOBAL_ENVIRONMENT: "first"}, held)
    plan_session(kubelet, "second", "ready", port=8888)
    plan_probe(kubelet, "first")
    plan_probe(kubelet, "second")
    await start_operator(smoke_max_concurrent=1)
    await kube.create({**genv("first"), "spec": spec()})
    await kube.wait_for(
        GENV, NAMESPACE, "first", has_condition("SmokeTested", "Unknown", "Running")
    )

    await kube.create({**genv("second"), "spec": spec()})
    waiting = await kube.wait_for(
        GENV, NAMESPACE, "second", has_condition("SmokeTested", "Unknown", "Pending")
    )
    assert "1" in condition(waiting, "SmokeTested")["message"]  # type: ignore[index]
    sessions = await kube.list(PODS, NAMESPACE, label_selector=f"{ROLE}=session")
    assert len(sessions) == 1

    gate.set()
    for name in ("first", "second"):
        await kube.wait_for(GENV, NAMESPACE, name, has_condition("Ready", "True"), timeout=20)
    assert len(renku_double.environments) == 2


async def test_a_restarted_operator_finds_its_running_smoke_pod(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    gate = asyncio.Event()
    held = [logs(""), proxy(8888), scheduled(), hold(gate), started(ready=True)]
    kubelet.plan({ROLE: "session", GLOBAL_ENVIRONMENT: "jupyter"}, held)
    plan_probe(kubelet, "jupyter")
    first = await start_operator()
    await kube.create({**genv("jupyter"), "spec": spec()})
    running = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("SmokeTested", "Unknown", "Running")
    )
    pod_name = running["status"]["smokeTest"]["podName"]

    await first.thread.stop()
    await start_operator()
    gate.set()
    ready = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=20
    )

    assert ready["status"]["smokeTest"]["podName"] == pod_name
    created = {
        e.object["metadata"]["name"]
        for e in kube.emulator.log.entries
        if e.type == "ADDED"
        and e.object.get("kind") == "Pod"
        and e.object["metadata"]["labels"].get(ROLE) == "session"
    }
    assert created == {pod_name}


async def test_the_retest_annotation_runs_the_smoke_test_again(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    kubelet.plan(
        {ROLE: "session", GLOBAL_ENVIRONMENT: "jupyter"},
        kubelet.scenario("ready", port=8888),
        once=False,
    )
    kubelet.plan(
        {ROLE: "probe", GLOBAL_ENVIRONMENT: "jupyter"},
        kubelet.scenario("completed", log=PROBE_LOG),
        once=False,
    )
    await start_operator()
    await kube.create({**genv("jupyter"), "spec": spec()})
    first = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=20
    )
    first_pod = first["status"]["smokeTest"]["podName"]

    annotations = {"metadata": {"annotations": {"renku.io/retest": "now"}}}
    await kube.patch(GENV, NAMESPACE, "jupyter", annotations)

    again = await kube.wait_for(
        GENV,
        NAMESPACE,
        "jupyter",
        lambda o: (
            o["status"].get("smokeTest", {}).get("trigger") == "now"
            and o["status"]["smokeTest"]["result"] == "Passed"
        ),
        timeout=20,
    )
    assert again["status"]["smokeTest"]["podName"] != first_pod
    assert renku_double.count("POST") == 1


async def test_disabled_smoke_tests_are_reported(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create({**genv("untested"), "spec": {**spec(), "smokeTest": {"enabled": False}}})

    ready = await kube.wait_for(GENV, NAMESPACE, "untested", has_condition("Ready", "True"))

    tested = condition(ready, "SmokeTested")
    assert tested is not None
    assert tested["reason"] == "Disabled"
    assert "without testing" in tested["message"]
    assert await kube.list(PODS, NAMESPACE) == []


async def test_the_last_known_good_version_is_restored_after_drift_while_a_new_spec_fails(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    first = await published_after_passing(kube, kubelet, start_operator, drift_interval_seconds=0.3)
    renku_id = first["status"]["renkuId"]
    plan_session(kubelet, "jupyter", "crashloop", exit_code=1, log="boom")
    await kube.patch(GENV, NAMESPACE, "jupyter", {"spec": {"image": "ghcr.io/example/env:2.0.0"}})
    await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Synced", "False", "LastKnownGood"), timeout=20
    )

    renku_double.admin_edit(renku_id, container_image="ghcr.io/example/other:9.9.9", port=1234)

    await renku_double.wait_until_async(
        lambda d: (
            d.environments[renku_id]["container_image"] == "ghcr.io/example/env:1.0.0"
            and d.environments[renku_id]["port"] == 8888
        )
    )
    event = await kube.wait_event("jupyter", "DriftCorrected", namespace=NAMESPACE)
    assert "port" in event["message"]
    held = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Synced", "False", "LastKnownGood")
    )
    assert condition(held, "SmokeTested")["status"] == "False"  # type: ignore[index]
