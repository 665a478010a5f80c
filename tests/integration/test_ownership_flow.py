"""Ownership and trust, end to end: the real operator, the emulated API server, the Renku double.

What a status writer can no longer do (forge status.renkuId), what an untrusted namespace may
not do (adopt, Delete), and the create attempt that survives a lost answer.
"""

from __future__ import annotations

from typing import Any

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import PublishedStatus, RenkuEnvironmentState
from renku_env_operator.domain import payload
from tests.support.claims import stored_claims
from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    env_writes,
    genv,
    has_condition,
    published,
    synced_message,
)
from tests.support.renku_double import RenkuDouble

IMAGE = "ghcr.io/example/env:1.0.0"
TRUST_ENV = "RENKU_ENV_OPERATOR_TRUSTED_NAMESPACES (Helm: security.trustedNamespaces)"


async def forge(kube: Kube, name: str, renku_id: str) -> dict[str, Any]:
    """Write status.renkuId as a status writer would, until a reconcile has seen it (a status
    write of the operator's that was in flight may overwrite it once); the ForgedStatus Event."""
    for _ in range(5):
        await kube.patch(
            GENV, NAMESPACE, name, {"status": {"renkuId": renku_id}}, subresource="status"
        )
        try:
            return await kube.wait_event(name, "ForgedStatus", namespace=NAMESPACE, timeout=1.0)
        except TimeoutError:
            continue
    raise AssertionError("no reconcile saw the forged status")


async def test_a_forged_status_renku_id_changes_nothing_in_renku(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    theirs = await published(kube, "owner", description="theirs")
    mine = await published(kube, "forger", deletionPolicy="Delete")
    before = renku_double.environments[theirs]
    renku_double.clear_requests()

    # Whoever may patch globalenvironments/status points "forger" at the other environment.
    forged = await forge(kube, "forger", theirs)
    assert f"names {theirs}, which GlobalEnvironment renku/owner owns" in forged["message"]
    await kube.patch(GENV, NAMESPACE, "forger", {"spec": {"description": "overwrite it"}})
    restored = await kube.wait_for(
        GENV,
        NAMESPACE,
        "forger",
        # Ready for the edited generation: a pass on the older spec may restore status first.
        lambda o: (
            o["status"].get("renkuId") == mine
            and o["status"].get("observedGeneration") == o["metadata"]["generation"]
            and has_condition("Ready", "True")(o)
        ),
    )
    assert renku_double.environments[mine]["description"] == "overwrite it"

    # Deleted with deletionPolicy Delete: its own environment goes, never the other one.
    await kube.patch(
        GENV, NAMESPACE, "forger", {"status": {"renkuId": theirs}}, subresource="status"
    )
    await kube.delete(GENV, NAMESPACE, "forger")
    await kube.wait_gone(GENV, NAMESPACE, "forger")

    assert renku_double.environments[theirs] == before
    assert mine not in renku_double.environments
    assert ("PATCH", f"{ENVS}/{theirs}") not in env_writes(renku_double)
    assert ("DELETE", f"{ENVS}/{theirs}") not in env_writes(renku_double)
    assert restored["status"]["renkuId"] == mine


async def test_an_untrusted_namespace_cannot_adopt_a_hand_made_environment(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    hand_made = renku_double.admin_create(name="Admin's", container_image="ghcr.io/x/y:1.0.0")
    await start_operator(trusted_namespaces=["renku-admins"], retry_backoff_seconds=60)

    await kube.create(genv("grab", renkuId=hand_made["id"], smokeTest=NO_SMOKE))
    obj = await kube.wait_for(
        GENV, NAMESPACE, "grab", has_condition("Synced", "False", "AdoptionNotAllowed")
    )

    message = synced_message(obj)
    assert TRUST_ENV in message
    assert "renku is not one" in message
    assert has_condition("Ready", "False", "AdoptionNotAllowed")(obj)
    assert renku_double.environments == {hand_made["id"]: hand_made}
    assert env_writes(renku_double) == []
    assert stored_claims(kube, "env") == {}


async def test_an_untrusted_namespace_cannot_use_delete(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(trusted_namespaces=["renku-admins"], retry_backoff_seconds=60)

    await kube.create(genv("wipe", deletionPolicy="Delete", smokeTest=NO_SMOKE))
    obj = await kube.wait_for(
        GENV, NAMESPACE, "wipe", has_condition("Synced", "False", "DeletionNotAllowed")
    )

    assert TRUST_ENV in synced_message(obj)
    assert renku_double.environments == {}
    assert env_writes(renku_double) == []

    await kube.delete(GENV, NAMESPACE, "wipe")
    await kube.wait_gone(GENV, NAMESPACE, "wipe")
    assert env_writes(renku_double) == []


async def test_a_lost_create_then_an_edit_gives_one_environment(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(retry_backoff_seconds=1.0)
    renku_double.drop_next_response("POST")
    await kube.create(genv("edited", description="first", smokeTest=NO_SMOKE))
    await kube.wait_for(
        GENV, NAMESPACE, "edited", has_condition("Synced", "False", "RenkuUnavailable")
    )

    await kube.patch(GENV, NAMESPACE, "edited", {"spec": {"description": "second"}})
    obj = await kube.wait_for(
        GENV,
        NAMESPACE,
        "edited",
        lambda o: has_condition("Ready", "True")(o) and o["metadata"]["generation"] == 2,
    )

    [env] = [e for e in renku_double.environments.values() if e["name"] == "edited"]
    assert env["description"] == "second"
    assert obj["status"]["renkuId"] == env["id"]
    assert renku_double.count("POST", ENVS) == 1
    assert stored_claims(kube, "attempt") == {}


async def test_deleting_with_only_a_create_attempt_recovers_then_archives(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator(retry_backoff_seconds=60)
    renku_double.drop_next_response("POST")
    await kube.create(genv("short-lived", smokeTest=NO_SMOKE))
    obj = await kube.wait_for(
        GENV, NAMESPACE, "short-lived", has_condition("Synced", "False", "RenkuUnavailable")
    )
    assert "renkuId" not in obj["status"]
    [env_id] = renku_double.environments

    await kube.delete(GENV, NAMESPACE, "short-lived")
    await kube.wait_gone(GENV, NAMESPACE, "short-lived")

    recovered = await kube.wait_event("short-lived", "Recovered", namespace=NAMESPACE)
    archived = await kube.wait_event("short-lived", "Archived", namespace=NAMESPACE)
    assert env_id in recovered["message"]
    assert env_id in archived["message"]
    assert renku_double.environments[env_id]["is_archived"] is True
    assert stored_claims(kube, "attempt") == {}
    assert stored_claims(kube, "env") == {}


async def test_adding_spec_renku_id_retires_the_created_environment_at_once(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    await start_operator()
    created = await published(kube, "switch")
    adopted = renku_double.admin_create(name="Admin's", container_image="ghcr.io/x/y:1.0.0")

    await kube.patch(GENV, NAMESPACE, "switch", {"spec": {"renkuId": adopted["id"]}})
    obj = await kube.wait_for(
        GENV,
        NAMESPACE,
        "switch",
        lambda o: o["status"].get("renkuId") == adopted["id"] and has_condition("Ready", "True")(o),
    )

    replaced = await kube.wait_event("switch", "Replaced", namespace=NAMESPACE)
    assert created in replaced["message"]
    assert renku_double.environments[created]["is_archived"] is True
    assert renku_double.environments[adopted["id"]]["name"] == "switch"
    assert list(stored_claims(kube, "env")) == [f"env-{adopted['id'].lower()}"]
    assert obj["status"]["published"]["image"] == IMAGE


async def test_an_object_from_before_the_records_is_migrated_once(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    # Published by an operator version that kept no records: only its status says so, and
    # says what it sent (port 1234, since changed in the spec).
    sent = payload.declared_state(
        GlobalEnvironmentSpec.model_validate({"image": IMAGE, "port": 1234}), "legacy", IMAGE
    )
    legacy = renku_double.admin_create(**sent)
    published = PublishedStatus(
        generation=1,
        image=IMAGE,
        time="2026-01-01T00:00:00Z",
        fingerprint=payload.fingerprint(sent),
        environment=RenkuEnvironmentState.model_validate(sent),
    ).model_dump(by_alias=True, exclude_none=True, mode="json")
    await kube.create(genv("legacy", smokeTest=NO_SMOKE))
    status = {"renkuId": legacy["id"], "published": published}
    await kube.patch(GENV, NAMESPACE, "legacy", {"status": status}, subresource="status")

    await start_operator()
    obj = await kube.wait_for(GENV, NAMESPACE, "legacy", has_condition("Ready", "True"))

    migrated = await kube.wait_event("legacy", "OwnershipMigrated", namespace=NAMESPACE)
    assert legacy["id"] in migrated["message"]
    assert obj["status"]["renkuId"] == legacy["id"]
    assert renku_double.environments[legacy["id"]]["port"] == 8080  # converged, not recreated
    assert renku_double.count("POST", ENVS) == 0
    assert list(stored_claims(kube, "env")) == [f"env-{legacy['id'].lower()}"]
    assert "ownership-era" in stored_claims(kube, "era")
