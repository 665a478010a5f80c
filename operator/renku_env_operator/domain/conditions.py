"""metav1.Condition bookkeeping as pure functions, and the summary `Ready` condition.

Ready is derived, never set by hand: it is False with the reason of the first specific condition
that is False, Unknown while any is Unknown, True when all are True. Every reason the operator
uses is listed here, with whether it needs a human (the ArgoCD health check reads the same list).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from ..api.status import Condition, ConditionStatus

READY = "Ready"
VALIDATED = "Validated"
IMAGE_VERIFIED = "ImageVerified"
SMOKE_TESTED = "SmokeTested"
SYNCED = "Synced"
# Order matters: Ready reports the first blocking one.
SPECIFIC = (VALIDATED, IMAGE_VERIFIED, SMOKE_TESTED, SYNCED)

# Synced stays True (the retirement was done) with this reason, and a Warning Event says it:
# Renku re-seeds its default global environments whenever none is active.
LAST_ACTIVE_ENVIRONMENT = "LastActiveEnvironment"
# Synced False: a status.renkuId from before the records names an environment changed since.
MIGRATION_REFUSED = "MigrationRefused"


def last_active_message(renku_id: str, action: str) -> str:
    return (
        f"{action} environment {renku_id} leaves Renku with no active global environment: "
        "Renku re-seeds its six default environments (images without a pinned tag) the next "
        "time its data-tasks job starts. Keep one active GlobalEnvironment (apply the "
        "replacement before retiring the last one), or archive the seeded ones afterwards."
    )


# Reasons of a False condition that only a human can resolve (ArgoCD: Degraded).
NEEDS_HUMAN = frozenset(
    {
        "Invalid",
        "ImageNotFound",
        "ImageNotPublic",
        "NoMatchingPlatform",
        "RenkuCannotPull",
        "PoolPlatformMissing",
        "LatestTag",
        "NoTag",
        "NonSemverTag",
        "InvalidImageReference",
        "ImageCheckFailed",
        "RegistryNotAllowed",
        "RegistryResponseTooLarge",
        "SmokeTestFailed",
        "RejectedByRenku",
        "RenkuNotConfigured",
        "CredentialsRejected",
        "AdoptionFailed",
        "AdoptionNotAllowed",
        "DeletionNotAllowed",
        "OwnershipConflict",
        "RecoveryAmbiguous",
        "Drifted",
        "DeletionBlocked",
        MIGRATION_REFUSED,
    }
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    *,
    at: str | None = None,
) -> list[Condition]:
    """Conditions with one of them set; lastTransitionTime moves only when status changes."""
    previous = find(conditions, type_)
    moved = previous is None or previous.status != status
    transition = (at or now()) if moved or previous is None else previous.last_transition_time
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32768],
        last_transition_time=transition,
        observed_generation=generation,
    )
    others = [c for c in conditions if c.type != type_]
    return sorted([*others, updated], key=_order)


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def initial(conditions: Sequence[Condition], generation: int | None) -> list[Condition]:
    """On the first visit every condition exists, Unknown until its work is done."""
    result = list(conditions)
    for type_ in SPECIFIC:
        if find(result, type_) is None:
            result = set_condition(
                result, type_, "Unknown", "Pending", "Not checked yet.", generation
            )
    return with_ready(result, generation)


def with_ready(conditions: Sequence[Condition], generation: int | None) -> list[Condition]:
    """Recompute the summary Ready condition from the specific ones."""
    specific = [c for type_ in SPECIFIC if (c := find(conditions, type_)) is not None]
    blocking = next((c for c in specific if c.status == "False"), None)
    pending = next((c for c in specific if c.status == "Unknown"), None)
    if blocking is not None:
        status: ConditionStatus = "False"
        reason, message = blocking.reason, f"{blocking.type}: {blocking.message}"
    elif pending is not None:
        status, reason = "Unknown", "Progressing"
        message = f"{pending.type}: {pending.message}"
    else:
        status, reason = "True", "Ready"
        message = "Validated, tested and in sync with Renku."
    return set_condition(conditions, READY, status, reason, message, generation)


def _order(condition: Condition) -> int:
    types = (READY, *SPECIFIC)
    return types.index(condition.type) if condition.type in types else len(types)
