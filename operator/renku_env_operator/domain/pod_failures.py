"""Why a container did not start or did not keep running, in words an admin can act on.

Pure helpers of the smoke-test verdict (verdict.py). Pull errors are recognised from the
texts container runtimes really produce (containerd, CRI-O, Docker via cri-dockerd), in the
container's waiting message and in the kubelet's `Failed` Events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Reason = tuple[str, str]
"""(CamelCase reason, message)."""

DEFINITIVE_PULL_REASONS = frozenset(
    {"ImageNotFound", "ImageNotPublic", "NoMatchingPlatform", "ImageInvalid"}
)
"""Pull failures that retrying cannot fix: the verdict need not wait for the timeout."""

_PLATFORM = ("no match for platform", "no matching manifest")
_NOT_PUBLIC = (
    "401 unauthorized",
    "403 forbidden",
    "pull access denied",
    "may require authorization",
    "authorization failed",
    "insufficient_scope",
    "requested access to the resource is denied",
    "authentication required",
    "unauthorized",
    "denied:",
)
_NOT_FOUND = ("not found", "manifest unknown", "name unknown", "code = notfound")
_RATE_LIMITED = ("toomanyrequests", "429 too many requests", "rate limit")
_PULL_WAITING = ("ErrImagePull", "ImagePullBackOff")
_MAX_DETAIL = 400


def classify_pull_error(text: str) -> Reason:
    """The reason and message for one pull error text."""
    lowered, detail = text.lower(), _short(text)
    if any(s in lowered for s in _PLATFORM):
        return "NoMatchingPlatform", (
            f"the image has no build for the node's platform ({detail}): build and push it for "
            "the cluster's architecture (e.g. docker buildx build --platform linux/amd64)"
        )
    if any(s in lowered for s in _NOT_PUBLIC):
        return "ImageNotPublic", (
            f"the registry refused to serve the image without credentials ({detail}): "
            "authentication required, or the repository does not exist; global environment "
            "images must be public, because Renku pulls them without credentials: make the "
            "repository public, or check spec.image for typos"
        )
    if any(s in lowered for s in _NOT_FOUND):
        return "ImageNotFound", (
            f"the registry has no such image ({detail}): check spec.image for typos and that "
            "the tag was pushed"
        )
    hint = (
        "the registry's pull rate limit was hit; retry later or use a mirror"
        if any(s in lowered for s in _RATE_LIMITED)
        else "check that the registry is reachable from the cluster's nodes"
    )
    return "ImagePullFailed", f"pulling the image failed ({detail}): {hint}"


def pull_failure(
    container: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> Reason | None:
    """The pull error of a container waiting for its image, None when it is not."""
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason, message = waiting.get("reason"), str(waiting.get("message") or "")
    if reason == "InvalidImageName":
        return "ImageInvalid", f"the kubelet cannot parse the image reference: {_short(message)}"
    if reason not in _PULL_WAITING:
        return None
    texts = [message, *(str(e.get("message") or "") for e in events if _is_pull_error(e))]
    found = [classify_pull_error(c) for t in texts if (c := _pull_cause(t))]
    definitive = [f for f in found if f[0] in DEFINITIVE_PULL_REASONS]
    if definitive or found:
        return (definitive or found)[-1]
    return "ImagePullFailed", f"pulling the image failed: {_short(message) or reason}"


def _pull_cause(text: str) -> str | None:
    # ImagePullBackOff says "Back-off pulling image" (newer kubelets append the cause after
    # "ErrImagePull: "); without it the cause is only in the Events.
    if not text.startswith("Back-off"):
        return text or None
    _, found, cause = text.partition("ErrImagePull:")
    return cause.strip() if found and cause.strip() else None


def container_failure(
    pod: Mapping[str, Any], container: Mapping[str, Any], log_tail: str | None
) -> Reason | None:
    """Why the container did not start or stopped (a restart counts), None when it did not."""
    state = container.get("state") or {}
    restarts = int(container.get("restartCount") or 0)
    waiting = state.get("waiting") or {}
    reason, message = waiting.get("reason"), str(waiting.get("message") or "")
    if reason == "CreateContainerConfigError":
        if "runasnonroot" in message.lower():
            return "RunAsNonRootViolation", (
                f"the kubelet refused to start the container: {_short(message)}; Renku never "
                "runs sessions as root: set uid (and gid) to the image's non-root user, or "
                "give the image a numeric non-root USER"
            )
        return "ContainerConfigError", f"the kubelet cannot create the container: {_short(message)}"
    if reason in ("CreateContainerError", "RunContainerError"):
        return _start_error(message)
    # The current instance has stopped, or an earlier one did (then it was restarted).
    last = (container.get("lastState") or {}).get("terminated")
    terminated: Mapping[str, Any] = state.get("terminated") or last or {}
    if not (state.get("terminated") or restarts > 0 or reason == "CrashLoopBackOff"):
        return None
    if terminated.get("reason") in ("StartError", "ContainerCannotRun"):
        return _start_error(str(terminated.get("message") or ""))
    return "CrashedOnStart", terminated_failure(terminated, pod, log_tail, restarts)


def terminated_failure(
    terminated: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    log_tail: str | None,
    restarts: int = 0,
) -> str:
    """What a terminated container state says, with a hint and the last log lines."""
    code, reason = terminated.get("exitCode"), terminated.get("reason") or "Error"
    times = f", {restarts} restart(s)" if restarts else ""
    if reason == "OOMKilled":
        limit = _memory_limit(pod) or "its limit"
        text = (
            f"the container was killed for using more memory than {limit} (OOMKilled{times}): "
            "the server needs more memory at start-up than the smoke pod's limit "
            "(RENKU_ENV_OPERATOR_SMOKE_MEMORY_LIMIT); sessions with less memory fail the same way"
        )
    else:
        text = f"the container exited with code {code} ({reason}{times}): {_exit_hint(code)}"
    logs = log_tail if log_tail and log_tail.strip() else terminated.get("message")
    return text + _tail(logs)


def _start_error(message: str) -> Reason:
    lowered = message.lower()
    if "executable file not found" in lowered or ("exec:" in lowered and "no such file" in lowered):
        return "CommandNotFound", (
            f"the container runtime could not run the command: {_short(message)}; the program "
            "in spec.command (or the image's ENTRYPOINT/CMD) does not exist in the image"
        )
    return (
        "CrashedOnStart",
        f"the container runtime could not start the container: {_short(message)}",
    )


def _exit_hint(code: Any) -> str:
    hints = {
        0: "a session server must keep running, but it exited; check command/args (a shell as "
        "CMD exits at once without a terminal)",
        126: "the command is not executable; check spec.command/args and file permissions",
        127: "the command was not found; check spec.command/args and the image's PATH",
        137: "it was killed (SIGKILL), likely for memory; check the memory it needs",
        139: "it crashed (segmentation fault)",
    }
    default = "the server failed to start; run the image locally as the session's uid/gid with "
    return hints.get(code, default + "the same command to see why")


def _is_pull_error(event: Mapping[str, Any]) -> bool:
    message = str(event.get("message") or "")
    return event.get("reason") in ("Failed", "ErrImagePull") and "pull" in message.lower()


def _memory_limit(pod: Mapping[str, Any] | None) -> str | None:
    containers = ((pod or {}).get("spec") or {}).get("containers") or [{}]
    limit = ((containers[0].get("resources") or {}).get("limits") or {}).get("memory")
    return str(limit) if limit else None


def _tail(log: Any, lines: int = 10) -> str:
    if not log or not str(log).strip():
        return ""
    tail = "\n".join(str(log).strip().splitlines()[-lines:])[-1500:]
    return f". Last log lines:\n{tail}"


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else f"{text[: _MAX_DETAIL - 3]}..."
