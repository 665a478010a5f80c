"""Fairness under a Renku that hangs (issue 19 finding 4, issue 23): the real operator, the
emulated API server and the Renku double, which accepts connections and never answers.

Every bound here is far below the deadline of the hung calls (RENKU_TIMEOUT_SECONDS 60): a
pass that waited for them would miss it, on however loaded a machine."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from tests.support.kube import GENV, Kube
from tests.support.operator_fixtures import (
    ENVS,
    NAMESPACE,
    NO_SMOKE,
    condition,
    genv,
    has_condition,
)
from tests.support.renku_double import IMAGES_PATH, RenkuDouble

OTHER = "team-b"
HUNG = 60.0  # the Renku client's deadline for one request: the hung calls end only there
BOUND = 20.0  # what the tests wait at most: well before HUNG


async def test_a_hung_renku_leaves_passes_that_need_no_renku_and_other_teams_free(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    renku_double.hang_requests(ENVS)  # the list and every create: accepted, never answered
    healthz = f"http://127.0.0.1:{free_port()}/healthz"
    await start_operator(
        liveness_endpoint=healthz,
        namespaces=[NAMESPACE, OTHER],
        renku_timeout_seconds=HUNG,
        renku_image_check="Off",
        max_concurrent_reconciles=4,
        max_concurrent_reconciles_per_namespace=2,
    )
    for n in range(8):  # twice the slots: before, each held one for the whole hung request
        await kube.create(genv(f"waits-{n}", smokeTest=NO_SMOKE))
    await renku_double.wait_until_async(lambda r: r.count(path=ENVS) >= 2, timeout=BOUND)

    started = time.monotonic()
    await kube.create(genv("broken", port=70000, smokeTest=NO_SMOKE))
    other = genv("elsewhere", port=70000, smokeTest=NO_SMOKE)
    other["metadata"]["namespace"] = OTHER
    await kube.create(other)
    invalid = has_condition("Validated", "False")
    await kube.wait_for(GENV, NAMESPACE, "broken", invalid, timeout=BOUND)
    await kube.wait_for(GENV, OTHER, "elsewhere", invalid, timeout=BOUND)

    assert time.monotonic() - started < BOUND
    # The hung calls are still hung: nothing above waited for their end.
    assert all(r.status is not None for r in renku_double.requests if r.path == ENVS)
    assert renku_double.count("POST", ENVS) <= 2  # at most the share waits on Renku at once

    # The liveness endpoint says what the passes wait on; it stays healthy: the slots are free.
    async with httpx.AsyncClient() as client:
        health = await client.get(healthz, timeout=BOUND)
    assert health.status_code == 200
    assert health.json()["reconcile"]["waitingOn"]["renku"] >= 1
    assert health.json()["reconcile"]["stuck"] is False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_renku_image_check_that_never_answers_costs_one_request_per_reference(
    kube: Kube, renku_double: RenkuDouble, start_operator: Any
) -> None:
    renku_double.hang_requests(IMAGES_PATH)
    await start_operator(
        renku_timeout_seconds=HUNG,
        renku_image_check_timeout_seconds=0.5,
        retry_backoff_seconds=600.0,  # the interval: nothing is asked twice within the test
    )
    images = {"a": "ghcr.io/example/env:1.0.0", "b": "ghcr.io/example/other:2.0.0"}
    names = {f"same-{key}-{n}": image for key, image in images.items() for n in range(25)}
    for name, image in names.items():
        await kube.create(genv(name, image=image, smokeTest=NO_SMOKE))

    for name in names:  # every object reaches its outcome: published, with Renku's silence noted
        obj = await kube.wait_for(
            GENV, NAMESPACE, name, has_condition("Ready", "True"), timeout=BOUND
        )
        verified = condition(obj, "ImageVerified")
        assert verified is not None
        assert "did not answer within 0.5s" in verified["message"]

    asked = sorted(
        r.query.get("image_url", "") for r in renku_double.requests if r.path == IMAGES_PATH
    )
    assert asked == sorted(images.values())
