"""The warning before a retirement that would leave Renku with no active global environment.

Renku re-seeds its six default global environments whenever none is active (its data-tasks job
checks at start), so archiving or deleting the last active one brings back images nobody asked
for. Advisory: the retirement goes ahead; the list is Renku's, shared by the retirements of
half a minute and kept current by the operator's own writes (renku_sync.ActiveEnvironments).
"""

from __future__ import annotations

import logging

from ..clients.renku_errors import RenkuError
from ..domain import conditions as cond
from .renku_sync import RenkuSync
from .work import Work

logger = logging.getLogger(__name__)


async def warn_if_last_active(
    work: Work, sync: RenkuSync, renku_id: str, action: str
) -> str | None:
    """Post the Warning Event and return its message when `renku_id` is the only active global
    environment in Renku; None otherwise (or when Renku's list cannot be read)."""
    try:
        active = await sync.active.ids()
    except RenkuError as exc:  # the warning must never hold a retirement back
        logger.info("could not list Renku's environments before retiring %s: %s", renku_id, exc)
        return None
    if not active <= {renku_id}:
        return None
    message = cond.last_active_message(renku_id, action)
    work.event("Warning", cond.LAST_ACTIVE_ENVIRONMENT, message)
    return message
