"""The Renku test double follows CONTRACT.md, quirks included, and checks the spec."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import renku_double as double_module
from tests.support.renku_double import RenkuDouble

IMAGE = "renku/renkulab-py:3.10-0.18.1"
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


@pytest.fixture
def api(renku_double: RenkuDouble) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=renku_double.url, timeout=5) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(api: httpx.Client, double: RenkuDouble, **fields: Any) -> httpx.Response:
    body = {"name": "Python", "container_image": IMAGE, "environment_image_source": "image"}
    return api.post("/environments", json=body | fields, headers=bearer(double.admin_token))


def patch(api: httpx.Client, double: RenkuDouble, env_id: str, body: Any) -> httpx.Response:
    return api.patch(f"/environments/{env_id}", json=body, headers=bearer(double.admin_token))


# ---------------------------------------------------------------- reading


def test_get_needs_no_token_and_filters_archived(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    live = renku_double.admin_create(name="live", container_image=IMAGE)
    gone = renku_double.admin_create(name="gone", container_image=IMAGE, is_archived=True)

    default = api.get("/environments").json()
    everything = api.get("/environments", params={"include_archived": "true"}).json()

    assert [env["id"] for env in default] == [live["id"]]
    assert {env["id"] for env in everything} == {live["id"], gone["id"]}
    assert api.get(f"/environments/{gone['id']}").json()["is_archived"] is True


def test_get_unknown_id_is_404_and_malformed_ids_are_404_too(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.allow_invalid_requests()  # malformed ids violate the spec on purpose
    env = renku_double.admin_create(name="x", container_image=IMAGE)

    unknown = api.get(f"/environments/{UNKNOWN_ID}")
    lower = api.get(f"/environments/{env['id'].lower()}")
    short = api.delete("/environments/nope", headers=bearer(renku_double.admin_token))

    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == 1404
    assert (lower.status_code, short.status_code) == (404, 404)
    assert "Requested URL" in lower.json()["error"]["message"]
    assert env["id"] in renku_double.environments
    kinds = {v.kind for v in renku_double.violations}
    assert kinds == {"request"}


# ---------------------------------------------------------------- creating


def test_post_fills_defaults_leaves_out_nulls_and_assigns_ulid(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    response = create(api, renku_double)

    assert response.status_code == 201
    env = response.json()
    assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", env["id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env["creation_date"])
    assert {k: env[k] for k in ("default_url", "uid", "gid", "port")} == {
        "default_url": "/lab",
        "uid": 1000,
        "gid": 1000,
        "port": 8080,
    }
    assert env["is_archived"] is False
    assert env["strip_path_prefix"] is False
    for absent in (
        "description",
        "command",
        "args",
        "working_directory",
        "environment_image_source",
    ):
        assert absent not in env


def test_post_accepts_duplicate_names_unknown_keys_and_numeric_strings(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    first = create(api, renku_double, uid="1000", gid=" 100 ", flavour="vanilla")
    second = create(api, renku_double)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert (first.json()["uid"], first.json()["gid"]) == (1000, 100)
    assert "flavour" not in first.json()
    assert renku_double.violations == []  # documented exemptions are not flagged


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"command": []}, "command: List should have at least 1 item"),
        (
            {"environment_image_source": "build"},
            "environment_image_source: Input should be 'image'",
        ),
        ({"uid": "1.5"}, "uid: Input should be a valid integer"),
        ({"uid": 0}, "uid: Input should be greater than 0"),
        ({"port": 65400}, "port: Input should be less than or equal to 65399"),
        ({"name": ""}, "name: String should have at least 1 character"),
        ({"description": "d" * 501}, "description: String should have at most 500"),
        ({"container_image": "ab"}, "container_image: String should have at least 3"),
    ],
)
def test_post_refuses_spec_violations_with_422(
    api: httpx.Client,
    renku_double: RenkuDouble,
    fields: dict[str, Any],
    reason: str,
) -> None:
    renku_double.allow_invalid_requests()
    response = create(api, renku_double, **fields)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == 1422
    assert response.json()["error"]["message"].startswith(
        "There are errors in the following fields, "
    )
    assert reason in response.json()["error"]["message"]
    assert renku_double.environments == {}
    assert renku_double.violations  # the spec agrees: the client sent an invalid request
    assert {v.kind for v in renku_double.violations} == {"request"}


def test_post_refuses_relative_paths_although_the_spec_allows_them(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    response = create(api, renku_double, working_directory="work")

    assert response.status_code == 422
    assert "working_directory" in response.json()["error"]["message"]
    assert renku_double.violations == []  # a CONTRACT rule, not a double bug


def test_post_without_image_source_or_json_body_is_refused(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.allow_invalid_requests()
    admin = bearer(renku_double.admin_token)

    no_source = api.post(
        "/environments", json={"name": "x", "container_image": IMAGE}, headers=admin
    )
    not_json = api.post("/environments", content=b"{name", headers=admin)

    assert no_source.status_code == 422
    assert "environment_image_source: Field required" in no_source.json()["error"]["message"]
    assert not_json.status_code == 400
    assert not_json.json()["error"]["code"] == 1400


# ---------------------------------------------------------------- patching


def test_patch_absent_and_null_leave_fields_but_null_clears_command_and_args(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    env = create(
        api,
        renku_double,
        description="old",
        command=["bash"],
        args=["-c", "run"],
        working_directory="/home/w",
        mount_directory="/home",
    ).json()

    response = patch(
        api,
        renku_double,
        env["id"],
        {"name": None, "description": None, "command": None, "args": None, "port": 8888},
    )

    assert response.status_code == 200
    after = response.json()
    assert (after["name"], after["description"], after["port"]) == ("Python", "old", 8888)
    assert "command" not in after
    assert "args" not in after
    assert after["working_directory"] == "/home/w"
    assert renku_double.violations == []


def test_patch_empty_string_clears_directories_and_empties_description(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    env = create(api, renku_double, description="d", working_directory="/w", mount_directory="/m")

    after = patch(
        api,
        renku_double,
        env.json()["id"],
        {"working_directory": "", "mount_directory": "", "description": ""},
    ).json()

    assert "working_directory" not in after
    assert "mount_directory" not in after
    assert after["description"] == ""


def test_patch_refuses_relative_paths_and_empty_lists(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.allow_invalid_requests()
    env_id = create(api, renku_double).json()["id"]

    relative = patch(api, renku_double, env_id, {"mount_directory": "data"})
    empty = patch(api, renku_double, env_id, {"args": []})

    assert (relative.status_code, empty.status_code) == (422, 422)
    assert [v.kind for v in renku_double.violations] == ["request"]  # only the empty list


def test_patch_unknown_id_is_404(api: httpx.Client, renku_double: RenkuDouble) -> None:
    response = patch(api, renku_double, UNKNOWN_ID, {"name": "x"})

    assert response.status_code == 404
    assert response.json()["error"]["code"] == 1404


# ---------------------------------------------------------------- deleting


def test_delete_is_idempotent(api: httpx.Client, renku_double: RenkuDouble) -> None:
    env_id = create(api, renku_double).json()["id"]
    admin = bearer(renku_double.admin_token)

    first = api.delete(f"/environments/{env_id}", headers=admin)
    again = api.delete(f"/environments/{env_id}", headers=admin)

    assert (first.status_code, again.status_code) == (204, 204)
    assert first.content == b""
    assert renku_double.environments == {}


def test_delete_of_an_environment_in_use_is_a_foreign_key_500(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    env_id = create(api, renku_double).json()["id"]
    launcher = renku_double.add_launcher(env_id)
    admin = bearer(renku_double.admin_token)

    refused = api.delete(f"/environments/{env_id}", headers=admin)
    renku_double.remove_launcher(launcher)
    accepted = api.delete(f"/environments/{env_id}", headers=admin)

    assert refused.status_code == 500
    error = refused.json()["error"]
    assert error["code"] == 1500
    assert "ForeignKeyViolation" in error["message"]
    assert "launchers_environment_id_fkey" in error["message"]
    assert accepted.status_code == 204


# ---------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    ("token", "post", "patch_", "delete"),
    [
        (None, 401, 401, 401),
        ("not-a-token", 401, 401, 401),
        ('{"email": "anonymous@example.org"}', 401, 401, 401),
        (double_module.USER_TOKEN, 403, 401, 403),
    ],
)
def test_writes_need_an_admin_token(
    api: httpx.Client,
    renku_double: RenkuDouble,
    token: str | None,
    post: int,
    patch_: int,
    delete: int,
) -> None:
    env = renku_double.admin_create(name="x", container_image=IMAGE)
    headers = bearer(token) if token else {}
    body = {"name": "y", "container_image": IMAGE, "environment_image_source": "image"}

    statuses = (
        api.post("/environments", json=body, headers=headers).status_code,
        api.patch(f"/environments/{env['id']}", json={"name": "y"}, headers=headers).status_code,
        api.delete(f"/environments/{env['id']}", headers=headers).status_code,
    )

    assert statuses == (post, patch_, delete)
    assert renku_double.environments == {env["id"]: env}
    assert api.get("/environments", headers=headers).status_code == 200


def test_token_endpoint_issues_expiring_admin_tokens(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.set_token_lifetime(42)
    form = {
        "grant_type": "client_credentials",
        "client_id": renku_double.client_id,
        "client_secret": renku_double.client_secret,
    }
    issued = httpx.post(renku_double.token_url, data=form).json()
    body = {"name": "y", "container_image": IMAGE, "environment_image_source": "image"}

    before = api.post("/environments", json=body, headers=bearer(issued["access_token"]))
    renku_double.expire_all_tokens()
    after = api.post("/environments", json=body, headers=bearer(issued["access_token"]))

    assert (issued["token_type"], issued["expires_in"]) == ("Bearer", 42)
    assert (before.status_code, after.status_code) == (201, 401)
    token_log = [r for r in renku_double.requests if r.path == double_module.TOKEN_PATH]
    assert token_log[0].body["client_secret"] == "***"


def test_token_endpoint_refuses_bad_secrets_and_grants_and_takes_basic_auth(
    renku_double: RenkuDouble,
) -> None:
    renku_double.add_client("viewer", "viewer-secret")
    url = renku_double.token_url
    good = {"grant_type": "client_credentials"}

    wrong = httpx.post(url, data=good | {"client_id": renku_double.client_id, "client_secret": "x"})
    grant = httpx.post(url, data={"grant_type": "password"}, auth=("viewer", "viewer-secret"))
    basic = httpx.post(url, data=good, auth=("viewer", "viewer-secret"))
    viewer_token = basic.json()["access_token"]
    body = {"name": "y", "container_image": IMAGE, "environment_image_source": "image"}
    post = httpx.post(renku_double.url + "/environments", json=body, headers=bearer(viewer_token))

    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
    assert (grant.status_code, grant.json()["error"]) == (400, "unsupported_grant_type")
    assert basic.status_code == 200
    assert post.status_code == 403  # a valid token without renku-admin


# ---------------------------------------------------------------- faults


def test_fail_next_answers_errors_without_acting(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.fail_next("POST", 503, times=2, retry_after=1.5)

    first = create(api, renku_double)
    second = create(api, renku_double)
    third = create(api, renku_double)

    assert [r.status_code for r in (first, second, third)] == [503, 503, 201]
    assert first.headers["Retry-After"] == "1.5"
    assert first.json()["error"]["code"] == 1503
    assert len(renku_double.environments) == 1


def test_drop_next_response_carries_out_the_request_then_hangs_up(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.drop_next_response("POST")

    with pytest.raises(httpx.RemoteProtocolError):
        create(api, renku_double)

    assert len(renku_double.environments) == 1
    assert renku_double.requests[-1].status is None


def test_hang_next_response_holds_the_answer_until_released(
    renku_double: RenkuDouble,
) -> None:
    renku_double.hang_next_response("GET")

    with pytest.raises(httpx.ReadTimeout):
        httpx.get(renku_double.url + "/environments", timeout=0.5)
    renku_double.release_hung()

    assert httpx.get(renku_double.url + "/environments").status_code == 200


def test_set_down_answers_503_everywhere(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    renku_double.set_down(True)
    down = (api.get("/environments"), httpx.post(renku_double.token_url, data={}))
    renku_double.set_down(False)

    assert [r.status_code for r in down] == [503, 503]
    assert api.get("/environments").status_code == 200


def test_request_log_counts_and_wait_until(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    api.get("/environments")
    api.get("/environments", params={"include_archived": "true"})
    create(api, renku_double)

    renku_double.wait_until(lambda d: d.count("GET") == 2, timeout=1)
    assert renku_double.count("GET", "/api/data/environments") == 2
    assert renku_double.count("POST") == 1
    assert renku_double.requests[1].query == {"include_archived": "true"}
    with pytest.raises(TimeoutError):
        renku_double.wait_until(lambda d: d.count("DELETE") == 1, timeout=0.05)


async def test_the_double_answers_while_the_test_loop_is_blocked(
    renku_double: RenkuDouble,
) -> None:
    # A blocking call on the test's loop: the double must not need that loop.
    response = httpx.get(renku_double.url + "/environments", timeout=2)

    assert response.status_code == 200
    await renku_double.wait_until_async(lambda d: d.count("GET") == 1, timeout=1)


def test_admin_panel_edits_show_in_the_api(
    api: httpx.Client,
    renku_double: RenkuDouble,
) -> None:
    env_id = create(api, renku_double).json()["id"]

    renku_double.admin_edit(env_id, container_image="python:3.13", description="by hand")
    edited = api.get(f"/environments/{env_id}").json()
    renku_double.admin_delete(env_id)

    assert (edited["container_image"], edited["description"]) == ("python:3.13", "by hand")
    assert api.get(f"/environments/{env_id}").status_code == 404


# ---------------------------------------------------------------- the spec checks themselves


def test_responses_that_break_the_spec_are_violations() -> None:
    with RenkuDouble() as double:
        env = double.admin_create(name="", container_image=IMAGE)  # an invalid state
        httpx.get(f"{double.url}/environments/{env['id']}")

    assert [v.kind for v in double.violations] == ["response"]
    assert "'' should be non-empty" in str(double.violations[0])


def test_a_double_more_lenient_than_the_spec_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def accept_anything(body: Any, *, patch: bool) -> tuple[dict[str, Any], list[Any]]:
        return {"name": "x", "container_image": IMAGE}, []

    monkeypatch.setattr(double_module, "validate_body", accept_anything)
    with RenkuDouble() as double:
        body = {"name": "x", "container_image": IMAGE, "environment_image_source": "image"}
        httpx.post(
            f"{double.url}/environments",
            json=body | {"command": []},
            headers=bearer(double.admin_token),
        )

    assert sorted(v.kind for v in double.violations) == ["request", "verdict"]
    assert double.unexpected_violations() == double.violations
    double.allow_invalid_requests()
    assert [v.kind for v in double.unexpected_violations()] == ["verdict"]


def test_a_double_stricter_than_the_spec_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_everything(body: Any, *, patch: bool) -> tuple[dict[str, Any], list[Any]]:
        return {}, [double_module.FieldError("name", "too dull")]

    monkeypatch.setattr(double_module, "validate_body", refuse_everything)
    with RenkuDouble() as double:
        body = {"name": "x", "container_image": IMAGE, "environment_image_source": "image"}
        httpx.post(f"{double.url}/environments", json=body, headers=bearer(double.admin_token))

    assert [v.kind for v in double.violations] == ["verdict"]


def test_ulids_are_unique_and_upper_case() -> None:
    ids = [double_module.new_ulid() for _ in range(200)]

    assert len(set(ids)) == 200
    assert all(double_module.ULID_RE.match(i) for i in ids)


def test_the_vendored_openapi_spec_is_the_shared_one() -> None:
    from tests.support.renku_double import SHARED_SPEC_PATH, SPEC_PATH

    if not SHARED_SPEC_PATH.exists():
        pytest.skip(f"no shared spec at {SHARED_SPEC_PATH}")
    assert SPEC_PATH.read_bytes() == SHARED_SPEC_PATH.read_bytes(), (
        "copy shared/renku's spec into tests/data/renku"
    )
