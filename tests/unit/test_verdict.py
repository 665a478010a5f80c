"""The smoke-test verdict, from pod statuses and Events shaped as kubelets really report them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from renku_env_operator.domain.pod_failures import classify_pull_error
from renku_env_operator.domain.session_url import proxy_detour
from renku_env_operator.domain.verdict import (
    Verdict,
    api_server_error,
    judge,
    judge_session_url,
    session_url_path,
    unproxied_location,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IMAGE = "ghcr.io/acme/lab:9.9"
TIMEOUT, STABLE = 300, 20
SCHEDULED = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-03-01T12:00:01Z"}


def pod(
    state: dict[str, Any] | None = None,
    *,
    phase: str = "Pending",
    ready: bool = False,
    restarts: int = 0,
    last: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    **status: Any,
) -> dict[str, Any]:
    """A smoke pod as `kubectl get -o json` shows it."""
    container_status = {
        "name": "session",
        "image": IMAGE,
        "imageID": "" if state is None or "waiting" in state else f"{IMAGE}@sha256:{'a' * 64}",
        "ready": ready,
        "restartCount": restarts,
        "started": state is not None and "running" in state,
        "state": state or {"waiting": {"reason": "ContainerCreating"}},
        "lastState": {"terminated": last} if last else {},
    }
    return {
        "metadata": {"name": "smoke-lab-1", "namespace": "envs"},
        "spec": {
            "nodeName": "node-a",
            "containers": [
                {
                    "name": "session",
                    "readinessProbe": {"tcpSocket": {"port": 8888}},
                    "resources": {"limits": {"memory": "2Gi"}},
                }
            ],
        },
        "status": {
            "phase": phase,
            "conditions": [SCHEDULED] if conditions is None else conditions,
            "containerStatuses": [container_status],
            "qosClass": "Burstable",
            **status,
        },
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


RUNNING = {"running": {"startedAt": "2026-03-01T12:00:20Z"}}


def event(reason: str, message: str, type_: str = "Warning") -> dict[str, Any]:
    return {"reason": reason, "message": message, "type": type_, "count": 1}


def at(
    seconds: float,
    the_pod: dict[str, Any],
    events: list[dict[str, Any]] | None = None,
    *,
    log: str | None = None,
    first_ready: float | None = None,
) -> Verdict:
    return judge(
        the_pod,
        events or [],
        log,
        now=T0 + timedelta(seconds=seconds),
        started_at=T0,
        timeout_seconds=TIMEOUT,
        stable_seconds=STABLE,
        first_ready_at=None if first_ready is None else T0 + timedelta(seconds=first_ready),
    )


def check(verdict: Verdict, name: str) -> str:
    return next(c.result for c in verdict.checks if c.name == name)


# --- progress ---


def test_unscheduled_pod_waits_for_a_node() -> None:
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are "
        "available: 3 No preemption victims found for incoming pod.",
    }
    the_pod = pod(conditions=[unschedulable])
    del the_pod["status"]["containerStatuses"]
    verdict = at(30, the_pod)
    assert (verdict.state, verdict.reason) == ("Running", "Scheduling")
    assert "Insufficient memory" in verdict.message
    # Nodes may still come (autoscaler): only the timeout makes it a failure.
    failed = at(TIMEOUT, the_pod)
    assert (failed.state, failed.reason) == ("Failed", "Unschedulable")
    assert "3 Insufficient memory" in failed.message
    assert check(failed, "Scheduled") == "Failed"


def test_unschedulable_from_the_event_when_no_condition_yet() -> None:
    the_pod = pod(conditions=[])
    failed = at(
        TIMEOUT,
        the_pod,
        [
            event(
                "FailedScheduling",
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            )
        ],
    )
    assert failed.reason == "Unschedulable"
    assert "node affinity/selector" in failed.message


def test_pulling_and_creating() -> None:
    pulling = at(5, pod(), [event("Pulling", f'Pulling image "{IMAGE}"', "Normal")])
    assert (pulling.state, pulling.reason) == ("Running", "Pulling")
    assert at(5, pod()).reason == "Creating"
    assert check(pulling, "Scheduled") == "Passed"


def test_running_not_ready_yet() -> None:
    verdict = at(25, pod(RUNNING, phase="Running"))
    assert (verdict.state, verdict.reason) == ("Running", "Starting")
    assert "port 8888" in verdict.message
    assert [c.name for c in verdict.checks] == ["Scheduled", "Pull", "Start"]


# --- passing ---


def test_ready_then_stable_passes() -> None:
    ready = pod(RUNNING, phase="Running", ready=True)
    first = at(40, ready)
    assert (first.state, first.reason) == ("Running", "Ready")
    assert first.first_ready_at == T0 + timedelta(seconds=40)
    assert "20s to go" in first.message
    almost = at(59, ready, first_ready=40)
    assert almost.state == "Running"
    passed = at(60, ready, first_ready=40)
    assert (passed.state, passed.reason) == ("Passed", "Passed")
    assert passed.first_ready_at == T0 + timedelta(seconds=40)
    assert {c.name: c.result for c in passed.checks} == {
        "Scheduled": "Passed",
        "Pull": "Passed",
        "Start": "Passed",
        "Ready": "Passed",
        "Stable": "Passed",
    }


def test_zero_stable_seconds_passes_at_first_ready() -> None:
    ready = pod(RUNNING, phase="Running", ready=True)
    verdict = judge(
        ready,
        [],
        None,
        now=T0,
        started_at=T0,
        timeout_seconds=TIMEOUT,
        stable_seconds=0,
        first_ready_at=None,
    )
    assert verdict.state == "Passed"


def test_readiness_after_the_timeout_still_counts_once_ready() -> None:
    # The timeout bounds becoming ready; the stability window comes after it.
    ready = pod(RUNNING, phase="Running", ready=True)
    assert at(TIMEOUT + 10, ready, first_ready=TIMEOUT - 5).state == "Running"


# --- image pull failures ---

PULL_ERRORS = {
    "containerd tag missing": (
        'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/acme/lab:9.9": '
        'failed to resolve reference "ghcr.io/acme/lab:9.9": ghcr.io/acme/lab:9.9: not found',
        "ImageNotFound",
    ),
    "docker manifest unknown": (
        "Error response from daemon: manifest for acme/lab:9.9 not found: manifest unknown: "
        "manifest unknown",
        "ImageNotFound",
    ),
    "cri-o manifest unknown": (
        "rpc error: code = Unknown desc = reading manifest 9.9 in quay.io/acme/lab: manifest "
        "unknown",
        "ImageNotFound",
    ),
    "docker hub private or missing": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/acme/lab:1": '
        'failed to resolve reference "docker.io/acme/lab:1": pull access denied, repository does '
        "not exist or may require authorization: server message: insufficient_scope: "
        "authorization failed",
        "ImageNotPublic",
    ),
    "ghcr private": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "ghcr.io/acme/lab:1": '
        'failed to resolve reference "ghcr.io/acme/lab:1": failed to authorize: failed to fetch '
        "anonymous token: unexpected status from GET request to https://ghcr.io/token?scope="
        "repository%3Aacme%2Flab%3Apull&service=ghcr.io: 401 Unauthorized",
        "ImageNotPublic",
    ),
    "docker daemon denied": (
        "Error response from daemon: pull access denied for acme/lab, repository does not exist "
        "or may require 'docker login': denied: requested access to the resource is denied",
        "ImageNotPublic",
    ),
    "platform": (
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/acme/lab:1":'
        " no match for platform in manifest: not found",
        "NoMatchingPlatform",
    ),
    "dns": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "reg.example.org/x:1": '
        'failed to resolve reference "reg.example.org/x:1": failed to do request: Head '
        '"https://reg.example.org/v2/x/manifests/1": dial tcp: lookup reg.example.org on '
        "10.96.0.10:53: no such host",
        "ImagePullFailed",
    ),
    "rate limit": (
        'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/acme/lab:1"'
        ": 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull "
        "rate limit.",
        "ImagePullFailed",
    ),
}


@pytest.mark.parametrize(("text", "reason"), PULL_ERRORS.values(), ids=PULL_ERRORS.keys())
def test_pull_error_classification(text: str, reason: str) -> None:
    assert classify_pull_error(text)[0] == reason


def test_image_not_found_fails_at_once_from_err_image_pull() -> None:
    text = PULL_ERRORS["containerd tag missing"][0]
    verdict = at(8, pod(waiting("ErrImagePull", text)))
    assert (verdict.state, verdict.reason) == ("Failed", "ImageNotFound")
    assert "check spec.image for typos" in verdict.message
    assert check(verdict, "Pull") == "Failed"


def test_image_not_public_from_the_event_behind_a_back_off() -> None:
    text = PULL_ERRORS["ghcr private"][0]
    events = [
        event("Pulling", f'Pulling image "{IMAGE}"', "Normal"),
        event("Failed", f'Failed to pull image "{IMAGE}": {text}'),
        event("Failed", "Error: ErrImagePull"),
        event("BackOff", f'Back-off pulling image "{IMAGE}"', "Normal"),
    ]
    the_pod = pod(waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'))
    verdict = at(15, the_pod, events)
    assert (verdict.state, verdict.reason) == ("Failed", "ImageNotPublic")
    assert "authentication required" in verdict.message
    assert "global environment images must be public" in verdict.message
    assert "401 Unauthorized" in verdict.message


def test_newer_kubelets_put_the_cause_into_the_back_off_message() -> None:
    text = PULL_ERRORS["docker hub private or missing"][0]
    message = f'Back-off pulling image "{IMAGE}": ErrImagePull: {text}'
    verdict = at(15, pod(waiting("ImagePullBackOff", message)))
    assert verdict.reason == "ImageNotPublic"


def test_transient_pull_errors_wait_for_the_timeout() -> None:
    text = PULL_ERRORS["dns"][0]
    the_pod = pod(waiting("ErrImagePull", text))
    running = at(30, the_pod)
    assert (running.state, running.reason) == ("Running", "Pulling")
    assert "no such host" in running.message
    failed = at(TIMEOUT, the_pod)
    assert (failed.state, failed.reason) == ("Failed", "ImagePullFailed")
    assert "reachable" in failed.message


def test_slow_pull_times_out_as_such() -> None:
    verdict = at(TIMEOUT, pod(), [event("Pulling", f'Pulling image "{IMAGE}"', "Normal")])
    assert (verdict.state, verdict.reason) == ("Failed", "ImagePullTimeout")
    assert "timeoutSeconds" in verdict.message


def test_invalid_image_name() -> None:
    message = 'Failed to apply default image tag "Acme/Lab": couldn\'t parse image name'
    verdict = at(3, pod(waiting("InvalidImageName", message)))
    assert (verdict.state, verdict.reason) == ("Failed", "ImageInvalid")


# --- start failures ---


def test_run_as_non_root_violation() -> None:
    message = (
        'container has runAsNonRoot and image will run as root (pod: "smoke-lab-1_envs(7c1b)", '
        "container: session)"
    )
    verdict = at(10, pod(waiting("CreateContainerConfigError", message)))
    assert (verdict.state, verdict.reason) == ("Failed", "RunAsNonRootViolation")
    assert "never runs sessions as root" in verdict.message


def test_other_config_errors() -> None:
    verdict = at(10, pod(waiting("CreateContainerConfigError", 'secret "x" not found')))
    assert verdict.reason == "ContainerConfigError"


EXEC_NOT_FOUND = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "jupyter": executable file '
    "not found in $PATH: unknown"
)


def test_missing_command_from_a_start_error() -> None:
    last = {"exitCode": 128, "reason": "StartError", "message": EXEC_NOT_FOUND}
    the_pod = pod(
        waiting("CrashLoopBackOff", "back-off 10s restarting failed container"),
        restarts=1,
        last=last,
    )
    verdict = at(12, the_pod)
    assert (verdict.state, verdict.reason) == ("Failed", "CommandNotFound")
    assert '"jupyter": executable file not found' in verdict.message
    assert check(verdict, "Start") == "Failed"


def test_missing_command_from_run_container_error() -> None:
    verdict = at(12, pod(waiting("RunContainerError", EXEC_NOT_FOUND)))
    assert verdict.reason == "CommandNotFound"


def test_crash_loop_with_exit_code_and_log() -> None:
    last = {"exitCode": 1, "reason": "Error", "finishedAt": "2026-03-01T12:00:30Z"}
    the_pod = pod(
        waiting("CrashLoopBackOff", "back-off 20s restarting failed container"),
        restarts=2,
        last=last,
    )
    log = "\n".join(f"line {i}" for i in range(30)) + "\nModuleNotFoundError: No module named 'x'"
    verdict = at(40, the_pod, log=log)
    assert (verdict.state, verdict.reason) == ("Failed", "CrashedOnStart")
    assert "exited with code 1 (Error, 2 restart(s))" in verdict.message
    assert "No module named 'x'" in verdict.message
    assert "line 5" not in verdict.message  # only the last lines


def test_a_single_restart_before_ready_is_a_crash() -> None:
    last = {"exitCode": 127, "reason": "Error", "message": "/bin/sh: 1: jupyterlab: not found"}
    verdict = at(40, pod(RUNNING, phase="Running", restarts=1, last=last))
    assert verdict.reason == "CrashedOnStart"
    assert "command was not found" in verdict.message
    # No log: the termination message (FallbackToLogsOnError) stands in.
    assert "jupyterlab: not found" in verdict.message


def test_currently_terminated_container_is_a_crash() -> None:
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    verdict = at(30, pod(state, phase="Running"))
    assert verdict.reason == "CrashedOnStart"
    assert "must keep running" in verdict.message


def test_oom_killed() -> None:
    last = {"exitCode": 137, "reason": "OOMKilled"}
    verdict = at(50, pod(waiting("CrashLoopBackOff", ""), restarts=1, last=last))
    assert verdict.reason == "CrashedOnStart"
    assert "more memory than 2Gi (OOMKilled" in verdict.message
    assert "RENKU_ENV_OPERATOR_SMOKE_MEMORY_LIMIT" in verdict.message


# --- never ready, unstable ---


def test_never_ready_names_the_port_and_the_probe_result() -> None:
    events = [
        event(
            "Unhealthy",
            "Readiness probe failed: dial tcp 10.244.1.7:8888: connect: connection refused",
        )
    ]
    log = "Serving on http://127.0.0.1:8888"
    verdict = at(TIMEOUT, pod(RUNNING, phase="Running"), events, log=log)
    assert (verdict.state, verdict.reason) == ("Failed", "NeverReady")
    assert "nothing accepted TCP on 0.0.0.0:8888" in verdict.message
    assert "must bind 0.0.0.0" in verdict.message
    assert "listen on spec.port (8888)" in verdict.message
    assert "connection refused" in verdict.message
    assert "127.0.0.1:8888" in verdict.message
    assert check(verdict, "Ready") == "Failed"
    assert check(verdict, "Start") == "Passed"


def test_ready_then_unready_is_unstable() -> None:
    verdict = at(50, pod(RUNNING, phase="Running", ready=False), first_ready=40)
    assert (verdict.state, verdict.reason) == ("Failed", "Unstable")
    assert check(verdict, "Ready") == "Passed"
    assert check(verdict, "Stable") == "Failed"


def test_ready_then_restarted_is_unstable() -> None:
    last = {"exitCode": 137, "reason": "OOMKilled"}
    the_pod = pod(RUNNING, phase="Running", ready=True, restarts=1, last=last)
    verdict = at(50, the_pod, first_ready=40)
    assert verdict.reason == "Unstable"
    assert verdict.message.startswith("after it became ready, the container was killed")


# --- the pod itself failed ---


def test_evicted() -> None:
    message = (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi. "
        "Container session was using 1900Mi, request is 256Mi, has larger consumption of memory."
    )
    verdict = at(60, pod(RUNNING, phase="Failed", reason="Evicted", message=message))
    assert (verdict.state, verdict.reason) == ("Failed", "Evicted")
    assert "was using 1900Mi" in verdict.message


def test_deadline_exceeded() -> None:
    message = "Pod was active on the node longer than the specified deadline"
    verdict = at(60, pod(RUNNING, phase="Failed", reason="DeadlineExceeded", message=message))
    assert (verdict.state, verdict.reason) == ("Failed", "DeadlineExceeded")


# --- the session URL ---

BASE = "/sessions/smoke-tester-0123456789ab"


@pytest.mark.parametrize(
    ("strip", "default_url", "path"),
    [(False, "/lab", f"{BASE}/lab"), (False, "/", f"{BASE}/"), (True, "/lab", "/")],
)
def test_session_url_path(strip: bool, default_url: str, path: str) -> None:
    assert session_url_path(BASE, default_url, strip) == path


def test_session_url_answers() -> None:
    assert judge_session_url(200, None, BASE, None).result == "Passed"
    inside = judge_session_url(302, f"{BASE}/lab/tree", BASE, None)
    assert inside.result == "Passed"
    relative = judge_session_url(302, "lab/tree", BASE, None)
    assert relative.result == "Passed"
    outside = judge_session_url(302, "/lab", BASE, None)
    assert outside.result == "Failed"
    assert "outside the session's base path" in outside.message


def test_session_url_failures_carry_the_hint() -> None:
    for status in (404, 500, 502):
        verdict = judge_session_url(status, None, BASE, None, path=f"{BASE}/lab")
        assert verdict.result == "Failed"
        assert f"serve under RENKU_BASE_URL_PATH ({BASE})" in verdict.message
        assert "defaultUrl" in verdict.message
        assert "stripPathPrefix" in verdict.message
    assert judge_session_url(403, None, BASE, None).result == "Warning"


def test_session_url_with_strip_path_prefix() -> None:
    assert judge_session_url(302, "/lab", BASE, None, strip_path_prefix=True).result == "Passed"
    missing = judge_session_url(404, None, BASE, None, path="/", strip_path_prefix=True)
    assert "must serve its UI there" in missing.message


def test_session_url_not_checkable_is_skipped() -> None:
    skipped = judge_session_url(None, None, BASE, "connection reset")
    assert (skipped.result, skipped.message) == (
        "Skipped",
        "could not reach the session: connection reset",
    )
    assert judge_session_url(503, None, BASE, "error trying to reach service").result == "Skipped"


def test_api_server_errors_are_told_apart_from_the_pods() -> None:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": "error trying to reach service: dial tcp 10.244.1.7:8888: i/o timeout",
        "reason": "ServiceUnavailable",
        "code": 503,
    }
    json_type = {"Content-Type": "application/json"}
    assert api_server_error(503, json_type, json.dumps(status)) == (
        f"the API server answered HTTP 503 itself: {status['message']}"
    )
    # A proxy in between may relabel the API server's Status: the body tells, not the type.
    relabelled = api_server_error(401, {"Content-Type": "text/plain"}, json.dumps(status))
    assert relabelled is not None
    assert "answered HTTP 401 itself" in relabelled
    assert api_server_error(503, {"Content-Type": "text/html"}, "<h1>oops</h1>") is None
    assert api_server_error(500, json_type, '{"error": "app"}') is None
    assert api_server_error(500, json_type, "not json") is None
    assert api_server_error(200, json_type, json.dumps(status)) is None


def test_proxy_prefix_is_removed_from_redirects() -> None:
    proxied = f"/api/v1/namespaces/envs/pods/smoke-lab-1:8888/proxy{BASE}/lab?x=1"
    assert unproxied_location(proxied) == f"{BASE}/lab?x=1"
    absolute = f"https://10.0.0.1:6443/api/v1/namespaces/envs/pods/p:8888/proxy{BASE}/"
    assert unproxied_location(absolute) == f"{BASE}/"
    assert unproxied_location("/lab") == "/lab"
    assert judge_session_url(302, proxied, BASE, None).result == "Passed"


def test_a_redirect_off_the_pods_proxy_is_no_answer_of_the_session() -> None:
    mine = f"/api/v1/namespaces/envs/pods/smoke-lab-1:8888/proxy{BASE}/lab"
    assert proxy_detour(mine, "envs", "smoke-lab-1") is None
    assert proxy_detour(f"https://10.0.0.1:6443{mine}", "envs", "smoke-lab-1") is None
    assert proxy_detour(f"{BASE}/lab", "envs", "smoke-lab-1") is None  # the pod's own
    for other in (
        "/api/v1/namespaces/envs/pods/smoke-lab-2:8888/proxy/",
        "/api/v1/namespaces/renku/secrets/x",
        "https://10.0.0.1:6443/apis/apps/v1/deployments",
    ):
        detour = proxy_detour(other, "envs", "smoke-lab-1")
        assert detour is not None
        assert "off this pod's proxy" in detour
