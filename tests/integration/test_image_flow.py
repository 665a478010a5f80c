"""Registry checks through the real operator: images pushed to a real OCI registry per test,
then GlobalEnvironment -> ImageVerified -> smoke pod of `image@digest` -> Renku."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import REGISTRY

from renku_env_operator import metrics
from renku_env_operator.domain import bump
from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, PURPOSE, ROLE
from tests.support.kube import GENV, PODS, Kube
from tests.support.kube_meta import Obj, dig
from tests.support.kube_steps import hold, logs, proxy, scheduled, started
from tests.support.kubelet import Kubelet
from tests.support.oci_images import push_image
from tests.support.operator_fixtures import NAMESPACE, condition, genv, has_condition
from tests.support.renku_double import RenkuDouble

if TYPE_CHECKING:  # fixtures come from the conftest's plugins
    from tests.support.registry import RegistryServer
    from tests.support.registry_token import TokenProxy

pytestmark = pytest.mark.registry

NAME = "env"
WORKDIR = "/home/renku/work"
CONFIG: dict[str, Any] = {
    "User": "1000:1000",
    "ExposedPorts": {"8888/tcp": {}},
    "WorkingDir": WORKDIR,
    "Cmd": ["start-session"],
}
PROBE_LOG = "\n".join(
    [
        "renku-probe user 1000 1000 1000 1000",
        f"renku-probe mount writable {WORKDIR}",
        f"renku-probe workdir writable {WORKDIR}",
        f"renku-probe shipped-count 0 {WORKDIR}",
    ]
)
WAIT = 15.0  # generous upper bounds: every wait returns as soon as its state is reached


@dataclass
class Flow:
    """One test's world: the emulated cluster and its kubelet, the Renku double, a repository of
    its own in the session's registry, and the operator with image checks on."""

    kube: Kube
    kubelet: Kubelet
    renku: RenkuDouble
    registry: RegistryServer
    repo: str
    start_operator: Any
    monkeypatch: pytest.MonkeyPatch

    def push(self, tag: str, *, to: RegistryServer | None = None, **options: Any) -> str:
        """Push an image (CONFIG unless `config` says otherwise); return its digest."""
        server = to or self.registry
        options.setdefault("config", CONFIG)
        return push_image(server.url, self.repo, tag, auth=server.credentials, **options)

    def image(self, tag: str, host: str | None = None) -> str:
        return f"{host or self.registry.host}/{self.repo}:{tag}"

    async def start(
        self, host: str | None = None, *, recheck_seconds: float | None = None, **settings: Any
    ) -> None:
        """Start the operator speaking plain HTTP to `host`, on amd64 nodes; `recheck_seconds`
        shortens the registry re-check interval."""
        if recheck_seconds is not None:
            settings["image_check_interval_seconds"] = recheck_seconds
        defaults = {
            "image_checks": True,
            "registry_insecure_hosts": [host or self.registry.host],
            # The tests' registries live on loopback: allowed as internal mirrors.
            "registry_internal_allowlist": ["127.0.0.1"],
            "node_architectures": ["amd64"],
        }
        await self.start_operator(**{**defaults, **settings})

    async def create(self, image: str, *, smoke: bool = True, **policy: Any) -> None:
        spec: dict[str, Any] = {
            "image": image,
            "port": 8888,
            "defaultUrl": "/",
            "workingDirectory": WORKDIR,
            "mountDirectory": WORKDIR,
            "smokeTest": {"timeoutSeconds": 30, "stableSeconds": 0, "enabled": smoke},
        }
        if policy:
            spec["imagePolicy"] = policy
        await self.kube.create({**genv(NAME), "spec": spec})

    def plan_smoke(self, purpose: str = "current", session: Any = None) -> None:
        """Play the next session pod of `purpose` (ready, unless `session` gives other steps)
        and its probe pod."""
        labels = {GLOBAL_ENVIRONMENT: NAME, PURPOSE: purpose}
        steps = session if session is not None else self.kubelet.scenario("ready", port=8888)
        self.kubelet.plan({**labels, ROLE: "session"}, steps)
        probe = self.kubelet.scenario("completed", log=PROBE_LOG)
        self.kubelet.plan({**labels, ROLE: "probe"}, probe)

    async def wait(self, predicate: Callable[[Obj], bool], timeout: float = WAIT) -> Obj:
        return await self.kube.wait_for(GENV, NAMESPACE, NAME, predicate, timeout=timeout)

    async def event(self, reason: str) -> Obj:
        return await self.kube.wait_event(NAME, reason, namespace=NAMESPACE, timeout=WAIT)

    async def ready(self) -> Obj:
        return await self.wait(has_condition("Ready", "True"))

    async def blocked(self, reason: str) -> Obj:
        """ImageVerified False with `reason`: no smoke pod, nothing sent to Renku."""
        obj = await self.wait(has_condition("ImageVerified", "False", reason))
        assert await self.kube.list(PODS, NAMESPACE) == []
        assert self.renku.count("POST") == 0
        assert has_condition("Ready", "False")(obj)
        return obj

    def session_images(self) -> list[str]:
        """The image of every session pod the operator created, in order (deleted ones too)."""
        log = self.kube.emulator.log.entries
        added = [e.object for e in log if e.resource == PODS and e.type == "ADDED"]
        return [
            dig(pod, "spec.containers.0.image")
            for pod in added
            if (dig(pod, "metadata.labels") or {}).get(ROLE) == "session"
        ]

    def published(self, obj: Obj) -> str:
        image: str = self.renku.environments[obj["status"]["renkuId"]]["container_image"]
        return image


def verified(obj: Obj) -> dict[str, Any]:
    """The ImageVerified condition (which every reconciled object has)."""
    found = condition(obj, "ImageVerified")
    assert found is not None
    return found


@pytest.fixture
def flow(
    request: pytest.FixtureRequest,
    kube: Kube,
    kubelet: Kubelet,
    renku_double: RenkuDouble,
    registry: RegistryServer,
    start_operator: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Flow:
    # A repository per test: the session's registry is shared.
    repo = "team/" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return Flow(kube, kubelet, renku_double, registry, repo, start_operator, monkeypatch)


@pytest.mark.parametrize("pin", [False, True], ids=["tag", "pinned"])
async def test_a_public_image_is_tested_by_digest_and_published(flow: Flow, pin: bool) -> None:
    platforms = ["linux/amd64", "linux/arm64"]
    digest = flow.push("1.2.3", platforms=platforms)
    image = flow.image("1.2.3")
    flow.plan_smoke()
    await flow.start()
    await flow.create(image, pinDigest=pin)

    ready = await flow.ready()

    assert verified(ready)["reason"] == "Verified"
    status = ready["status"]["image"]
    assert (status["digest"], status["platforms"]) == (digest, platforms)
    assert (status["workingDir"], status["findings"]) == (WORKDIR, [])
    assert flow.session_images() == [f"{image}@{digest}"]
    assert ready["status"]["smokeTest"]["image"] == f"{image}@{digest}"
    assert flow.published(ready) == (f"{image}@{digest}" if pin else image)


async def test_a_tag_that_was_never_pushed_is_not_found_until_it_is(flow: Flow) -> None:
    flow.push("1.0.0")
    await flow.start()
    await flow.create(flow.image("9.9.9"))

    blocked = await flow.blocked("ImageNotFound")

    assert f"{flow.repo}:9.9.9" in verified(blocked)["message"]
    await flow.event("ImageNotFound")
    # Pushed later (CI finished after the merge): found at the next retry, not an hour later.
    flow.push("9.9.9")
    flow.plan_smoke()
    await flow.ready()


async def test_an_image_behind_a_login_is_not_public(
    flow: Flow, auth_registry: RegistryServer
) -> None:
    flow.push("1.0.0", to=auth_registry)
    await flow.start(auth_registry.host)
    await flow.create(flow.image("1.0.0", auth_registry.host))

    blocked = await flow.blocked("ImageNotPublic")

    assert "must be public" in verified(blocked)["message"]


async def test_a_bearer_token_registry_with_anonymous_pulls_is_public(
    flow: Flow, token_registry: TokenProxy
) -> None:
    digest = flow.push("1.0.0")
    image = flow.image("1.0.0", token_registry.host)
    flow.plan_smoke()
    await flow.start(token_registry.host)
    await flow.create(image)

    ready = await flow.ready()

    assert ready["status"]["image"]["digest"] == digest
    assert flow.session_images() == [f"{image}@{digest}"]
    assert flow.published(ready) == image
    assert token_registry.token_requests[f"repository:{flow.repo}:pull"] >= 1


async def test_an_image_for_other_nodes_has_no_matching_platform(flow: Flow) -> None:
    flow.push("1.0.0", platforms=["linux/arm64"])
    await flow.start()
    await flow.create(flow.image("1.0.0"))

    blocked = await flow.blocked("NoMatchingPlatform")

    assert "linux/amd64" in verified(blocked)["message"]
    assert blocked["status"]["image"]["platforms"] == ["linux/arm64"]


async def test_config_warnings_are_reported_and_the_image_still_published(flow: Flow) -> None:
    flow.push(
        "1.0.0", config={"User": "root", "ExposedPorts": {"9999/tcp": {}}, "WorkingDir": "/srv"}
    )
    flow.plan_smoke()
    await flow.start()
    await flow.create(flow.image("1.0.0"))

    ready = await flow.ready()

    assert (verified(ready)["status"], verified(ready)["reason"]) == (
        "True",
        "VerifiedWithWarnings",
    )
    findings = {f["reason"]: f["severity"] for f in ready["status"]["image"]["findings"]}
    assert findings == dict.fromkeys(
        ["RunsAsRoot", "PortNotExposed", "WorkingDirectoryMismatch"], "Warning"
    )
    assert "/srv" in verified(ready)["message"]
    assert flow.renku.count("POST") == 1


async def test_latest_is_a_warning_by_default(flow: Flow) -> None:
    flow.push("latest")
    flow.plan_smoke()
    await flow.start()
    await flow.create(flow.image("latest"))

    ready = await flow.ready()

    assert verified(ready)["reason"] == "VerifiedWithWarnings"
    assert [f["reason"] for f in ready["status"]["image"]["findings"]] == ["LatestTag"]
    assert flow.renku.count("POST") == 1


async def test_latest_blocks_publishing_with_the_error_tag_policy(flow: Flow) -> None:
    flow.push("latest")
    await flow.start(tag_policy="Error")
    await flow.create(flow.image("latest"))

    blocked = await flow.blocked("LatestTag")

    assert ":latest" in verified(blocked)["message"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [({}, ["1.3.0", "1.2.4"]), ({"updateRange": ">=1.2.3 <3"}, ["2.0.0", "1.3.0", "1.2.4"])],
    ids=["same-major", "range"],
)
async def test_newer_versions_are_reported(
    flow: Flow, policy: dict[str, str], expected: list[str]
) -> None:
    for tag in ("1.2.3", "2.0.0", "1.2.4", "1.3.0", "latest"):
        flow.push(tag, config={**CONFIG, "Cmd": [tag]})
    metrics.AVAILABLE_UPDATES.set(0)  # process-wide: other tests may have left a value
    await flow.start()
    await flow.create(flow.image("1.2.3"), smoke=False, **policy)

    ready = await flow.ready()

    status = ready["status"]["image"]
    assert (status["latestVersion"], status["availableUpdates"]) == (expected[0], expected)
    assert expected[0] in (await flow.event("UpdateAvailable"))["message"]
    assert REGISTRY.get_sample_value("renku_env_operator_available_image_updates") == 1
    assert flow.published(ready) == flow.image("1.2.3")


async def test_a_moved_tag_is_tested_again_before_renku_gets_it(flow: Flow) -> None:
    first = flow.push("1.0.0")
    image = flow.image("1.0.0")
    flow.plan_smoke()
    await flow.start(recheck_seconds=0.5)
    await flow.create(image, pinDigest=True)
    ready = await flow.ready()
    assert flow.published(ready) == f"{image}@{first}"

    gate = asyncio.Event()
    flow.plan_smoke(session=[logs(""), proxy(8888), scheduled(), hold(gate), started(ready=True)])
    second = flow.push("1.0.0", config={**CONFIG, "Cmd": ["moved"]})

    assert second in (await flow.event("ImageTagMoved"))["message"]
    await flow.wait(has_condition("SmokeTested", "Unknown", "Running"))
    assert flow.session_images() == [f"{image}@{first}", f"{image}@{second}"]
    assert flow.published(ready) == f"{image}@{first}"  # not before the new digest passed

    gate.set()
    tested = await flow.wait(
        lambda o: (
            dig(o, "status.smokeTest.image") == f"{image}@{second}"
            and has_condition("Ready", "True")(o)
        )
    )
    assert tested["status"]["smokeTest"]["result"] == "Passed"
    await flow.renku.wait_until_async(lambda _: flow.published(tested) == f"{image}@{second}")


@pytest.mark.parametrize("outcome", ["Passed", "Failed"])
async def test_the_newest_update_is_smoke_tested_once_when_asked(flow: Flow, outcome: str) -> None:
    flow.push("1.2.3")
    candidate = flow.push("1.3.0", config={**CONFIG, "Cmd": ["new"]})
    flow.plan_smoke()
    crash = flow.kubelet.scenario("crashloop", exit_code=127, log="exec: new: not found")
    flow.plan_smoke("update", session=crash if outcome == "Failed" else None)
    await flow.start(recheck_seconds=0.5)
    await flow.create(flow.image("1.2.3"), testUpdates=True)

    event = await flow.event(f"UpdateTest{outcome}")

    tested = f"{flow.image('1.3.0')}@{candidate}"  # exactly the digest the tag had
    assert tested in event["message"]
    obj = await flow.wait(lambda o: dig(o, "status.image.updateTest.result") == outcome)
    assert obj["status"]["image"]["latestDigest"] == candidate
    assert obj["status"]["image"]["updateTest"]["image"] == tested
    # What `bump` makes of this status: a file that pins digests gets exactly the tested one.
    pinned = f"{flow.image('1.2.3')}@{obj['status']['image']['digest']}"
    decision = bump.decide(pinned, {**obj, "spec": {**obj["spec"], "image": pinned}})
    if outcome == "Passed":
        assert (decision.action, decision.new_image) == ("bump", tested)
    else:
        assert (decision.action, decision.reason) == ("skip", bump.UPDATE_TEST_FAILED)
    assert has_condition("Ready", "True")(obj)
    assert flow.published(obj) == flow.image("1.2.3")  # advisory: the current image stays
    # The registry is asked again (checkedAt has a resolution of one second): same candidate,
    # so the verdict stands and no second update pod starts.
    checked = obj["status"]["image"]["checkedAt"]
    again = await flow.wait(lambda o: dig(o, "status.image.checkedAt") != checked)
    assert dig(again, "status.image.updateTest.result") == outcome
    assert flow.session_images() == [
        flow.image("1.2.3") + "@" + again["status"]["image"]["digest"],
        tested,
    ]


async def test_an_update_whose_tag_moves_after_its_test_is_tested_again(flow: Flow) -> None:
    flow.push("1.2.3")
    first = flow.push("1.3.0", config={**CONFIG, "Cmd": ["new"]})
    flow.plan_smoke()
    flow.plan_smoke("update")
    await flow.start(recheck_seconds=0.5)
    await flow.create(flow.image("1.2.3"), testUpdates=True)
    await flow.wait(lambda o: dig(o, "status.image.updateTest.result") == "Passed")

    # The tag is pushed again (another build): what passed is not what 1.3.0 is now.
    crash = flow.kubelet.scenario("crashloop", exit_code=127, log="exec: newer: not found")
    flow.plan_smoke("update", session=crash)
    second = flow.push("1.3.0", config={**CONFIG, "Cmd": ["newer"]})
    assert second != first

    obj = await flow.wait(
        lambda o: (
            dig(o, "status.image.updateTest.image") == f"{flow.image('1.3.0')}@{second}"
            and dig(o, "status.image.updateTest.result") == "Failed"
        )
    )
    assert obj["status"]["image"]["latestDigest"] == second
    assert flow.session_images()[1:] == [
        f"{flow.image('1.3.0')}@{first}",
        f"{flow.image('1.3.0')}@{second}",
    ]
