"""apply -> smoke pod -> verdict -> Renku -> conditions, with the kubelet played by the tests."""

from __future__ import annotations

from typing import Any

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.kube import GENV, PODS, Kube
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


async def test_a_passing_image_is_published_after_its_smoke_test(
    kube: Kube, kubelet: Kubelet, renku_double: RenkuDouble, start_operator: Any
) -> None:
    plan_session(kubelet, "jupyter", "ready", port=8888)
    plan_probe(kubelet, "jupyter")
    await start_operator()
    await kube.create({**genv("jupyter"), "spec": spec()})

    ready = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=20
    )

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
    plan_session(kubelet, "jupyter", "ready", port=8888)
    plan_probe(kubelet, "jupyter")
    await start_operator()
    await kube.create({**genv("jupyter"), "spec": spec()})
    first = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=20
    )
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
