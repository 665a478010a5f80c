"""Renku re-seeds its six default global environments whenever none is active (its data-tasks
job checks at start): retiring the last active one is warned about, from Renku's current list.

The real operator runs against the emulated API server and the Renku double.
"""

from __future__ import annotations

from typing import Any

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import ENVS, NAMESPACE, condition, published
from tests.support.renku_double import RenkuDouble

RESEED = "leaves Renku with no active global environment: Renku re-seeds its six default"


def listed_active(renku: RenkuDouble) -> int:
    return sum(
        1
        for r in renku.requests
        if r.method == "GET"
        and r.path.rstrip("/") == ENVS
        and r.query.get("include_archived") == "false"
    )


async def test_deleting_the_last_active_environment_warns_in_an_event(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    renku_id = await published(kube, "only")
    renku_double.clear_requests()

    await kube.delete(GENV, NAMESPACE, "only")
    warning = await kube.wait_event("only", "LastActiveEnvironment", namespace=NAMESPACE)
    await kube.wait_event("only", "Archived", namespace=NAMESPACE)
    await kube.wait_gone(GENV, NAMESPACE, "only")

    assert warning["type"] == "Warning"
    assert warning["message"].startswith(f"Archiving environment {renku_id} {RESEED}")
    assert listed_active(renku_double) == 1  # Renku's current list, read before retiring
    assert renku_double.environments[renku_id]["is_archived"] is True  # advisory: it went ahead


async def test_archiving_the_last_one_warns_in_the_condition_but_not_before(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    first = await published(kube, "first")
    second = await published(kube, "second")

    await kube.patch(GENV, NAMESPACE, "first", {"spec": {"archived": True}})
    obj = await kube.wait_for(GENV, NAMESPACE, "first", lambda o: _synced_reason(o) == "Updated")
    assert renku_double.environments[first]["is_archived"] is True
    assert [e for e in kube.events_for("first") if e["reason"] == "LastActiveEnvironment"] == []

    await kube.patch(GENV, NAMESPACE, "second", {"spec": {"archived": True}})
    obj = await kube.wait_for(
        GENV, NAMESPACE, "second", lambda o: _synced_reason(o) == "LastActiveEnvironment"
    )

    synced = condition(obj, "Synced")
    assert synced is not None
    assert synced["status"] == "True"
    assert synced["message"].startswith(
        f"Updated is_archived. Archiving environment {second} {RESEED}"
    )
    warning = await kube.wait_event("second", "LastActiveEnvironment", namespace=NAMESPACE)
    assert warning["type"] == "Warning"
    assert renku_double.environments[second]["is_archived"] is True


async def test_no_warning_while_renku_keeps_an_active_environment(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    renku_double.admin_create(name="Made in the admin panel", container_image="python:3.12")
    await start_operator()
    await published(kube, "mine")

    await kube.delete(GENV, NAMESPACE, "mine")
    await kube.wait_event("mine", "Archived", namespace=NAMESPACE)

    assert [e for e in kube.events_for("mine") if e["reason"] == "LastActiveEnvironment"] == []


def _synced_reason(obj: dict[str, Any]) -> str | None:
    found = condition(obj, "Synced")
    return None if found is None else str(found["reason"])
