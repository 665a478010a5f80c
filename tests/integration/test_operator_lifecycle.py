"""The real operator against the emulated API server and the Renku double: what an admin sees."""

from __future__ import annotations

from typing import Any

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble


async def test_first_visit_sets_conditions_and_publishes(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create(genv("jupyter", port=8888, defaultUrl="/", smokeTest={"enabled": False}))

    ready = await kube.wait_for(
        GENV, NAMESPACE, "jupyter", has_condition("Ready", "True"), timeout=10
    )

    status = ready["status"]
    assert status["observedGeneration"] == 1
    for type_ in ("Validated", "ImageVerified", "SmokeTested", "Synced"):
        found = condition(ready, type_)
        assert found is not None, type_
        assert found["status"] == "True", found
        assert found["observedGeneration"] == 1
    env = renku_double.environments[status["renkuId"]]
    assert env["name"] == "jupyter"
    assert env["port"] == 8888
    assert env["default_url"] == "/"
    assert ready["metadata"]["finalizers"] == ["globalenvironments.renku.io/finalizer"]
    await kube.wait_event("jupyter", "Created", namespace=NAMESPACE)


async def test_work_outside_the_mount_directory_is_warned_about(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    spec = {
        "workingDirectory": "/tmp",
        "mountDirectory": "/home/renku/work",
        "smokeTest": {"enabled": False},
    }
    await kube.create(genv("lossy", **spec))

    ready = await kube.wait_for(GENV, NAMESPACE, "lossy", has_condition("Ready", "True"))

    validated = condition(ready, "Validated")
    assert validated is not None
    assert validated["reason"] == "ValidWithWarnings"
    assert "lost when the session is paused" in validated["message"]
    event = await kube.wait_event("lossy", "SpecWarning", namespace=NAMESPACE)
    assert event["type"] == "Warning"


async def test_a_spec_the_api_server_should_have_refused_is_not_published(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    # The emulator does not apply the CRD schema, like a cluster with an outdated CRD.
    await start_operator()
    await kube.create(genv("broken", port=70000, workingDirectory="relative/path"))

    invalid = await kube.wait_for(GENV, NAMESPACE, "broken", has_condition("Validated", "False"))

    message = condition(invalid, "Validated")["message"]  # type: ignore[index]
    assert "spec.port" in message
    assert "spec.workingDirectory" in message
    assert condition(invalid, "Ready")["reason"] == "Invalid"  # type: ignore[index]
    assert invalid["status"]["observedGeneration"] == 1
    assert renku_double.count("POST") == 0


async def test_without_a_renku_url_environments_are_tested_but_not_published(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(renku_url=None, renku_token=None)
    await kube.create(genv("staged", smokeTest={"enabled": False}))

    staged = await kube.wait_for(GENV, NAMESPACE, "staged", has_condition("Synced", "False"))

    synced = condition(staged, "Synced")
    assert synced is not None
    assert synced["reason"] == "RenkuNotConfigured"
    assert "RENKU_URL" in synced["message"]
    assert condition(staged, "Validated")["status"] == "True"  # type: ignore[index]
    assert renku_double.requests == []
