"""What a smoke test checks once its pod is ready: the session URL and the mount checks.

Also reads the logs the verdict quotes. Used by `SmokeTester` (smoketest.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.status import CheckStatus
from ..clients.kube import KubeError
from ..config import Settings
from ..domain import smoke_pods as pods_
from ..domain import smokepod as sp
from ..domain.probe import IMAGE_CHECKS, MOUNTED_CHECKS, build_probe_pod, probe_checks, skipped
from ..domain.session_url import proxy_detour
from ..domain.smoke_pods import PROBE_SUFFIX, STARTED_AT
from ..domain.verdict import api_server_error, judge_session_url, session_status, session_url_path
from .smoke_run import KubeApi, Run


class ReadyChecks:
    """The checks that need a ready pod, and log reading."""

    def __init__(self, kube: KubeApi, settings: Settings, probe_timeout_seconds: int) -> None:
        self._kube = kube
        self._settings = settings
        self._probe_timeout = probe_timeout_seconds

    async def probe(self, run: Run, session_name: str) -> list[CheckStatus] | None:
        """The mount checks: None while the probe pod runs (created here when missing)."""
        name = session_name + PROBE_SUFFIX
        pod = await self._kube.get_pod(run.namespace, name)
        if pod is None:
            body = build_probe_pod(
                name=name,
                namespace=run.namespace,
                owner=run.owner,
                spec=run.spec,
                image=run.image,
                image_workdir=run.image_workdir,
                settings=self._settings,
                labels=run.labels("probe"),
                timeout_seconds=self._probe_timeout,
                annotations={STARTED_AT: run.now.isoformat()},
            )
            await self._kube.create_pod(run.namespace, body)
            return None
        terminated = pods_.terminated_containers(pod)
        try:
            logs = {c: await self.log(run.namespace, name, c) for c in terminated}
        except KubeError as exc:  # the node's kubelet out of reach: the verdict does without
            why = f"the probe pod's log could not be read ({exc})"
            return skipped([*MOUNTED_CHECKS, *IMAGE_CHECKS], why)
        checks = probe_checks(pod, logs)
        started = pods_.parse_time(pods_.annotation(pod, STARTED_AT)) or run.now
        if checks is None and (run.now - started).total_seconds() >= self._probe_timeout:
            why = f"the probe pod did not finish within {self._probe_timeout}s ({pods_.phase(pod)})"
            return skipped([*MOUNTED_CHECKS, *IMAGE_CHECKS], why)
        return checks

    async def session_url(self, run: Run, pod: Mapping[str, Any]) -> CheckStatus:
        """GET the page Renku opens, through the API server's pod proxy, and judge the answer."""
        session = sp.SessionSettings.of(run.spec, run.image_workdir)
        base = pods_.env_value(pod, "RENKU_BASE_URL_PATH") or "/"
        path = session_url_path(base, session.default_url, session.strip_path_prefix)
        try:
            answer = await self._kube.proxy_get(run.namespace, pods_.name(pod), session.port, path)
        except KubeError as exc:  # no answer at all: the check cannot say anything
            return judge_session_url(None, None, base, str(exc), path=path)
        location = next((v for k, v in answer.headers.items() if k.lower() == "location"), None)
        error = api_server_error(answer.status, answer.headers, answer.body) or proxy_detour(
            location, run.namespace, pods_.name(pod)
        )
        return judge_session_url(
            answer.status,
            location,
            base,
            error,
            path=path,
            strip_path_prefix=session.strip_path_prefix,
        )

    async def log_tail(self, namespace: str, pod: Mapping[str, Any]) -> str | None:
        """The log the verdict may quote: of the crashed instance, or of a server not ready."""
        container = session_status(pod) or {}
        state = container.get("state") or {}
        terminated = "terminated" in state
        crashed_before = int(container.get("restartCount") or 0) > 0 and not terminated
        not_ready = "running" in state and not container.get("ready")
        if not (terminated or crashed_before or not_ready):
            return None
        return await self.log(namespace, pods_.name(pod), sp.SESSION_CONTAINER, crashed_before)

    async def log(
        self, namespace: str, name: str, container: str, previous: bool = False
    ) -> str | None:
        """The last 50 lines of a container's log; None when it has none (yet)."""
        try:
            return await self._kube.read_pod_log(
                namespace, name, container, tail_lines=50, previous=previous
            )
        except KubeError as exc:
            if exc.status == 400:  # no such log (yet): the verdict does without it
                return None
            raise
