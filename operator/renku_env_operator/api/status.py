"""The `status` of a GlobalEnvironment: what the operator observed and did.

Written only by the operator, through the status subresource. Shapes follow Kubernetes API
conventions (metav1.Condition, observedGeneration, RFC 3339 times as strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from .spec import ApiModel

ConditionStatus = Literal["True", "False", "Unknown"]
CheckResult = Literal["Passed", "Failed", "Warning", "Skipped"]


class Condition(ApiModel):
    """A metav1.Condition: the latest observation of one aspect of the object."""

    type: str = Field(max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")
    """Condition type: Ready (summary), Validated, ImageVerified, SmokeTested or Synced."""

    status: ConditionStatus
    """True, False or Unknown (work still pending)."""

    reason: str = Field(
        min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
    )
    """CamelCase reason; the README lists each one with how to fix it."""

    message: str = Field(max_length=32768)
    """Human-readable details: what happened and what to do."""

    last_transition_time: str
    """When status last changed (RFC 3339)."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation this condition was set for."""


class CheckStatus(ApiModel):
    """The result of one smoke-test or image check."""

    name: str
    """Check name, e.g. Pull, Ready, Stable, SessionUrl, User, MountWritable."""

    result: CheckResult
    """Passed, Failed, Warning or Skipped."""

    message: str = ""
    """What was seen, and for failures and warnings what to fix."""


class SmokeTestStatus(ApiModel):
    """The latest smoke test of this environment."""

    result: Literal["Pending", "Running", "Passed", "Failed", "Disabled"]
    """Pending (waiting for a free slot), Running, Passed, Failed or Disabled."""

    reason: str = ""
    """Specific reason, e.g. Passed, ImageNotFound, CrashedOnStart, NeverReady."""

    message: str = ""
    """What happened and what to fix."""

    generation: int | None = None
    """metadata.generation of the spec that was tested."""

    image: str | None = None
    """The image that was tested, pinned to its digest when known."""

    pod_name: str | None = None
    """Name of the smoke-test pod (kept for a while after a failure, for kubectl logs)."""

    started_at: str | None = None
    """When the smoke-test pod was created (RFC 3339)."""

    finished_at: str | None = None
    """When the verdict was reached (RFC 3339)."""

    duration_seconds: float | None = None
    """From pod creation to verdict."""

    checks: list[CheckStatus] = Field(default_factory=list)
    """Every check that ran, with its result."""

    trigger: str | None = None
    """Value of the renku.io/retest annotation this test ran for (change it to test again)."""

    session: str | None = None
    """Fingerprint of what shapes the session (image, user, port, directories, command, URL,
    smoke settings, retest): a verdict holds while it is unchanged, whatever else is edited."""


class ImageFinding(ApiModel):
    """A registry check's finding about the image."""

    check: str
    """The check, e.g. Platforms, User, Port, WorkingDirectory, Entrypoint, TagPolicy."""

    severity: Literal["Error", "Warning"]
    """Error blocks publishing; Warning is reported only."""

    reason: str
    """CamelCase reason."""

    message: str
    """What was found and what to do."""


class ImageStatus(ApiModel):
    """What the registry says about spec.image."""

    reference: str | None = None
    """The normalised reference that was checked."""

    digest: str | None = None
    """Digest the tag pointed to at the last check; the smoke test runs exactly this."""

    platforms: list[str] = Field(default_factory=list)
    """Platforms the image offers, e.g. linux/amd64."""

    working_dir: str | None = None
    """The image's WORKDIR: where sessions start when spec.workingDirectory is unset."""

    checked_at: str | None = None
    """When the registry was last asked (RFC 3339)."""

    findings: list[ImageFinding] = Field(default_factory=list)
    """Errors and warnings from the image checks."""

    latest_version: str | None = None
    """Highest tag in the allowed update range, when newer than the current tag."""

    available_updates: list[str] = Field(default_factory=list)
    """Newer tags in the allowed range, highest first (at most 10)."""

    latest_digest: str | None = None
    """The digest latestVersion pointed to at the last check (with imagePolicy.testUpdates):
    the update test runs exactly this, and `bump` pins it where the file pins digests."""

    update_test: SmokeTestStatus | None = None
    """Smoke test of latestVersion (at latestDigest, as tag@digest), when
    spec.imagePolicy.testUpdates is true; a tag that moves to another digest is tested again."""


class RenkuEnvironmentState(ApiModel):
    """An environment as published to Renku (Renku's fields, Renku's defaults filled in)."""

    name: str
    """Display name."""
    container_image: str
    """Image, possibly pinned to its digest."""
    description: str
    """Description ("" when none)."""
    default_url: str
    """Path the session opens."""
    uid: int
    """User id."""
    gid: int
    """Group id."""
    port: int
    """Port of the session's server."""
    working_directory: str | None = None
    """Working directory; unset: the image's WORKDIR."""
    mount_directory: str | None = None
    """Mount directory; unset: the working directory."""
    command: list[str] | None = None
    """Command; unset: the image's ENTRYPOINT."""
    args: list[str] | None = None
    """Arguments; unset: the image's CMD."""
    strip_path_prefix: bool
    """Whether Renku's proxy strips the session's path prefix."""
    is_archived: bool
    """Whether the environment is archived."""


class PublishedStatus(ApiModel):
    """The version of the spec that is live in Renku (the last known good)."""

    generation: int
    """metadata.generation that was published."""

    image: str
    """container_image as sent to Renku."""

    time: str
    """When it was published (RFC 3339)."""

    fingerprint: str
    """Hash of the Renku payload that was published; drift is measured against it."""

    environment: RenkuEnvironmentState | None = None
    """What was published: restored on drift even while a newer spec fails its checks."""

    smoke_session: str | None = None
    """The session fingerprint of the smoke test this version passed (status.smokeTest.session;
    absent: published with the smoke test disabled). Kept in the operator's own record, it lets
    a restarted operator trust that verdict without testing again; status only mirrors it."""

    smoke_tested_at: str | None = None
    """When that smoke test finished (RFC 3339): spec.smokeTest.intervalMinutes counts from it."""


class CreateAttemptStatus(ApiModel):
    """Bookkeeping for a create whose answer may have been lost: prevents a duplicate."""

    started_at: str
    """When the create request was sent (RFC 3339)."""

    fingerprint: str
    """Hash of the payload that was sent."""

    @field_validator("started_at")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        # Read as a time later (recovery window): refuse a value that is not one here.
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value


class GlobalEnvironmentStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = None
    """The metadata.generation the operator has fully processed."""

    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = Field(default_factory=list)
    """Ready (summary) and the specific conditions behind it."""

    renku_id: str | None = None
    """Id of the environment in Renku's registry."""

    last_sync_time: str | None = None
    """When Renku was last made to match the declared state, or found matching with another
    change to report (RFC 3339). A drift check that finds nothing new writes nothing."""

    published: PublishedStatus | None = None
    """What is live in Renku."""

    create_attempt: CreateAttemptStatus | None = None
    """Set while a create in Renku is unconfirmed."""

    smoke_test: SmokeTestStatus | None = None
    """The latest smoke test."""

    image: ImageStatus | None = None
    """Registry facts and checks for spec.image."""


def read_status(raw: Mapping[str, Any]) -> tuple[GlobalEnvironmentStatus, list[str]]:
    """The stored status, read leniently: what cannot be read is dropped and named.

    Unknown keys (an older operator's fields, or a newer CRD's after a rollback) are dropped
    wherever they are; a field whose value cannot be read is dropped whole. Never raises: a
    status the operator cannot read must not stop it from reconciling or retiring.
    """
    known: dict[str, Any] = {}
    problems: list[str] = []
    fields = GlobalEnvironmentStatus.model_fields
    by_alias = {f.alias or name: name for name, f in fields.items()}
    for key, value in dict(raw).items():
        name = by_alias.get(key)
        if name is None:
            continue  # fields of other operator versions: not ours to report
        annotation = fields[name].annotation
        cleaned = _known_keys(annotation, value, f"status.{key}", problems)
        try:
            GlobalEnvironmentStatus.model_validate({key: cleaned})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            problems.append(f"status.{where}: {first['msg']} (dropped)")
            continue
        known[key] = cleaned
    return GlobalEnvironmentStatus.model_validate(known), problems


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class inside `X | None` / `list[X]` / `X`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _known_keys(annotation: Any, value: Any, where: str, problems: list[str]) -> Any:
    """`value` without the keys its model does not know (each named in `problems`)."""
    model = _model_of(annotation)
    if model is None:
        return value
    if isinstance(value, list):
        return [_known_keys(model, item, f"{where}[{i}]", problems) for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    fields = {f.alias or name: f for name, f in model.model_fields.items()}
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        found = fields.get(key)
        if found is None:
            problems.append(f"{where}.{key}: unknown field (dropped)")
            continue
        cleaned[key] = _known_keys(found.annotation, item, f"{where}.{key}", problems)
    return cleaned
