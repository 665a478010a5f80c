"""From the admin panel to the operator: export what a fresh Renku holds, apply it to the
running operator, and Renku sees no write at all (adoption of identical state).

`renku-env-operator export` runs as the installed console script, with the credentials Secret
read through the kubeconfig as the operator would. The manifests are applied in the operator's
own namespace, where adoption (spec.renkuId) is allowed. Exported manifests carry no smokeTest:
the operator's default smoke test runs, and an environment whose image fails it leaves Renku
as it is (last known good).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from renku_env_operator.domain.smokepod import GLOBAL_ENVIRONMENT, ROLE
from tests.support.console import command_env, needs_command, run_cli
from tests.support.kube import GENV, Kube
from tests.support.kubelet import Kubelet
from tests.support.operator_fixtures import ENVS, NAMESPACE, condition, env_writes, has_condition
from tests.support.renku_double import RenkuDouble
from tests.support.renku_seed import seed_fresh_renku

pytestmark = needs_command
FAILING = "minimal-shell"  # its image crashes in the smoke test


def plan_smoke_test(kubelet: Kubelet, manifest: dict[str, Any]) -> None:
    name, spec = manifest["metadata"]["name"], manifest["spec"]
    if name == FAILING:
        kubelet.plan({ROLE: "session", GLOBAL_ENVIRONMENT: name}, kubelet.scenario("crashloop"))
        return
    kubelet.plan(
        {ROLE: "session", GLOBAL_ENVIRONMENT: name},
        kubelet.scenario("ready", port=spec.get("port", 8080)),
    )
    uid, gid = spec.get("uid", 1000), spec.get("gid", 1000)
    mount, work = spec["mountDirectory"], spec["workingDirectory"]
    log = "\n".join(
        [
            f"renku-probe user {uid} {gid} {uid} {gid}",
            f"renku-probe mount writable {mount}",
            f"renku-probe workdir writable {work}",
            f"renku-probe shipped-count 0 {mount}",
        ]
    )
    kubelet.plan({ROLE: "probe", GLOBAL_ENVIRONMENT: name}, kubelet.scenario("completed", log=log))


async def test_exported_environments_are_adopted_without_a_single_write_to_renku(
    kube: Kube,
    kubelet: Kubelet,
    renku_double: RenkuDouble,
    start_operator: Any,
    tmp_path: Path,
) -> None:
    seeded = seed_fresh_renku(renku_double)
    before = renku_double.environments
    token = base64.b64encode(renku_double.admin_token.encode()).decode()
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "renku-admin", "namespace": NAMESPACE},
            "data": {"token": token},
        }
    )
    env = command_env() | {
        "KUBECONFIG": str(kube.kubeconfig_path),
        "RENKU_ENV_OPERATOR_RENKU_URL": renku_double.url,
    }
    out_dir = tmp_path / "environments"

    code, _, err = await run_cli(
        env, "export", "--credentials-secret", "renku-admin", "-n", NAMESPACE, "-o", str(out_dir)
    )

    assert code == 0, err
    assert err == "6 environment(s) exported, 6 with an image to pin (see the TODO comments)\n"
    files = sorted(out_dir.glob("*.yaml"))
    assert len(files) == len(seeded)
    assert all("# TODO: " in f.read_text() for f in files)
    code, out, err = await run_cli(env, "validate", str(out_dir))
    assert code == 0, out + err
    assert out == "6 GlobalEnvironment(s) checked, 0 invalid, 0 warning(s)\n"
    # The Secret's token went out (Renku lists to anyone; the operator's identity is used).
    listed = [r for r in renku_double.requests if r.path.startswith(ENVS)]
    assert [(r.method, r.query, r.user) for r in listed] == [
        ("GET", {"include_archived": "false"}, "admin1")
    ]

    manifests = [yaml.safe_load(f.read_text()) for f in files]
    assert {m["spec"]["renkuId"] for m in manifests} == {e["id"] for e in seeded}
    for manifest in manifests:
        plan_smoke_test(kubelet, manifest)
    renku_double.clear_requests()
    await start_operator(smoke_timeout_seconds=30, smoke_stable_seconds=0)
    for manifest in manifests:
        await kube.create(manifest)

    for manifest in manifests:
        name = manifest["metadata"]["name"]
        if name == FAILING:
            obj = await kube.wait_for(
                GENV, NAMESPACE, name, has_condition("SmokeTested", "False"), timeout=60
            )
            synced = condition(obj, "Synced")
            assert synced is None or synced["status"] != "True"
        else:
            obj = await kube.wait_for(
                GENV, NAMESPACE, name, has_condition("Ready", "True"), timeout=60
            )
            assert obj["status"]["renkuId"] == manifest["spec"]["renkuId"]
            assert has_condition("Synced", "True", "InSync")(obj)
            await kube.wait_event(name, "Adopted", namespace=NAMESPACE)

    assert env_writes(renku_double) == []
    assert renku_double.environments == before


async def test_export_uses_the_operators_client_credentials_secret_setting(
    kube: Kube, renku_double: RenkuDouble, tmp_path: Path
) -> None:
    seed_fresh_renku(renku_double)
    data = {
        k: base64.b64encode(v.encode()).decode()
        for k, v in renku_double.client_secret_data().items()
    }
    await kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "renku-client", "namespace": NAMESPACE},
            "data": data,
        }
    )
    env = command_env() | {
        "KUBECONFIG": str(kube.kubeconfig_path),
        "POD_NAMESPACE": NAMESPACE,  # the Secret's namespace defaults to the operator's
        "RENKU_ENV_OPERATOR_RENKU_URL": renku_double.url,
        "RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET": "renku-client",
    }

    code, out, err = await run_cli(env, "export")

    assert code == 0, err
    assert len(list(yaml.safe_load_all(out))) == 6
    assert len(renku_double.issued_tokens) == 1  # a client-credentials grant was made
    listed = [r for r in renku_double.requests if r.path.startswith(ENVS)]
    assert len(listed) == 1
    assert listed[0].user is not None

    env["RENKU_ENV_OPERATOR_RENKU_CREDENTIALS_SECRET"] = "missing"
    code, out, err = await run_cli(env, "export")
    assert (code, out) == (1, "")
    assert err.startswith(f"error: credentials Secret {NAMESPACE}/missing: ")
    assert err.count("\n") == 1
