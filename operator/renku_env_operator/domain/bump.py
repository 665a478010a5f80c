"""What `renku-env-operator bump` proposes for one manifest: a tested tag, nothing, or a skip.

Pure: the image written in Git and the object as the cluster has it (spec and status) in, a
decision out. Only a tag whose update test passed (status.image.updateTest) is ever proposed;
everything else is a skip with its reason, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nodesemver

from ..api.status import read_status
from .image_reference import InvalidImageReference, parse_image_reference

Action = Literal["bump", "current", "skip"]

# Skip reasons (CamelCase, like condition reasons; -o json carries them for tools).
NOT_FOUND = "NotFound"
STATUS_UNREADABLE = "StatusUnreadable"
OUT_OF_SYNC = "OutOfSync"
NO_UPDATE_TEST = "NoUpdateTest"
UPDATE_TEST_RUNNING = "UpdateTestRunning"
UPDATE_TEST_FAILED = "UpdateTestFailed"
NO_TESTED_DIGEST = "NoTestedDigest"
INVALID_IMAGE = "InvalidImage"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    message: str
    new_image: str | None = None
    tested_image: str | None = None
    tested_at: str | None = None


def skip(reason: str, message: str) -> Decision:
    return Decision("skip", reason, message)


def split_image(text: str) -> tuple[str, str | None, str | None]:
    """(name as written, tag, digest) without normalising: the file keeps its own spelling."""
    rest, _, digest = text.partition("@")
    slash, colon = rest.rfind("/"), rest.rfind(":")
    if colon > slash:
        return rest[:colon], rest[colon + 1 :], digest or None
    return rest, None, digest or None


def decide(file_image: str, obj: Mapping[str, Any] | None) -> Decision:
    """The bump for `file_image` (spec.image as written in Git) given the cluster's object."""
    if obj is None:
        return skip(NOT_FOUND, "not found in the cluster: apply it first (bump reads its status)")
    try:
        written = parse_image_reference(file_image)
    except InvalidImageReference as exc:
        return skip(INVALID_IMAGE, f"spec.image cannot be read: {exc}")
    spec = obj.get("spec") if isinstance(obj.get("spec"), Mapping) else {}
    live = spec.get("image") if isinstance(spec, Mapping) else None
    if live != file_image:
        return skip(
            OUT_OF_SYNC,
            f"the cluster's spec.image is {live!r}, the file's {file_image!r}: the image is set "
            "elsewhere (a Kustomize patch or images: entry, Helm values) or the file is not "
            "synced yet; bump edits only an image that is deployed as written",
        )
    raw_status = obj.get("status")
    if not isinstance(raw_status, Mapping):
        return skip(STATUS_UNREADABLE, "the object has no status yet: is the operator running?")
    status, problems = read_status(raw_status)
    image = status.image
    if image is None:
        why = f" ({'; '.join(problems)})" if problems else ""
        return skip(STATUS_UNREADABLE, f"status.image cannot be read{why}")
    test = image.update_test
    if test is None or test.result == "Disabled":
        if not image.latest_version:
            return Decision("current", "UpToDate", "no newer tag within imagePolicy.updateRange")
        return skip(
            NO_UPDATE_TEST,
            f"{image.latest_version} is available but untested: set "
            "spec.imagePolicy.testUpdates: true so the operator smoke-tests it",
        )
    tested = test.image or ""
    if test.result in {"Pending", "Running"}:
        return skip(UPDATE_TEST_RUNNING, f"the update test of {tested} is still {test.result}")
    if test.result != "Passed":
        return skip(
            UPDATE_TEST_FAILED,
            f"the update test of {tested} failed ({test.reason}): {test.message}",
        )
    return _passed(file_image, written.name, tested, test.finished_at)


def _passed(file_image: str, name: str, tested: str, tested_at: str | None) -> Decision:
    try:
        candidate = parse_image_reference(tested)
    except InvalidImageReference as exc:
        return skip(STATUS_UNREADABLE, f"status.image.updateTest.image cannot be read: {exc}")
    if candidate.name != name or candidate.tag is None:
        return skip(STATUS_UNREADABLE, f"the update test ran {tested}, not a tag of {name}")
    written_name, tag, digest = split_image(file_image)
    if tag == candidate.tag or (
        tag is not None
        and nodesemver.valid(tag, False) is not None
        and nodesemver.valid(candidate.tag, False) is not None
        and not nodesemver.gt(candidate.tag, tag, False)
    ):
        return Decision("current", "UpToDate", f"already at {tag} (tested: {candidate.tag})")
    new_image = f"{written_name}:{candidate.tag}"
    if digest is not None:
        # Pinned in Git: only the digest the test ran may be written, never a fresh lookup.
        if candidate.digest is None:
            return skip(
                NO_TESTED_DIGEST,
                f"the file pins a digest but the update test of {tested} recorded none: pin "
                "it by hand after checking the digest",
            )
        new_image += f"@{candidate.digest}"
    when = tested_at or "unknown time"
    return Decision(
        "bump",
        "UpdateTestPassed",
        f"update test of {tested} passed at {when}",
        new_image=new_image,
        tested_image=tested,
        tested_at=tested_at,
    )
