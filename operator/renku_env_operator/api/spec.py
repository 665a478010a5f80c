"""The `spec` of a GlobalEnvironment: what a Renku admin declares.

Field descriptions here are the API documentation: they become the CRD's descriptions and so
what `kubectl explain globalenvironment.spec` prints. No field has a default in the CRD (GitOps
tools would report the filled-in defaults as drift); defaults are applied here, in the operator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from . import rules
from .rules import Rule


def _cel(*checks: Rule) -> dict[str, Any]:
    return {"x-kubernetes-validations": [r.as_crd() for r in checks]}


def _enforce(*checks: Rule) -> AfterValidator:
    """Run the Python side of CEL rules, raising the same message the API server would."""

    def validate(value: Any) -> Any:
        for rule in checks:
            if not rule.check(value):
                raise ValueError(rule.message)
        return value

    return AfterValidator(validate)


class ApiModel(BaseModel):
    """Base for CR models: camelCase in YAML, unknown fields refused as the API server does."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        # Strict like the API server: "8080" is not a port, "yes" is not a bool.
        strict=True,
        frozen=True,
        use_attribute_docstrings=True,
    )


AbsolutePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        json_schema_extra=_cel(rules.ABSOLUTE_PATH, rules.NO_WHITESPACE_PATH),
    ),
    _enforce(rules.ABSOLUTE_PATH, rules.NO_WHITESPACE_PATH),
]
ArgList = Annotated[
    list[Annotated[str, Field(max_length=4096)]],
    Field(min_length=1, max_length=64, json_schema_extra=_cel(rules.NON_EMPTY_ITEMS)),
    _enforce(rules.NON_EMPTY_ITEMS),
]
IMAGE_RULES = (rules.IMAGE_NO_WHITESPACE, rules.IMAGE_LOWERCASE_REPOSITORY, rules.IMAGE_GRAMMAR)


DeletionPolicy = Literal["Archive", "Delete", "Orphan"]
DriftPolicy = Literal["Overwrite", "Report"]


class SmokeTestSpec(ApiModel):
    """How the operator tests the image in a pod that behaves like a Renku session."""

    enabled: bool = True
    """Run a smoke test before publishing to Renku. false publishes without testing (said so in
    the SmokeTested condition). Default true."""

    timeout_seconds: int | None = Field(default=None, ge=30, le=3600)
    """How long the pod may take to become ready, pull included. Default: the operator's setting
    (300 seconds unless configured)."""

    stable_seconds: int | None = Field(default=None, ge=0, le=600)
    """How long the pod must stay ready with no restart after it first became ready. Default: the
    operator's setting (20 seconds unless configured)."""

    interval_minutes: int | None = Field(default=None, ge=10, le=10080)
    """Re-run the smoke test this often even when nothing changed (catches a moved tag or a
    broken base image). Default: only on spec change or when requested by annotation."""


class ImagePolicySpec(ApiModel):
    """What the operator checks about the image in its registry before any pod starts."""

    pin_digest: bool = False
    """Publish image@sha256:<digest> to Renku instead of the tag, so that sessions run exactly
    the image that passed the smoke test. Default false."""

    update_range: str | None = Field(default=None, min_length=1, max_length=100)
    """npm-style semver range of versions to report as updates, for example '^2.10' or
    '>=2.10 <4' (AND is a space). Default: newer versions with the same major version."""

    test_updates: bool = False
    """Also smoke-test the newest available update and report whether it passed, so that the
    pull request that bumps `image` can be merged with confidence. Default false."""


class GlobalEnvironmentSpec(ApiModel):
    """A Renku global session environment, as the admin panel would create it, plus how the
    operator tests, publishes and retires it."""

    image: Annotated[
        str,
        Field(min_length=3, max_length=500, json_schema_extra=_cel(*IMAGE_RULES)),
        _enforce(*IMAGE_RULES),
    ]
    """Container image of the session, e.g. ghcr.io/swissdatasciencecenter/renku/py-basic-jupyterlab:2.10.3.
    Must be public: Renku pulls global environment images without credentials. (Renku: container_image.)"""

    name: str | None = Field(default=None, min_length=1, max_length=99)
    """Display name in Renku (1-99 characters; names need not be unique). Default: metadata.name."""

    description: str | None = Field(default=None, max_length=500)
    """Description shown to users in Renku (at most 500 characters). Default: empty."""

    default_url: (
        Annotated[
            str,
            Field(
                max_length=200,
                json_schema_extra=_cel(rules.DEFAULT_URL, rules.NO_DOT_SEGMENTS),
            ),
            _enforce(rules.DEFAULT_URL, rules.NO_DOT_SEGMENTS),
        ]
        | None
    ) = None
    """Path the session opens, relative to the session's base URL, e.g. /lab for JupyterLab or /
    for Renku's own images. Default: Renku's default, /lab. (Renku: default_url.)"""

    port: int | None = Field(default=None, ge=1, le=65399)
    """TCP port the session's server listens on, on 0.0.0.0 (1-65399; 65400 and up belong to
    Renku's sidecars). Default 8080. (Renku: port.)"""

    uid: int | None = Field(default=None, ge=1, le=65535)
    """User id the session runs as (1-65535; never root). Default 1000. (Renku: uid.)"""

    gid: int | None = Field(default=None, ge=1, le=65535)
    """Group id the session runs as, and the group owning the session volume (1-65535).
    Default 1000. (Renku: gid.)"""

    working_directory: AbsolutePath | None = None
    """Absolute path the session starts in. Default: the image's WORKDIR, else
    /home/jovyan/work. It should lie inside mountDirectory: work elsewhere is lost when a session
    is paused and resumed. (Renku: working_directory.)"""

    mount_directory: AbsolutePath | None = None
    """Absolute path where the session's persistent volume is mounted: only files below it
    survive pause and resume. Default: the working directory. (Renku: mount_directory.)"""

    command: ArgList | None = None
    """Replaces the image's ENTRYPOINT when set (at least one item). (Renku: command.)"""

    args: ArgList | None = None
    """Replaces the image's CMD when set (at least one item). (Renku: args.)"""

    strip_path_prefix: bool | None = None
    """true: Renku's proxy removes '<base path><defaultUrl>' from requests before they reach the
    server; false: the server receives the full path and must serve under RENKU_BASE_URL_PATH.
    Default false. (Renku: strip_path_prefix.)"""

    archived: bool | None = None
    """Archive the environment in Renku: hidden from new launchers, existing launchers keep
    working. Default false. (Renku: is_archived.)"""

    renku_id: str | None = Field(default=None, pattern=rules.ULID_PATTERN)
    """Id of an environment that already exists in Renku, to adopt it instead of creating a new
    one (26-character upper-case ULID from the admin panel or the API). Cannot be changed once
    set."""

    smoke_test: SmokeTestSpec | None = None
    """Smoke-test settings. Default: enabled, with the operator's timeouts."""

    image_policy: ImagePolicySpec | None = None
    """Registry checks and update reporting for the image."""

    deletion_policy: DeletionPolicy | None = None
    """What happens in Renku when this GlobalEnvironment is deleted: Archive (default; safe even
    when launchers use it), Delete (falls back to archiving while launchers use it) or Orphan
    (leave Renku untouched)."""

    drift_policy: DriftPolicy | None = None
    """What to do when the environment was changed or deleted in Renku outside this resource:
    Overwrite (default; restore the declared state) or Report (conditions and Events only)."""

    suspend: bool | None = None
    """Stop all writes to Renku for this environment (smoke tests and drift reports go on).
    Default false."""
