"""SmokeTester against an in-memory fake of the KubeApi Protocol (no API server involved)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.api.status import SmokeTestStatus
from renku_env_operator.clients.kube import KubeConflictError, KubeError, ProxyResponse
from renku_env_operator.config import Settings
from renku_env_operator.services.smoketest import KubeApi, SmokeTarget, SmokeTester

NS = "envs"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IMAGE = "ghcr.io/acme/lab@sha256:" + "a" * 64
SPEC = GlobalEnvironmentSpec.model_validate(
    {"image": "ghcr.io/acme/lab:1.0.0", "port": 8888, "defaultUrl": "/lab"}
)
TARGET = SmokeTarget(name="lab", namespace=NS, uid="uid-lab", generation=1)


def matches(labels: Mapping[str, str], selector: str) -> bool:
    """Kubernetes label-selector semantics for `k=v`, `k!=v`, `k` and `!k`."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            key, value = term.split("!=")
            ok = labels.get(key) != value
        elif "=" in term:
            key, value = term.split("=")
            ok = labels.get(key) == value
        elif term.startswith("!"):
            ok = term[1:] not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


class FakeKube:
    """Pods in a dict; every call yields to the loop once, as a real request would."""

    def __init__(self) -> None:
        self.pods: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.logs: dict[tuple[str, str, bool], str] = {}
        self.proxy: dict[str, ProxyResponse] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.stopped: list[str] = []

    async def create_pod(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        name = body["metadata"]["name"]
        if name in self.pods:
            raise KubeConflictError(f"pods {name!r} already exists", status=409)
        pod = copy.deepcopy(dict(body))
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        self.created.append(name)
        return copy.deepcopy(pod)

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        await asyncio.sleep(0)
        pod = self.pods.get(name)
        return copy.deepcopy(pod) if pod else None

    async def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return [
            copy.deepcopy(p)
            for p in self.pods.values()
            if matches(p["metadata"].get("labels") or {}, label_selector)
        ]

    async def delete_pod(self, namespace: str, name: str) -> None:
        await asyncio.sleep(0)
        if self.pods.pop(name, None) is not None:
            self.deleted.append(name)

    async def patch_pod_metadata(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        await asyncio.sleep(0)
        metadata = self.pods[name]["metadata"]
        metadata.setdefault("labels", {}).update(labels or {})
        metadata.setdefault("annotations", {}).update(annotations or {})
        return copy.deepcopy(self.pods[name])

    async def stop_pod(self, namespace: str, name: str) -> dict[str, Any]:
        await asyncio.sleep(0)
        if name not in self.pods:
            raise KubeError(f"pods {name!r} not found", status=404)
        self.pods[name]["spec"]["activeDeadlineSeconds"] = 1
        self.stopped.append(name)
        return copy.deepcopy(self.pods[name])

    async def read_pod_log(
        self,
        namespace: str,
        name: str,
        container: str | None = None,
        tail_lines: int = 50,
        *,
        previous: bool = False,
    ) -> str:
        await asyncio.sleep(0)
        key = (name, container or "", previous)
        if key not in self.logs:
            raise KubeError(f'container "{container}" is waiting to start', status=400)
        return self.logs[key]

    async def list_events_for(self, namespace: str, name: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return list(self.events.get(name, []))

    async def proxy_get(self, namespace: str, pod: str, port: int, path: str) -> ProxyResponse:
        await asyncio.sleep(0)
        return self.proxy.get(f"{pod}:{port}{path}", ProxyResponse(404, {}, "not found"))

    # --- test helpers ---

    def one(self, role: str = "session") -> dict[str, Any]:
        found = [
            p
            for p in self.pods.values()
            if p["metadata"]["labels"].get("renku.io/smoke-role") == role
        ]
        assert len(found) == 1, list(self.pods)
        return found[0]

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        self.pods[name]["status"] = status


def running(ready: bool, restarts: int = 0) -> dict[str, Any]:
    return {
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {
                "name": "session",
                "ready": ready,
                "restartCount": restarts,
                "imageID": IMAGE,
                "state": {"running": {"startedAt": "2026-03-01T12:00:05Z"}},
            }
        ],
    }


def probe_done() -> dict[str, Any]:
    done = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    return {
        "phase": "Succeeded",
        "containerStatuses": [
            {"name": "mounted", "state": done},
            {"name": "image", "state": done},
        ],
    }


GOOD_PROBE_LOGS = {
    "mounted": (
        "renku-probe user 1000 1000 1000 1000\n"
        "renku-probe mount writable /home/jovyan/work\n"
        "renku-probe workdir writable /home/jovyan/work\n"
    ),
    "image": "renku-probe shipped-count 0 /home/jovyan/work\n",
}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "operator_namespace": NS,
        "smoke_max_concurrent": 2,
        "smoke_timeout_seconds": 300,
        "smoke_stable_seconds": 20,
        "smoke_keep_failed_seconds": 600,
    }
    return Settings(**(values | overrides))


def make_tester(kube: KubeApi, **overrides: Any) -> SmokeTester:
    return SmokeTester(kube, settings(**overrides), probe_timeout_seconds=60)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def smoke_metric(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("renku_env_operator_smoke_tests_total", labels) or 0.0


def base_path(pod: Mapping[str, Any]) -> str:
    env = {str(e["name"]): str(e["value"]) for e in pod["spec"]["containers"][0]["env"]}
    return env["RENKU_BASE_URL_PATH"]


async def pass_the_test(kube: FakeKube, smoke: SmokeTester) -> SmokeTestStatus:
    """Drive one smoke test from creation to Passed."""
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=True))
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(40))
    kube.set_status(f"{name}-probe", probe_done())
    for container, text in GOOD_PROBE_LOGS.items():
        kube.logs[f"{name}-probe", container, False] = text
    url = f"{name}:8888{base_path(kube.pods[name])}/lab"
    kube.proxy[url] = ProxyResponse(200, {"Content-Type": "text/html"}, "<html>")
    return await smoke.step(TARGET, SPEC, IMAGE, status, now=later(60))


async def test_first_call_creates_the_pod() -> None:
    kube = FakeKube()
    status = await make_tester(kube).step(TARGET, SPEC, IMAGE, None, now=T0)
    pod = kube.one()
    name = pod["metadata"]["name"]
    assert kube.created == [name]
    assert (status.result, status.reason) == ("Running", "Created")
    assert (status.pod_name, status.image, status.generation) == (name, IMAGE, 1)
    assert status.started_at == "2026-03-01T12:00:00Z"
    labels = pod["metadata"]["labels"]
    assert labels["renku.io/globalenvironment-uid"] == "uid-lab"
    assert labels["renku.io/generation"] == "1"
    assert labels["renku.io/smoke-purpose"] == "current"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "uid-lab"
    assert pod["spec"]["containers"][0]["image"] == IMAGE
    # Backstop: the pod dies on its own should the operator go away.
    assert pod["spec"]["activeDeadlineSeconds"] >= 300 + 20


async def test_second_call_while_pending_creates_nothing() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    first = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    second = await smoke.step(TARGET, SPEC, IMAGE, first, now=later(5))
    assert len(kube.created) == 1
    assert (second.result, second.reason) == ("Running", "Scheduling")
    assert second.pod_name == first.pod_name
    assert second.started_at == first.started_at


async def test_passed_deletes_the_pods_and_records_metrics() -> None:
    kube = FakeKube()
    before = smoke_metric("Passed")
    status = await pass_the_test(kube, make_tester(kube))
    assert (status.result, status.reason) == ("Passed", "Passed")
    assert kube.pods == {}
    assert sorted(kube.deleted) == sorted(kube.created)
    assert status.finished_at == "2026-03-01T12:01:00Z"
    assert status.duration_seconds == 60.0
    results = {c.name: c.result for c in status.checks}
    assert results == {
        "Scheduled": "Passed",
        "Pull": "Passed",
        "Start": "Passed",
        "Ready": "Passed",
        "Stable": "Passed",
        "SessionUrl": "Passed",
        "User": "Passed",
        "MountWritable": "Passed",
        "WorkingDirectory": "Passed",
        "HiddenFiles": "Passed",
    }
    assert smoke_metric("Passed") == before + 1


async def test_stability_and_mount_checks_run_before_the_verdict() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=True))
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(40))
    assert (status.result, status.reason) == ("Running", "Ready")
    # First readiness is kept on the pod (survives a restart); the probe pod starts.
    annotations = kube.pods[name]["metadata"]["annotations"]
    assert annotations["renku.io/smoke-first-ready-at"].startswith("2026-03-01T12:00:40")
    assert kube.one("probe")["metadata"]["name"] == f"{name}-probe"
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(61))
    assert (status.result, status.reason) == ("Running", "CheckingMounts")
    # A probe that never finishes is skipped after its timeout, not a failure.
    kube.proxy[f"{name}:8888{base_path(kube.pods[name])}/lab"] = ProxyResponse(200, {}, "")
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(101))
    assert status.result == "Passed"
    skipped = {c.name for c in status.checks if c.result == "Skipped"}
    assert skipped == {"User", "MountWritable", "WorkingDirectory", "HiddenFiles"}


async def test_failed_pod_is_kept_labelled_and_counted() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    before = smoke_metric("ImageNotFound")
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    message = f'failed to resolve reference "{IMAGE}": not found'
    kube.set_status(
        name,
        {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {
                    "name": "session",
                    "state": {"waiting": {"reason": "ErrImagePull", "message": message}},
                }
            ],
        },
    )
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(10))
    assert (status.result, status.reason) == ("Failed", "ImageNotFound")
    assert status.duration_seconds == 10.0
    assert kube.deleted == []
    labels = kube.pods[name]["metadata"]["labels"]
    assert labels["renku.io/smoke-finished"] == str(int(later(10).timestamp()))
    stored = json.loads(kube.pods[name]["metadata"]["annotations"]["renku.io/smoke-result"])
    assert stored["reason"] == "ImageNotFound"
    assert smoke_metric("ImageNotFound") == before + 1
    # The final result is returned as it is, with no new pod.
    again = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(20))
    assert again == status
    assert len(kube.created) == 1


async def test_a_verdict_reached_but_not_written_is_recovered() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    running_status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=False, restarts=1))
    failed = await smoke.step(TARGET, SPEC, IMAGE, running_status, now=later(30))
    assert failed.reason == "CrashedOnStart"
    # The status write was lost: the handler calls again with the old (Running) status.
    restarted = make_tester(kube)
    recovered = await restarted.step(TARGET, SPEC, IMAGE, running_status, now=later(45))
    assert recovered == failed
    assert len(kube.created) == 1


async def test_failed_session_url_fails_the_test() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=True))
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(40))
    kube.set_status(f"{name}-probe", probe_done())
    for container, text in GOOD_PROBE_LOGS.items():
        kube.logs[f"{name}-probe", container, False] = text
    # No proxy answer configured: the fake answers 404 like a server at the wrong path.
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(60))
    assert (status.result, status.reason) == ("Failed", "SessionUrlNotServed")
    assert "RENKU_BASE_URL_PATH" in status.message
    assert name in kube.pods
    assert f"{name}-probe" not in kube.pods


@pytest.mark.parametrize(
    "answer",
    [
        # The API server could not dial the pod: its own Status, not the session's 503.
        ProxyResponse(
            503,
            {"Content-Type": "application/json"},
            json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 503,
                        "message": "error trying to reach service: dial tcp 10.1.2.3:8888: i/o timeout"}),
        ),
        # A proxy in front of the API server relabelled the API server's 401 as text.
        ProxyResponse(
            401,
            {"Content-Type": "text/plain"},
            json.dumps({"kind": "Status", "apiVersion": "v1", "code": 401, "message": "Unauthorized"}),
        ),
        # A gateway in front of the API server sends us to its login, off the pod's proxy.
        ProxyResponse(302, {"Location": "/api/v1/namespaces/kube-system/services/login/proxy/"}, ""),
    ],
    ids=["status-503", "relabelled-401", "redirect-off-the-proxy"],
)  # fmt: skip
async def test_an_api_server_answer_is_not_the_sessions(answer: ProxyResponse) -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    base = next(
        e["value"]
        for e in kube.one()["spec"]["containers"][0]["env"]
        if e["name"] == "RENKU_BASE_URL_PATH"
    )
    kube.proxy[f"{name}:{SPEC.port or 8080}{base}/lab"] = answer
    kube.set_status(name, running(ready=True))
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(40))
    kube.set_status(f"{name}-probe", probe_done())
    for container, text in GOOD_PROBE_LOGS.items():
        kube.logs[f"{name}-probe", container, False] = text
    status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(60))
    (url,) = [c for c in status.checks if c.name == "SessionUrl"]
    assert (url.result, status.result) == ("Skipped", "Passed"), url
    assert url.message.startswith("could not reach the session: ")
    assert "its own login" not in url.message


async def test_slot_limit_makes_it_wait() -> None:
    kube = FakeKube()
    smoke = make_tester(kube, smoke_max_concurrent=1)
    other = SmokeTarget(name="other", namespace=NS, uid="uid-other", generation=4)
    await smoke.step(other, SPEC, IMAGE, None, now=T0)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    assert (status.result, status.reason) == ("Pending", "WaitingForSlot")
    assert "1 running / 1 max" in status.message
    assert status.pod_name is None
    assert len(kube.created) == 1


async def test_two_objects_cannot_both_take_the_last_slot() -> None:
    kube = FakeKube()
    smoke = make_tester(kube, smoke_max_concurrent=1)
    targets = [
        SmokeTarget(name=f"t{i}", namespace=NS, uid=f"uid-{i}", generation=1) for i in range(3)
    ]
    results = await asyncio.gather(*(smoke.step(t, SPEC, IMAGE, None, now=T0) for t in targets))
    assert sorted(r.result for r in results) == ["Pending", "Pending", "Running"]
    assert len(kube.created) == 1


async def test_a_failed_pod_frees_its_slot() -> None:
    kube = FakeKube()
    smoke = make_tester(kube, smoke_max_concurrent=1)
    other = SmokeTarget(name="other", namespace=NS, uid="uid-other", generation=1)
    first = await smoke.step(other, SPEC, IMAGE, None, now=T0)
    kube.set_status(kube.one()["metadata"]["name"], running(ready=False, restarts=2))
    assert (await smoke.step(other, SPEC, IMAGE, first, now=later(30))).result == "Failed"
    assert (await smoke.step(TARGET, SPEC, IMAGE, None, now=later(31))).result == "Running"


async def test_a_restarted_operator_finds_its_pod_again() -> None:
    kube = FakeKube()
    first = await make_tester(kube).step(TARGET, SPEC, IMAGE, None, now=T0)
    # A new SmokeTester (operator restart), and even the status write was lost.
    status = await make_tester(kube).step(TARGET, SPEC, IMAGE, None, now=later(5))
    assert len(kube.created) == 1
    assert status.pod_name == first.pod_name
    assert status.started_at == first.started_at


async def test_generation_change_replaces_the_pod_and_collects_the_old() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    old = kube.one()["metadata"]["name"]
    newer = SmokeTarget(name="lab", namespace=NS, uid="uid-lab", generation=2)
    status = await smoke.step(newer, SPEC, IMAGE, None, now=later(5))
    assert status.generation == 2
    assert old in kube.deleted
    assert kube.one()["metadata"]["labels"]["renku.io/generation"] == "2"


async def test_garbage_collection() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)  # keeps failed pods 600s

    async def fail(target: SmokeTarget, at: float) -> str:
        await smoke.step(target, SPEC, IMAGE, None, now=later(at))
        name = next(n for n in kube.created[::-1])
        kube.set_status(name, running(ready=False, restarts=1))
        await smoke.step(
            target,
            SPEC,
            IMAGE,
            SmokeTestStatus(result="Running", pod_name=name),
            now=later(at + 1),
        )
        return name

    old_generation = await fail(TARGET, 0)
    newer = SmokeTarget(name="lab", namespace=NS, uid="uid-lab", generation=2)
    current = await fail(newer, 10)
    young = await fail(SmokeTarget(name="b", namespace=NS, uid="uid-b", generation=1), 500)
    gone = await fail(SmokeTarget(name="c", namespace=NS, uid="uid-c", generation=1), 500)
    expired = await fail(SmokeTarget(name="d", namespace=NS, uid="uid-d", generation=1), 0)
    # The new generation's test made room: one pod per object and purpose.
    assert old_generation in kube.deleted
    assert set(kube.pods) == {current, young, gone, expired}

    live = {"uid-lab", "uid-b", "uid-d"}
    deleted = await smoke.collect_garbage(now=later(700), live_uids=live)
    # failed longer than 600s ago, GlobalEnvironment gone
    assert sorted(deleted) == sorted([current, expired, gone])
    assert set(kube.pods) == {young}


async def test_a_failed_pod_is_stopped_at_once_and_kept_for_its_logs() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=False, restarts=1))
    failed = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(30))
    assert (failed.result, failed.reason) == ("Failed", "CrashedOnStart")
    assert kube.stopped == [name]
    assert kube.pods[name]["spec"]["activeDeadlineSeconds"] == 1  # the kubelet stops it now
    assert name not in kube.deleted  # the pod object stays for `kubectl logs`


async def test_a_failed_pod_that_cannot_be_stopped_still_gets_its_verdict() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    name = kube.one()["metadata"]["name"]
    kube.set_status(name, running(ready=False, restarts=1))

    async def refuse(namespace: str, name: str) -> dict[str, Any]:
        raise KubeError("pods is forbidden", status=403)

    kube.stop_pod = refuse  # type: ignore[method-assign]
    failed = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(30))
    assert (failed.result, failed.reason) == ("Failed", "CrashedOnStart")


@pytest.mark.parametrize("fail_between", [False, True], ids=["while-running", "after-failures"])
async def test_a_retest_flood_costs_one_pod(fail_between: bool) -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    status: SmokeTestStatus | None = None
    for retest in range(25):  # every new retest value asks for a test: previous=None
        status = await smoke.step(TARGET, SPEC, IMAGE, None, now=later(retest))
        sessions = [
            p
            for p in kube.pods.values()
            if p["metadata"]["labels"]["renku.io/smoke-role"] == "session"
        ]
        assert len(sessions) == 1, [p["metadata"]["name"] for p in sessions]
        if fail_between:
            kube.set_status(sessions[0]["metadata"]["name"], running(ready=False, restarts=1))
            status = await smoke.step(TARGET, SPEC, IMAGE, status, now=later(retest + 0.5))
            assert status.result == "Failed"
    assert len(kube.created) == (25 if fail_between else 1)


async def test_two_steps_racing_for_one_object_start_one_pod() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    await asyncio.gather(*(smoke.step(TARGET, SPEC, IMAGE, None, now=T0) for _ in range(5)))
    assert len(kube.created) == 1


async def test_collect_garbage_keeps_running_tests() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    assert await smoke.collect_garbage(now=later(10_000)) == []
    assert len(kube.pods) == 1


async def test_update_candidates_are_tested_alongside() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    candidate = IMAGE.replace("a" * 64, "b" * 64)
    current = await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    update = await smoke.step(TARGET, SPEC, candidate, None, now=T0, purpose="update")
    assert len(kube.created) == 2
    assert current.pod_name != update.pod_name
    purposes = {p["metadata"]["labels"]["renku.io/smoke-purpose"] for p in kube.pods.values()}
    assert purposes == {"current", "update"}
    # Stepping one does not disturb the other.
    await smoke.step(TARGET, SPEC, IMAGE, current, now=later(5))
    assert kube.deleted == []


async def test_cancel_deletes_every_pod_of_the_object() -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    await smoke.step(TARGET, SPEC, IMAGE, None, now=T0, purpose="update")
    assert len(await smoke.cancel("uid-lab")) == 2
    assert kube.pods == {}


async def test_smoke_namespace_elsewhere_means_no_owner_reference() -> None:
    kube = FakeKube()
    smoke = SmokeTester(kube, settings(smoke_namespace="smoke"))
    await smoke.step(TARGET, SPEC, IMAGE, None, now=T0)
    assert "ownerReferences" not in kube.one()["metadata"]


@pytest.mark.parametrize(
    ("overrides", "timeout"), [({}, 300), ({"smokeTest": {"timeoutSeconds": 60}}, 60)]
)
async def test_spec_timeout_wins_over_the_setting(overrides: dict[str, Any], timeout: int) -> None:
    kube = FakeKube()
    smoke = make_tester(kube)
    spec = GlobalEnvironmentSpec.model_validate({"image": "ghcr.io/acme/lab:1.0.0", **overrides})
    status = await smoke.step(TARGET, spec, IMAGE, None, now=T0)
    kube.set_status(kube.one()["metadata"]["name"], running(ready=False))
    assert (
        await smoke.step(TARGET, spec, IMAGE, status, now=later(timeout - 1))
    ).result == "Running"
    final = await smoke.step(TARGET, spec, IMAGE, status, now=later(timeout))
    assert (final.result, final.reason) == ("Failed", "NeverReady")


async def test_the_images_workdir_is_used_as_renku_does() -> None:
    kube = FakeKube()
    await make_tester(kube).step(
        TARGET, SPEC, IMAGE, None, image_workdir="/home/renku/work", now=T0
    )
    container = kube.one()["spec"]["containers"][0]
    assert container["workingDir"] == "/home/renku/work"
    assert container["volumeMounts"][0]["mountPath"] == "/home/renku/work"
