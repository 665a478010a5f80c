"""`GlobalEnvironmentClaim`: the operator's own records of who owns which Renku environment.

Claims live only in the operator's namespace, which only the operator writes (users write
GlobalEnvironments, and their status if they may, never these). Three kinds, told apart by name:

- `env-<renku id, lower-cased>`: the GlobalEnvironment (namespace, name, uid) that owns that
  Renku environment, and the last version of it that passed its checks. Created with a POST, so
  the API server itself guarantees one owner per id, across restarts and HA handovers.
- `attempt-<GlobalEnvironment uid>`: a create in Renku that is not confirmed yet: when it
  started and what it sent. Written before the POST; a lost answer is recovered from it.
- `ownership-era`: a marker made at the first start with records: it lists the
  GlobalEnvironments that then named a Renku id in their status without a record (published by
  a version that kept none); only those may migrate that id into a record, once.

Claims whose owner is gone without its clean-up (force-deleted) are taken over by a new object
of the same namespace and name, or collected per the deletionPolicy they record
(services/claims_gc.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field

from .crd import GROUP, VERSION, crd_manifest, structural_schema
from .spec import ApiModel, DeletionPolicy
from .status import PublishedStatus, RenkuEnvironmentState

KIND = "GlobalEnvironmentClaim"
PLURAL = "globalenvironmentclaims"
SINGULAR = "globalenvironmentclaim"
CRD_NAME = f"{PLURAL}.{GROUP}"
API_VERSION = f"{GROUP}/{VERSION}"
OWNER_UID_LABEL = f"{GROUP}/owner-uid"
KIND_LABEL = f"{GROUP}/claim"
OWNER_REF_LABEL = f"{GROUP}/owner-ref"
"""A hash of the owner's namespace/name: finds the claims of an object deleted and created
again under the same name (label values are too short for the name itself)."""
ERA_NAME = "ownership-era"


def id_claim_name(renku_id: str) -> str:
    """Renku ids are ULIDs: lower-cased they are valid object names."""
    return f"env-{renku_id.lower()}"


def attempt_claim_name(owner_uid: str) -> str:
    return f"attempt-{owner_uid.lower()}"


def owner_ref_label(namespace: str, name: str) -> str:
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:40]


class ClaimOwner(ApiModel):
    """The GlobalEnvironment a claim belongs to."""

    namespace: str
    """Its namespace."""
    name: str
    """Its name."""
    uid: str
    """Its metadata.uid: a GlobalEnvironment deleted and created again is another owner."""


class ClaimedCreateAttempt(ApiModel):
    """A create in Renku whose answer has not been confirmed."""

    started_at: str
    """When it was recorded, just before the write of the record (RFC 3339, the writing
    operator's clock); the POST starts after the write returned, within 5 s of it."""
    fingerprint: str
    """Hash of the environment that was sent."""
    environment: RenkuEnvironmentState
    """The environment that was sent: a lost answer is recovered by matching it."""


class MigrationCandidate(ApiModel):
    """A GlobalEnvironment that, when the records began, named a Renku id in its status with
    no record of it: published by an operator version that kept no records."""

    uid: str
    """Its metadata.uid."""
    renku_id: str = Field(pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
    """The id its status.renkuId named then: the only one it may have migrated."""


class GlobalEnvironmentClaimSpec(ApiModel):
    """What the operator recorded; written by the operator only."""

    owner: ClaimOwner | None = None
    """The owning GlobalEnvironment (absent only on the ownership-era marker)."""
    renku_id: str | None = Field(default=None, pattern=r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
    """The Renku environment this claim owns (ownership claims)."""
    last_known_good: PublishedStatus | None = None
    """The last version that passed its checks and was published: what is held against drift
    while a newer spec fails (status.published only mirrors it)."""
    create_attempt: ClaimedCreateAttempt | None = None
    """The pending create (attempt claims)."""
    migration: list[MigrationCandidate] | None = None
    """On the ownership-era marker: the objects that may migrate a status.renkuId into a
    record, listed once when the marker was made (the upgrade); no other object ever may."""
    deletion_policy: DeletionPolicy | None = None
    """What to do in Renku when the owner is gone without retiring it (force-deleted): its
    deletionPolicy as applied (Orphan while suspended, Archive for Delete outside trusted
    namespaces). Absent on claims written before it was recorded: those are released, and the
    environment is left in Renku."""
    collecting: str | None = None
    """Set (RFC 3339) by the claims' garbage collection once it has confirmed that the owner is
    gone and starts retiring: from then on no object takes the claim over."""


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Renku ID", "type": "string", "jsonPath": ".spec.renkuId"},
    {"name": "Owner", "type": "string", "jsonPath": ".spec.owner.name"},
    {"name": "Namespace", "type": "string", "jsonPath": ".spec.owner.namespace"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_claim_crd() -> dict[str, Any]:
    """The CustomResourceDefinition of GlobalEnvironmentClaim."""
    schema = {
        "type": "object",
        "description": (
            "The renku-env-operator's record of which GlobalEnvironment owns a Renku "
            "environment, or of a pending create. Written only by the operator, in its own "
            "namespace; do not edit."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural_schema(GlobalEnvironmentClaimSpec),
        },
    }
    return crd_manifest(
        kind=KIND,
        plural=PLURAL,
        singular=SINGULAR,
        schema=schema,
        printer_columns=PRINTER_COLUMNS,
    )
