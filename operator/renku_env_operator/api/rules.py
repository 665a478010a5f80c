"""Validation rules that live in the CRD as CEL and are mirrored in the pydantic models.

Each rule is stated once here: its CEL text goes into the CRD (`x-kubernetes-validations`), its
Python predicate is what the models and `renku-env-operator validate` run. A test evaluates every
CEL rule with a CEL interpreter against the invalid-manifest corpus and checks both agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The distribution/reference grammar (RE2- and Python-compatible; [[:xdigit:]] spelled out).
_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_NAME = rf"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# Go's \w is ASCII; Python's is Unicode: spell the class out so both engines agree.
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[a-fA-F0-9]{32,}"
IMAGE_REFERENCE_PATTERN = rf"^{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$"
# Upper case is allowed in the registry host only; a repository in upper case is the classic typo.
UPPERCASE_REPOSITORY_PATTERN = (
    r"^[^/]*/[^:@]*[A-Z]|^[^/.:]*[A-Z][^/.:]*/|^[^/.:@]*[A-Z][^/.:@]*(?:[:@][^/]*)?$"
)
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
# Python's Unicode \s (what the models check), spelled for RE2, whose \s is ASCII only: without
# this a path with a no-break space passes the API server but fails `validate`. A test compares
# both over every code point.
WHITESPACE_RE2 = r"[\s\v\x{1c}-\x{1f}\x{85}\pZ]"
_CEL_WHITESPACE = WHITESPACE_RE2.replace("\\", "\\\\")


@dataclass(frozen=True)
class Rule:
    """One validation rule: CEL for the API server, a Python predicate for everything else."""

    cel: str
    message: str
    check: Callable[[Any], bool]
    reason: str = "FieldValueInvalid"

    def as_crd(self) -> dict[str, str]:
        return {"rule": self.cel, "message": self.message, "reason": self.reason}


def _absolute(value: str) -> bool:
    return value.startswith("/")


def _no_whitespace(value: str) -> bool:
    return re.search(r"\s", value) is None


ABSOLUTE_PATH = Rule(
    cel="self.startsWith('/')",
    message="must be an absolute path, starting with '/' (for example /home/renku/work)",
    check=_absolute,
)
NO_WHITESPACE_PATH = Rule(
    cel=f"!self.matches('{_CEL_WHITESPACE}')",
    message="must not contain whitespace",
    check=_no_whitespace,
)
IMAGE_NO_WHITESPACE = Rule(
    cel=f"!self.matches('{_CEL_WHITESPACE}')",
    message="must not contain whitespace: write the reference as registry/repository:tag",
    check=_no_whitespace,
)
IMAGE_LOWERCASE_REPOSITORY = Rule(
    cel=f"!self.matches('{UPPERCASE_REPOSITORY_PATTERN}')",
    message="the repository part of an image reference must be lower case",
    check=lambda v: re.search(UPPERCASE_REPOSITORY_PATTERN, v) is None,
)
IMAGE_GRAMMAR = Rule(
    cel=f"self.matches('{IMAGE_REFERENCE_PATTERN.replace(chr(92), chr(92) * 2)}')",
    message=(
        "must be an image reference like ghcr.io/org/image:1.2.3 or image@sha256:<digest> "
        "(lower-case repository, optional registry host and port, tag and/or digest)"
    ),
    check=lambda v: re.fullmatch(IMAGE_REFERENCE_PATTERN, v) is not None,
)
# A '.' or '..' segment, raw or percent-encoded (%2e, %2E, mixed): clients and proxies resolve
# them before sending, so '/../../api/v1/...' would leave the session's pod-proxy path.
DOT_SEGMENT_PATTERN = r"(?:^|/)(?:\.|%2[eE])(?:\.|%2[eE])?(?:/|\?|#|$)"
NO_DOT_SEGMENTS = Rule(
    cel=f"!self.matches('{DOT_SEGMENT_PATTERN.replace(chr(92), chr(92) * 2)}')",
    message=(
        "must not contain '.' or '..' path segments, not even percent-encoded as %2e: "
        "write the path without them, for example /lab"
    ),
    check=lambda v: re.search(DOT_SEGMENT_PATTERN, v) is None,
)
DEFAULT_URL = Rule(
    cel=f"self.startsWith('/') && !self.matches('{_CEL_WHITESPACE}')",
    message="must be a URL path starting with '/' and without whitespace, for example /lab or /",
    check=lambda v: v.startswith("/") and _no_whitespace(v),
)
NON_EMPTY_ITEMS = Rule(
    cel="self.all(x, size(x) > 0)",
    message="must not contain empty strings",
    check=lambda v: all(len(x) > 0 for x in v),
)
# Transition rule on spec: an adopted Renku id may be added, but never changed or removed.
RENKU_ID_IMMUTABLE = Rule(
    cel="!has(oldSelf.renkuId) || (has(self.renkuId) && self.renkuId == oldSelf.renkuId)",
    message=(
        "renkuId cannot be changed or removed once set: delete the GlobalEnvironment "
        "(with deletionPolicy Orphan) and create a new one to adopt another environment"
    ),
    check=lambda pair: pair[0] is None or pair[1] == pair[0],
    reason="FieldValueForbidden",
)
# Renku limits the display name to 99 characters; it defaults to metadata.name.
NAME_FITS_RENKU = Rule(
    cel="has(self.spec.name) || size(self.metadata.name) <= 99",
    message=(
        "metadata.name is longer than 99 characters, the limit of a Renku environment name: "
        "set spec.name to a shorter display name"
    ),
    check=lambda obj: obj[0] is not None or len(obj[1]) <= 99,
)
