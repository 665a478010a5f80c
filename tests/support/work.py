"""One reconcile's scratch state (`Work`) in publisher and ownership tests: a fresh one, the
next one once this one's outcome is stored, and what it says."""

from __future__ import annotations

from renku_env_operator.api.status import GlobalEnvironmentStatus
from renku_env_operator.domain import conditions as cond
from renku_env_operator.services.work import ObjectRef, Work


def work_for(ref: ObjectRef, status: GlobalEnvironmentStatus | None = None) -> Work:
    """A first reconcile of `ref` (with the status the API server holds)."""
    status = status or GlobalEnvironmentStatus()
    return Work(ref, status, cond.initial(status.conditions, ref.generation))


def applied(work: Work) -> Work:
    """The next reconcile's Work, once what this one produced is stored (same record)."""
    status = work.status.model_copy(update={"conditions": work.conditions})
    return Work(work.ref, status, list(work.conditions), memo=work.memo)


def synced(work: Work) -> tuple[str, str, str]:
    """The Synced condition: status, reason, message."""
    found = cond.find(work.conditions, cond.SYNCED)
    assert found is not None
    return found.status, found.reason, found.message


def event_reasons(work: Work) -> list[str]:
    return [event.reason for event in work.events]
