"""Publishing a declared state into Renku's registry: create, adopt, update, recover, retire.

The Renku id is the only identity (names are not unique). A create whose answer was lost is
recovered from the list, never repeated blindly: before a POST, the caller records a create
attempt (time + what it sends) in a claim; a later run finds the environment that attempt made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..api.spec import DeletionPolicy
from ..clients.renku import RenkuClient
from ..clients.renku_errors import RenkuError, RenkuInUseError, RenkuNotFoundError
from ..domain import payload
from ..domain.payload import Declared, FieldDiff
from .ownership import Attempt, AttemptInFlightError, Ownership, parse_time
from .work import ObjectRef, waiting

# How far Renku's creation_date may lie before our recorded attempt: clock skew between the
# operator and Renku, and Renku's dates in whole seconds. Small on purpose: an identical
# environment someone made before the attempt must not pass for ours.
CLOCK_SKEW = timedelta(seconds=5)
# A recorded create is sent only if its POST starts within this long of the record's
# startedAt, measured on the writer's own monotonic clock (no skew there): a claim write (or a
# wait for Renku) slower than this sends nothing. So every POST starts after its record was
# written and ends by startedAt + SEND_WITHIN + the call budget; other replicas add CLOCK_SKEW
# for the difference between their clocks (issue 19, finding 7).
SEND_WITHIN = timedelta(seconds=5)


class AmbiguousRecoveryError(Exception):
    """A lost create matches several environments: a human decides which one is ours."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


class CreateNotSentError(Exception):
    """A recorded create was not sent: its record took too long to write (SEND_WITHIN)."""


class AdoptionError(Exception):
    """spec.renkuId names an environment that does not exist, or that another object owns."""


class RenkuSnapshot:
    """All of Renku's environments, fetched at most once per interval for every object.

    One list request at a time, shared by every pass that needs it; a failed one is shared
    too: every pass waiting on it, and every pass for `retry_after` seconds (doubling while
    Renku keeps failing, up to the interval), gets the same error without asking again.
    The wait holds no reconcile slot (services/work.py)."""

    def __init__(self, client: RenkuClient, max_age: float, retry_after: float = 15.0) -> None:
        self._client = client
        self._max_age = max_age
        self._retry_after = retry_after
        self._lock = asyncio.Lock()
        self._taken = float("-inf")
        self._writes = 0  # bumped by invalidate(), also while a list request is in flight
        self._environments: dict[str, dict[str, Any]] = {}
        self._failure: RenkuError | None = None
        self._failed_until = float("-inf")
        self._failures = 0

    async def get(self) -> dict[str, dict[str, Any]]:
        if not self._stale():
            return self._environments
        async with waiting("renku"), self._lock:
            if self._stale():
                await self._list()
            return self._environments

    def _stale(self) -> bool:
        now = time.monotonic()
        if self._failure is not None and now < self._failed_until:
            raise self._failure
        return now - self._taken >= self._max_age

    async def _list(self) -> None:
        started, writes = time.monotonic(), self._writes
        try:
            listed = await self._client.list_environments(include_archived=True)
        except RenkuError as exc:
            self._failures += 1
            backoff = min(self._retry_after * 2.0 ** min(self._failures - 1, 16), self._max_age)
            self._failure, self._failed_until = exc, time.monotonic() + backoff
            raise
        self._failure, self._failures = None, 0
        self._environments = {env["id"]: env for env in listed}
        # Age counts from the request, and a write that overlapped it makes the list
        # stale at once: it may predate the write, and must not hide it for an interval.
        self._taken = started if writes == self._writes else float("-inf")

    def invalidate(self) -> None:
        """Our own write changed Renku: the next get() lists again."""
        self._writes += 1
        self._taken = float("-inf")


class ActiveEnvironments:
    """Which global environments are active in Renku, for the last-active warning.

    One list request shared by every retirement that asks within `max_age` (a thousand
    deletions cost one list, not a thousand lists of a thousand environments), kept current
    by the operator's own retirements and creates; a failed list is shared for `max_age` too.
    What an admin changes in the panel shows within `max_age`: the warning is advisory."""

    def __init__(self, client: RenkuClient, max_age: float = 30.0) -> None:
        self._client = client
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._ids: set[str] = set()
        self._taken = float("-inf")
        self._failure: RenkuError | None = None
        self._retired_meanwhile: set[str] = set()  # while a list is in flight
        self._listing = False

    async def ids(self) -> set[str]:
        """The active ids; RenkuError when Renku's list cannot be read."""
        if not self._stale():
            return self._current()
        async with waiting("renku"), self._lock:
            if self._stale():
                await self._list()
            return self._current()

    def retired(self, env_id: str) -> None:
        self._ids.discard(env_id)
        if self._listing:
            self._retired_meanwhile.add(env_id)

    def created(self, env_id: str) -> None:
        self._ids.add(env_id)

    def _current(self) -> set[str]:
        if self._failure is not None:
            raise self._failure
        return set(self._ids)

    def _stale(self) -> bool:
        return time.monotonic() - self._taken >= self._max_age

    async def _list(self) -> None:
        started = time.monotonic()
        self._listing, self._retired_meanwhile = True, set()
        try:
            listed = await self._client.list_environments(include_archived=False)
        except RenkuError as exc:
            self._failure, self._taken = exc, started
            return
        finally:
            self._listing = False
        active = {str(e.get("id")) for e in listed if not e.get("is_archived")}
        self._ids = active - self._retired_meanwhile
        self._failure, self._taken = None, started


class RenkuSync:
    """The only place that writes to Renku: create, update, retire. Every write to an existing
    environment is verified first against the operator's ownership records."""

    def __init__(
        self,
        client: RenkuClient,
        snapshot: RenkuSnapshot,
        ownership: Ownership,
        active: ActiveEnvironments | None = None,
    ) -> None:
        self.client = client
        self.snapshot = snapshot
        self.ownership = ownership
        self.active = active or ActiveEnvironments(client)

    def answered(self, uid: str, attempt: Attempt) -> None:
        """This process saw the POST of `attempt` answered: it is not in flight any more."""
        self.ownership.objects.get(uid).answered_attempt = attempt.started_at

    def in_flight_until(self, uid: str, attempt: Attempt) -> datetime | None:
        """When a recorded create stops counting as maybe in flight (None: it does not).

        The POST starts within SEND_WITHIN of startedAt (after its record was written) and is
        cut off after the client's whole budget (timeout x attempts + backoff); clock skew
        between replicas is added on top.
        """
        state = self.ownership.objects.peek(uid)
        if state is not None and state.answered_attempt == attempt.started_at:
            return None
        until = self.window_end(attempt)
        return until if datetime.now(UTC) < until else None

    def window_end(self, attempt: Attempt) -> datetime:
        """When a recorded create certainly is not on its way any more, whoever sent it."""
        budget = timedelta(seconds=self.client.call_budget)
        return attempt.started + SEND_WITHIN + budget + CLOCK_SKEW

    async def settle(self, uid: str, attempt: Attempt) -> str | None:
        """The environment a recorded create made; None when it certainly made none.

        AmbiguousRecoveryError for several candidates; AttemptInFlightError while it may still
        be on its way (no second POST before it has expired)."""
        found = await self.candidates(attempt)
        if len(found) > 1:
            raise AmbiguousRecoveryError(found)
        if found:
            return found[0]
        until = self.in_flight_until(uid, attempt)
        if until is not None:
            raise AttemptInFlightError(
                f"a create recorded at {attempt.started_at} may still be on its way to Renku; "
                f"no second one is sent before {until.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
        return None

    async def adopt(self, env_id: str) -> dict[str, Any]:
        try:
            async with waiting("renku"):
                return await self.client.get_environment(env_id)
        except RenkuNotFoundError:
            raise AdoptionError(
                f"spec.renkuId {env_id} does not exist in Renku: copy the id from the admin "
                "panel, or remove spec.renkuId to create a new environment"
            ) from None

    async def fetch(self, env_id: str) -> dict[str, Any] | None:
        try:
            async with waiting("renku"):
                return await self.client.get_environment(env_id)
        except RenkuNotFoundError:
            return None

    async def candidates(self, attempt: Attempt) -> list[str]:
        """Environments a lost create may have made: what the attempt sent, created no earlier
        than it started (minus clock skew), owned by no one. Oldest first."""
        self.snapshot.invalidate()
        earliest = attempt.started - CLOCK_SKEW
        matching = [
            env
            for env in (await self.snapshot.get()).values()
            if _created_after(env, earliest)
            and not payload.diff(attempt.environment, payload.observed_state(env))
        ]
        matching.sort(key=lambda env: str(env.get("creation_date", "")))
        # Only the few that match are looked up (one GET each), never every record: with many
        # objects recovering at once (a Renku outage), listing all records each time is O(n^2).
        return [
            str(env["id"])
            for env in matching
            if await self.ownership.holder(str(env["id"])) is None
        ]

    async def create(self, declared: Declared, recorded: Attempt) -> str:
        """POST; the caller has recorded the attempt first (CreateNotSentError if that took
        longer than SEND_WITHIN: then nothing is sent)."""
        async with waiting("renku"):
            if recorded.stamped is None:
                raise CreateNotSentError("the create was not recorded by this process")
            late = time.monotonic() - recorded.stamped
            if late > SEND_WITHIN.total_seconds():
                raise CreateNotSentError(
                    f"recording the create took {late:.1f}s (more than "
                    f"{SEND_WITHIN.total_seconds():g}s): not sent, so that no other replica "
                    "takes it for expired while it could still land"
                )
            created = await self.client.create_environment(payload.create_payload(declared))
        self.snapshot.invalidate()
        if declared.get("is_archived") is not True:
            self.active.created(str(created["id"]))
        return str(created["id"])

    async def update(self, owner: ObjectRef, env_id: str, changes: list[FieldDiff]) -> None:
        await self.ownership.verify(owner, env_id)
        async with waiting("renku"):
            await self.client.patch_environment(env_id, payload.patch_payload(changes))
        self.snapshot.invalidate()
        archived = next((c for c in changes if c.field == "is_archived"), None)
        if archived is not None:
            (self.active.retired if archived.declared else self.active.created)(env_id)

    async def retire(
        self, owner: ObjectRef, env_id: str, policy: DeletionPolicy
    ) -> tuple[str, str]:
        """Apply a deletion policy; returns the Event's reason and message."""
        if policy == "Orphan":
            return "Orphaned", f"Left environment {env_id} in Renku (deletionPolicy Orphan)."
        await self.ownership.verify(owner, env_id)
        self.snapshot.invalidate()
        if policy == "Delete":
            try:
                async with waiting("renku"):
                    await self.client.delete_environment(env_id)
            except RenkuInUseError:
                async with waiting("renku"):
                    await self.client.archive_environment(env_id)
                self.active.retired(env_id)
                return "ArchivedInUse", (
                    f"Environment {env_id} is still used by session launchers, so it was "
                    "archived instead of deleted (existing launchers keep working)."
                )
            self.active.retired(env_id)
            return "Deleted", f"Deleted environment {env_id} from Renku."
        try:
            async with waiting("renku"):
                await self.client.archive_environment(env_id)
        except RenkuNotFoundError:
            self.active.retired(env_id)
            return "AlreadyGone", f"Environment {env_id} no longer exists in Renku."
        self.active.retired(env_id)
        return "Archived", f"Archived environment {env_id} in Renku."


def _created_after(env: Mapping[str, Any], moment: datetime) -> bool:
    created = env.get("creation_date")
    if not isinstance(created, str):
        return False
    try:
        return parse_time(created) >= moment
    except ValueError:
        return False
