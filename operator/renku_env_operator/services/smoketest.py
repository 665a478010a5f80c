"""Smoke tests: start a pod that behaves like a Renku session, watch it, judge it, clean up.

Level-based: `SmokeTester.step` looks at the cluster and the last status and does the next
piece of work, so the handler calls it again until the result is final. Everything a restarted
operator needs lives on the pods (labels and annotations), never in memory: it finds its pod
again by labels, and a verdict that was reached but not yet written is read back from the pod.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import CheckStatus, SmokeTestStatus
from ..clients.kube import KubeError
from ..config import Settings
from ..domain import smoke_pods as pods_
from ..domain import smokepod as sp
from ..domain.smoke_pods import FIRST_READY_AT, PROBE_SUFFIX, RESULT, STARTED_AT
from ..domain.verdict import judge
from ..metrics import SMOKE_TEST_DURATION, SMOKE_TESTS
from .smoke_checks import ReadyChecks
from .smoke_run import KubeApi, Run, SmokeTarget, Target

__all__ = ["KubeApi", "SmokeTarget", "SmokeTester", "Target"]
logger = logging.getLogger(__name__)
# A check that fails after the pod passed: the smoke test's reason.
_REASON_OF_CHECK = {
    "SessionUrl": "SessionUrlNotServed",
    "MountWritable": "MountNotWritable",
    "User": "UserOverridden",
}


class SmokeTester:
    """Runs smoke tests, at most `settings.smoke_max_concurrent` at once across the cluster."""

    def __init__(
        self,
        kube: KubeApi,
        settings: Settings,
        *,
        probe_timeout_seconds: int = 120,
        deadline_margin_seconds: int = 300,
    ) -> None:
        self._kube = kube
        self._settings = settings
        self._probe_timeout = probe_timeout_seconds
        self._checks = ReadyChecks(kube, settings, probe_timeout_seconds)
        self._margin = deadline_margin_seconds
        # Around count + create: two objects must not both take the last free slot.
        self._slots = asyncio.Lock()

    @property
    def namespace(self) -> str:
        """Where the smoke pods live."""
        return self._settings.smoke_pod_namespace

    async def step(
        self,
        target: Target,
        spec: GlobalEnvironmentSpec,
        image: str,
        previous: SmokeTestStatus | None,
        *,
        image_workdir: str | None = None,
        now: datetime | None = None,
        purpose: sp.Purpose = "current",
    ) -> SmokeTestStatus:
        """Do the next piece of work of the smoke test of `image`; return where it stands.

        A final `previous` for the same generation and image is returned as it is: pass
        `previous=None` to test again. `image_workdir` is the image's WORKDIR (Renku uses it
        when the spec sets no working directory); `purpose="update"` tests an update candidate
        alongside the current image.
        """
        same = previous is not None and (previous.generation, previous.image) == (
            target.generation,
            image,
        )
        if previous is not None and same and _is_final(previous):
            return previous
        run = Run.of(
            self._settings,
            target,
            spec,
            image,
            image_workdir=image_workdir,
            purpose=purpose,
            now=now or datetime.now(UTC),
        )
        pods = await self._kube.list_pods(self.namespace, pods_.selector(target.uid, purpose))
        mine = [p for p in pods if pods_.holds_slot(p) and self._is_current(p, run)]
        chosen = min(mine, key=pods_.name) if mine else None
        await self._delete_all(pods_.stale(pods, pods_.name(chosen) if chosen else None))
        if chosen is not None:
            return await self._observe(run, chosen)
        if previous is not None and not _is_final(previous) and previous.pod_name:
            kept = next((p for p in pods if pods_.name(p) == previous.pod_name), None)
            recovered = pods_.stored_result(kept, target.generation, image)
            if recovered is not None:  # the verdict was reached, the status never written
                return recovered
        return await self._start(run)

    async def collect_garbage(
        self, now: datetime | None = None, live_uids: Collection[str] | None = None
    ) -> list[str]:
        """Delete failed pods kept long enough, pods of superseded generations, probe pods of
        finished tests and, given `live_uids`, pods of GlobalEnvironments that are gone.
        Returns the names deleted."""
        listed = await self._kube.list_pods(self.namespace, pods_.OURS)
        keep = self._settings.smoke_keep_failed_seconds
        doomed = pods_.garbage(listed, now or datetime.now(UTC), keep, live_uids)
        await self._delete_all(doomed)
        return doomed

    async def cancel(self, uid: str, purpose: sp.Purpose | None = None) -> list[str]:
        """Delete every smoke pod of one GlobalEnvironment (deleted, or its test disabled)."""
        selector = pods_.selector(uid, purpose)
        names = [pods_.name(p) for p in await self._kube.list_pods(self.namespace, selector)]
        await self._delete_all(names)
        return names

    @staticmethod
    def _is_current(pod: Mapping[str, Any], run: Run) -> bool:
        return pods_.is_current(pod, run.target.generation, run.spec_hash)

    async def _start(self, run: Run) -> SmokeTestStatus:
        async with self._slots:
            # One session pod (and its probe) per object and purpose: a pod another step made
            # meanwhile is used, and the failed pod of an earlier test (stopped, kept for
            # `kubectl logs`) makes room for the new one. So a flood of retests costs one pod.
            own = await self._kube.list_pods(
                run.namespace, pods_.selector(run.target.uid, run.purpose)
            )
            running = next((p for p in own if pods_.holds_slot(p)), None)
            if running is not None:
                message = f"Pod {pods_.name(running)} is already testing this environment."
                return run.status("Running", "Created", message, pod_name=pods_.name(running))
            await self._delete_all([pods_.name(p) for p in own])
            listed = await self._kube.list_pods(run.namespace, pods_.HOLDS_SLOT)
            busy = [p for p in listed if pods_.alive(p)]
            limit = self._settings.smoke_max_concurrent
            if len(busy) >= limit:
                message = f"Waiting for a free smoke-test slot ({len(busy)} running / {limit} max)."
                return run.status("Pending", "WaitingForSlot", message)
            name = sp.smoke_pod_name(run.target.name, run.spec_hash, secrets.token_hex(3))
            body = sp.build_smoke_pod(
                name=name,
                namespace=run.namespace,
                owner=run.owner,
                spec=run.spec,
                image=run.image,
                image_workdir=run.image_workdir,
                generation=run.target.generation,
                settings=self._settings,
                labels=run.labels("session"),
                timeout_seconds=run.timeout + run.stable + self._probe_timeout + self._margin,
                annotations={STARTED_AT: run.now.isoformat(), pods_.IMAGE: run.image},
            )
            await self._kube.create_pod(run.namespace, body)
        message = f"Created pod {name} in {run.namespace}; pulling {run.image}."
        started = pods_.rfc3339(run.now)
        return run.status("Running", "Created", message, pod_name=name, started_at=started)

    async def _observe(self, run: Run, pod: Mapping[str, Any]) -> SmokeTestStatus:
        name = pods_.name(pod)
        created = pods_.dig(pod, "metadata", "creationTimestamp")
        started = pods_.parse_time(pods_.annotation(pod, STARTED_AT) or created) or run.now
        first_ready = pods_.parse_time(pods_.annotation(pod, FIRST_READY_AT))
        events = await self._kube.list_events_for(run.namespace, name)
        # The log tail only decorates a verdict: reading it must never hold the verdict back
        # (the API server cannot always reach the node's kubelet).
        unread: str | None = None
        try:
            tail = await self._checks.log_tail(run.namespace, pod)
        except KubeError as exc:
            tail, unread = None, f"The container's log could not be read ({exc})."
        verdict = judge(
            pod,
            events,
            tail,
            now=run.now,
            started_at=started,
            timeout_seconds=run.timeout,
            stable_seconds=run.stable,
            first_ready_at=first_ready,
        )
        if verdict.first_ready_at is not None and first_ready is None:
            stamp = {FIRST_READY_AT: verdict.first_ready_at.isoformat()}
            await self._kube.patch_pod_metadata(run.namespace, name, annotations=stamp)
        if verdict.state == "Failed":
            reason, message = verdict.reason, verdict.message
            if unread is not None:
                message = f"{message} {unread}"
            return await self._finish(run, pod, started, reason, message, verdict.checks)
        # The mount checks run while the pod proves it stays ready.
        probe = await self._checks.probe(run, name) if verdict.first_ready_at is not None else None
        fields = {"pod_name": name, "started_at": pods_.rfc3339(started), "checks": verdict.checks}
        if verdict.state == "Running":
            return run.status("Running", verdict.reason, verdict.message, **fields)
        if probe is None:
            message = "Ready and stable; waiting for the mount checks to finish."
            return run.status("Running", "CheckingMounts", message, **fields)
        checks = [*verdict.checks, await self._checks.session_url(run, pod), *probe]
        failed = next((c for c in checks if c.result == "Failed"), None)
        if failed is not None:
            reason = _REASON_OF_CHECK.get(failed.name, f"{failed.name}Failed")
            return await self._finish(run, pod, started, reason, failed.message, checks)
        warnings = "; ".join(f"{c.name}: {c.message}" for c in checks if c.result == "Warning")
        message = verdict.message + (f" Warnings: {warnings}" if warnings else "")
        return await self._finish(run, pod, started, "Passed", message, checks)

    async def _finish(
        self,
        run: Run,
        pod: Mapping[str, Any],
        started: datetime,
        reason: str,
        message: str,
        checks: Sequence[CheckStatus],
    ) -> SmokeTestStatus:
        name, passed = pods_.name(pod), reason == "Passed"
        duration = max(0.0, (run.now - started).total_seconds())
        result = run.status(
            "Passed" if passed else "Failed",
            reason,
            message,
            pod_name=name,
            started_at=pods_.rfc3339(started),
            finished_at=pods_.rfc3339(run.now),
            duration_seconds=round(duration, 1),
            checks=list(checks),
        )
        await self._kube.delete_pod(run.namespace, name + PROBE_SUFFIX)
        if passed:
            await self._kube.delete_pod(run.namespace, name)
        else:  # kept for `kubectl logs`; no longer holds a slot
            await self._kube.patch_pod_metadata(
                run.namespace,
                name,
                labels={sp.FINISHED: str(int(run.now.timestamp()))},
                annotations={RESULT: result.model_dump_json(by_alias=True)},
            )
            # With the verdict (and its log tail) stored, stop the containers at once: a
            # failed image does not run on until its deadline, only its pod object stays.
            try:
                await self._kube.stop_pod(run.namespace, name)
            except KubeError as error:  # already gone or terminal: nothing left running
                logger.info("could not stop failed smoke pod %s: %s", name, error)
        SMOKE_TESTS.labels(reason=reason).inc()
        SMOKE_TEST_DURATION.observe(duration)
        return result

    async def _delete_all(self, names: Collection[str]) -> None:
        for name in names:
            await self._kube.delete_pod(self.namespace, name)


def _is_final(status: SmokeTestStatus | None) -> bool:
    return status is not None and status.result in ("Passed", "Failed")
