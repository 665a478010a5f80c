"""Suspension, credentials, and Renku failing: down, a lost answer to a create.

The real operator runs against the emulated API server and the Renku double.
"""

from __future__ import annotations

import base64
from typing import Any

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    genv,
    has_condition,
    synced_message,
)
from tests.support.renku_double import TOKEN_PATH, RenkuDouble

SECRET = "renku-credentials"


def env_writes(renku: RenkuDouble) -> list[tuple[str, int | None]]:
    """(method, status) of every write to the environments API."""
    return [
        (r.method, r.status)
        for r in renku.requests
        if r.method in ("POST", "PATCH", "DELETE") and r.path.startswith(ENVS)
    ]


def named(renku: RenkuDouble, name: str) -> list[dict[str, Any]]:
    """Renku's environments with this name (names are not unique)."""
    return [env for env in renku.environments.values() if env["name"] == name]


async def credentials_secret(kube: Kube, data: dict[str, str]) -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    meta = {"name": SECRET, "namespace": NAMESPACE}
    await kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": encoded})


# ---------------------------------------------------------------- suspend


async def test_suspend_stops_writes_until_it_is_lifted(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create(genv("paused", suspend=True, smokeTest=NO_SMOKE))

    obj = await kube.wait_for(
        GENV, NAMESPACE, "paused", has_condition("Synced", "False", "Suspended")
    )

    assert "spec.suspend is true" in synced_message(obj)
    assert obj["status"]["observedGeneration"] == 1  # everything else was done
    assert env_writes(renku_double) == []
    assert renku_double.environments == {}

    await kube.patch(GENV, NAMESPACE, "paused", {"spec": {"suspend": False}})
    resumed = await kube.wait_for(GENV, NAMESPACE, "paused", has_condition("Ready", "True"))

    assert [env["id"] for env in named(renku_double, "paused")] == [resumed["status"]["renkuId"]]


async def test_suspend_holds_back_a_spec_change(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    await kube.create(genv("held", port=8888, smokeTest=NO_SMOKE))
    created = await kube.wait_for(GENV, NAMESPACE, "held", has_condition("Ready", "True"))
    renku_id = created["status"]["renkuId"]
    renku_double.clear_requests()

    await kube.patch(GENV, NAMESPACE, "held", {"spec": {"suspend": True, "port": 9999}})
    await kube.wait_for(GENV, NAMESPACE, "held", has_condition("Synced", "False", "Suspended"))

    assert env_writes(renku_double) == []
    assert renku_double.environments[renku_id]["port"] == 8888


# ---------------------------------------------------------------- credentials


async def test_client_credentials_survive_a_token_expiry(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await credentials_secret(kube, renku_double.client_secret_data())
    await start_operator(renku_credentials_secret=SECRET, renku_token=None)
    await kube.create(genv("keyed", port=8888, smokeTest=NO_SMOKE))
    created = await kube.wait_for(GENV, NAMESPACE, "keyed", has_condition("Ready", "True"))
    [post] = [r for r in renku_double.requests if r.method == "POST" and r.path == ENVS]
    assert (post.status, post.user) == (201, "service-account")

    renku_double.expire_all_tokens()
    renku_double.clear_requests()
    await kube.patch(GENV, NAMESPACE, "keyed", {"spec": {"port": 9999}})
    await kube.wait_for(GENV, NAMESPACE, "keyed", has_condition("Synced", "True", "Updated"))

    # The expired token is refused once (401), one new token is fetched, the retry succeeds.
    assert env_writes(renku_double) == [("PATCH", 401), ("PATCH", 200)]
    assert renku_double.count("POST", TOKEN_PATH) == 1
    assert renku_double.environments[created["status"]["renkuId"]]["port"] == 9999


async def test_a_token_without_the_admin_role_is_reported(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    renku_double.add_client("viewer", "viewer-secret")  # no renku-admin role
    data = renku_double.client_secret_data() | {
        "clientId": "viewer",
        "clientSecret": "viewer-secret",
    }
    await credentials_secret(kube, data)
    await start_operator(renku_credentials_secret=SECRET, renku_token=None)

    await kube.create(genv("denied", smokeTest=NO_SMOKE))
    obj = await kube.wait_for(
        GENV, NAMESPACE, "denied", has_condition("Synced", "False", "CredentialsRejected")
    )

    message = synced_message(obj)
    assert "renku-admin" in message
    assert "viewer-secret" not in message
    assert env_writes(renku_double)[0] == ("POST", 403)
    assert renku_double.environments == {}
    await kube.wait_event("denied", "CredentialsRejected", namespace=NAMESPACE)


# ---------------------------------------------------------------- Renku failing


async def test_renku_down_then_back_publishes_once(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    renku_double.set_down(True)
    await kube.create(genv("patient", smokeTest=NO_SMOKE))

    down = await kube.wait_for(
        GENV, NAMESPACE, "patient", has_condition("Synced", "False", "RenkuUnavailable")
    )
    assert "Will retry" in synced_message(down)

    renku_double.set_down(False)
    obj = await kube.wait_for(GENV, NAMESPACE, "patient", has_condition("Ready", "True"))

    assert [env["id"] for env in named(renku_double, "patient")] == [obj["status"]["renkuId"]]
    assert "createAttempt" not in obj["status"]


async def test_a_lost_create_answer_is_recovered_not_repeated(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    renku_double.drop_next_response("POST")  # carried out, but the answer never arrives
    await kube.create(genv("lost", smokeTest=NO_SMOKE))

    obj = await kube.wait_for(GENV, NAMESPACE, "lost", has_condition("Synced", "True", "Recovered"))

    [env] = named(renku_double, "lost")
    assert obj["status"]["renkuId"] == env["id"]
    assert "createAttempt" not in obj["status"]
    assert [m for m, _ in env_writes(renku_double)] == ["POST"]
    event = await kube.wait_event("lost", "Recovered", namespace=NAMESPACE)
    assert env["id"] in event["message"]
