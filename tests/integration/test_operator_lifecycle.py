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
