"""domain/payload.py: the declared state, Renku's answers compared with it, POST and PATCH bodies."""

from __future__ import annotations

from typing import Any

import pytest

from renku_env_operator.api.spec import GlobalEnvironmentSpec
from renku_env_operator.domain import payload
from renku_env_operator.domain.payload import FieldDiff

IMAGE = "ghcr.io/example/env:1.0.0"
PINNED = f"{IMAGE}@sha256:{'a' * 64}"
# What Renku stores for a minimal spec (a POST leaving every optional field out).
MINIMAL_IN_RENKU = {
    "id": "01M8AP1CN4S7CRWCFA7560RJPZ",
    "creation_date": "2026-11-25T22:17:23Z",
    "name": "python",
    "container_image": IMAGE,
    "default_url": "/lab",
    "uid": 1000,
    "gid": 1000,
    "port": 8080,
    "strip_path_prefix": False,
    "is_archived": False,
}


def spec(**fields: Any) -> GlobalEnvironmentSpec:
    return GlobalEnvironmentSpec.model_validate({"image": IMAGE, **fields})


def declared(**fields: Any) -> dict[str, Any]:
    return payload.declared_state(spec(**fields), "python", IMAGE)


# ---------------------------------------------------------------- declared_state


def test_unset_fields_declare_renkus_defaults() -> None:
    assert declared() == {
        "name": "python",
        "container_image": IMAGE,
        "description": "",
        "default_url": "/lab",
        "uid": 1000,
        "gid": 1000,
        "port": 8080,
        "working_directory": None,
        "mount_directory": None,
        "command": None,
        "args": None,
        "strip_path_prefix": False,
        "is_archived": False,
    }


def test_set_fields_are_mapped_to_renkus_names() -> None:
    state = payload.declared_state(
        spec(
            name="Python 3.12",
            description="Plain Python",
            defaultUrl="/",
            port=8888,
            uid=1001,
            gid=100,
            workingDirectory="/home/jovyan/work",
            mountDirectory="/home/jovyan",
            command=["tini", "--"],
            args=["start.sh"],
            stripPathPrefix=True,
            archived=True,
        ),
        "ignored-because-spec-name-wins",
        PINNED,
    )

    assert state == {
        "name": "Python 3.12",
        "container_image": PINNED,  # what to publish, not necessarily spec.image
        "description": "Plain Python",
        "default_url": "/",
        "uid": 1001,
        "gid": 100,
        "port": 8888,
        "working_directory": "/home/jovyan/work",
        "mount_directory": "/home/jovyan",
        "command": ["tini", "--"],
        "args": ["start.sh"],
        "strip_path_prefix": True,
        "is_archived": True,
    }
    assert set(state) == set(payload.FIELDS)


def test_explicit_false_is_not_mistaken_for_unset() -> None:
    assert declared(stripPathPrefix=False, archived=False)["is_archived"] is False


# ---------------------------------------------------------------- observed_state and diff


def test_a_minimal_renku_answer_matches_a_minimal_spec() -> None:
    observed = payload.observed_state(MINIMAL_IN_RENKU)

    assert observed["description"] == ""  # absent key: null, which Renku shows as empty
    assert observed["working_directory"] is None
    assert "id" not in observed
    assert payload.diff(declared(), observed) == []


def test_absent_keys_are_null_and_take_renkus_defaults() -> None:
    observed = payload.observed_state({"name": "python", "container_image": IMAGE})

    assert payload.diff(declared(), observed) == []


def test_an_echoed_empty_directory_means_unset() -> None:
    observed = payload.observed_state(MINIMAL_IN_RENKU | {"working_directory": ""})

    assert payload.diff(declared(), observed) == []


def test_diff_lists_each_differing_field_with_both_values() -> None:
    renku = MINIMAL_IN_RENKU | {"port": 1234, "command": ["bash"], "description": "by hand"}

    changes = payload.diff(declared(port=8888), payload.observed_state(renku))

    assert changes == [
        FieldDiff("description", "", "by hand"),
        FieldDiff("port", 8888, 1234),
        FieldDiff("command", None, ["bash"]),
    ]
    assert payload.describe_drift(changes) == (
        "description: declared '', Renku has 'by hand'; port: declared 8888, Renku has 1234; "
        "command: declared None, Renku has ['bash']"
    )


def test_list_order_matters() -> None:
    renku = MINIMAL_IN_RENKU | {"args": ["b", "a"]}

    changes = payload.diff(declared(args=["a", "b"]), payload.observed_state(renku))

    assert [c.field for c in changes] == ["args"]


# ---------------------------------------------------------------- POST body


def test_create_payload_leaves_nulls_out_and_names_the_image_source() -> None:
    body = payload.create_payload(declared(port=8888, command=["bash"]))

    assert body == {
        "name": "python",
        "container_image": IMAGE,
        "default_url": "/lab",
        "uid": 1000,
        "gid": 1000,
        "port": 8888,
        "command": ["bash"],
        "strip_path_prefix": False,
        "is_archived": False,
        "environment_image_source": "image",
    }


# ---------------------------------------------------------------- PATCH body and clearing


@pytest.mark.parametrize(
    ("field", "renku_value", "expected"),
    [
        # CONTRACT: "" clears the directories; null would leave them unchanged.
        ("working_directory", "/work", ""),
        ("mount_directory", "/home", ""),
        # CONTRACT: null clears command and args.
        ("command", ["bash"], None),
        ("args", ["-c"], None),
    ],
)
def test_patch_clears_a_field_the_spec_no_longer_sets(
    field: str, renku_value: Any, expected: Any
) -> None:
    renku = MINIMAL_IN_RENKU | {field: renku_value}

    changes = payload.diff(declared(), payload.observed_state(renku))

    assert payload.patch_payload(changes) == {field: expected}


def test_patch_empties_a_description_the_spec_no_longer_sets() -> None:
    # description cannot be set back to null in Renku: "" is the unset state.
    renku = MINIMAL_IN_RENKU | {"description": "old"}

    changes = payload.diff(declared(), payload.observed_state(renku))

    assert payload.patch_payload(changes) == {"description": ""}


def test_patch_carries_only_the_changed_fields_with_absolute_values() -> None:
    renku = MINIMAL_IN_RENKU | {"port": 1234, "is_archived": True}

    changes = payload.diff(declared(port=8888), payload.observed_state(renku))

    assert payload.patch_payload(changes) == {"port": 8888, "is_archived": False}


def test_no_changes_make_an_empty_patch() -> None:
    assert payload.patch_payload([]) == {}


# ---------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_and_sensitive_to_every_field() -> None:
    base = declared()

    assert payload.fingerprint(base) == payload.fingerprint(dict(reversed(base.items())))
    for field in payload.FIELDS:
        changed = base | {field: "something else"}
        assert payload.fingerprint(changed) != payload.fingerprint(base), field
