"""The ArgoCD health check (argocd/health.lua), run in Lua 5.1 as ArgoCD runs it.

Statuses are built with the operator's own condition functions, so the script is tested against
the shapes the operator really writes (camelCase, observedGeneration on each condition).
`python tests/unit/test_argocd_health.py` regenerates argocd/argocd-cm.yaml from the script.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa.lua51 import LuaRuntime

from renku_env_operator.api.status import Condition, ConditionStatus
from renku_env_operator.domain import conditions as cond

ROOT = Path(__file__).resolve().parents[2]
HEALTH_LUA = ROOT / "argocd" / "health.lua"
ARGOCD_CM = ROOT / "argocd" / "argocd-cm.yaml"
GITOPS_DOC = ROOT / "docs" / "gitops.md"
CM_KEY = "resource.customizations.health.renku.io_GlobalEnvironment"
COMPARE_OPTIONS = "argocd.argoproj.io/compare-options"
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
CM_HEADER = """\
# Merge into Argo CD's argocd-cm ConfigMap (or the Argo CD Helm chart's configs.cm) to give
# GlobalEnvironments a real health status. Generated from argocd/health.lua: edit that file, then
# run `python tests/unit/test_argocd_health.py` to refresh this one.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def render_argocd_cm(script: str) -> str:
    """argocd-cm.yaml with `script` as the health check, in a YAML block scalar."""
    body = "".join(f"    {line}" if line.strip() else "\n" for line in script.splitlines(True))
    return f"{CM_HEADER}  {CM_KEY}: |\n{body}"


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the script on `obj` the way ArgoCD does: `obj` global, the chunk returns a table."""
    lua = LuaRuntime()
    assert lua.lua_version == (5, 1)
    # ArgoCD's VM has no os/io: make sure the script does not need them.
    for unsafe in ("os", "io", "require", "dofile", "loadfile"):
        lua.globals()[unsafe] = None
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    return {"status": result["status"], "message": result["message"]}


def genv(
    generation: int = 2,
    conditions: Sequence[Condition] = (),
    observed_generation: int | None = None,
    suspend: bool | None = None,
) -> dict[str, Any]:
    """A GlobalEnvironment as ArgoCD sees it in the cluster."""
    spec: dict[str, Any] = {"image": "ghcr.io/org/image:1.2.3"}
    if suspend is not None:
        spec["suspend"] = suspend
    status: dict[str, Any] = {
        "conditions": [c.model_dump(by_alias=True, exclude_none=True) for c in conditions]
    }
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    return {
        "apiVersion": "renku.io/v1alpha1",
        "kind": "GlobalEnvironment",
        "metadata": {"name": "python", "namespace": "renku", "generation": generation},
        "spec": spec,
        "status": status,
    }


def conditions_with(
    status: ConditionStatus, reason: str = "Pending", generation: int | None = 2
) -> list[Condition]:
    """Conditions as the operator derives them: SmokeTested set, Ready summarising.

    Unknown is a first visit (everything pending); otherwise the other checks passed.
    """
    base = cond.initial([], generation)
    if status == "Unknown":
        return base
    for type_ in cond.SPECIFIC:
        base = cond.set_condition(base, type_, "True", "Checked", "ok", generation)
    base = cond.set_condition(base, cond.SMOKE_TESTED, status, reason, "pod said so", generation)
    return cond.with_ready(base, generation)


def test_ready_for_the_current_generation_is_healthy() -> None:
    result = health(genv(conditions=conditions_with("True", "Passed")))
    assert result == {
        "status": "Healthy",
        "message": "Validated, tested and in sync with Renku.",
    }


def test_without_status_it_is_progressing() -> None:
    obj = genv()
    del obj["status"]
    assert health(obj)["status"] == "Progressing"
    assert "Ready condition" in health(obj)["message"]


def test_without_a_ready_condition_it_is_progressing() -> None:
    only_validated = cond.set_condition([], cond.VALIDATED, "True", "Valid", "ok", 2)
    assert health(genv(conditions=only_validated))["status"] == "Progressing"


@pytest.mark.parametrize("observed", [1, None])
def test_a_generation_not_observed_yet_is_progressing(observed: int | None) -> None:
    # Ready=True from generation 1 says nothing about the spec of generation 2.
    result = health(genv(conditions=conditions_with("True", "Passed", generation=observed)))
    assert result == {
        "status": "Progressing",
        "message": "Waiting for the operator to observe generation 2.",
    }


def test_status_observed_generation_stands_in_for_the_conditions_one() -> None:
    obj = genv(conditions=conditions_with("True", "Passed", generation=None), observed_generation=2)
    assert health(obj)["status"] == "Healthy"


def test_the_conditions_observed_generation_wins_over_the_status_one() -> None:
    obj = genv(conditions=conditions_with("True", "Passed", generation=1), observed_generation=2)
    assert health(obj)["status"] == "Progressing"


def test_ready_unknown_is_progressing_with_its_message() -> None:
    result = health(genv(conditions=conditions_with("Unknown")))
    assert result == {"status": "Progressing", "message": "Validated: Not checked yet."}


@pytest.mark.parametrize("reason", sorted(cond.NEEDS_HUMAN))
def test_a_reason_that_needs_a_human_is_degraded(reason: str) -> None:
    result = health(genv(conditions=conditions_with("False", reason)))
    assert result == {"status": "Degraded", "message": "SmokeTested: pod said so"}


@pytest.mark.parametrize("reason", ["RenkuUnavailable", "RegistryUnavailable", "Throttled"])
def test_a_transient_failure_is_progressing(reason: str) -> None:
    assert reason not in cond.NEEDS_HUMAN
    result = health(genv(conditions=conditions_with("False", reason)))
    assert result == {"status": "Progressing", "message": "SmokeTested: pod said so"}


@pytest.mark.parametrize("ready", ["True", "Unknown"])
def test_suspend_is_suspended_once_observed(ready: ConditionStatus) -> None:
    result = health(genv(conditions=conditions_with(ready, "Passed"), suspend=True))
    assert result["status"] == "Suspended"


def test_suspend_still_shows_what_needs_a_human() -> None:
    obj = genv(conditions=conditions_with("False", "SmokeTestFailed"), suspend=True)
    assert health(obj)["status"] == "Degraded"


def test_suspend_of_a_generation_not_observed_yet_is_progressing() -> None:
    obj = genv(conditions=conditions_with("True", "Passed", generation=1), suspend=True)
    assert health(obj)["status"] == "Progressing"


def test_suspend_false_changes_nothing() -> None:
    obj = genv(conditions=conditions_with("True", "Passed"), suspend=False)
    assert health(obj)["status"] == "Healthy"


def test_a_ready_condition_without_message_falls_back_to_its_reason() -> None:
    obj = genv(conditions=conditions_with("False", "Invalid"))
    for condition in obj["status"]["conditions"]:
        del condition["message"]
    assert health(obj) == {"status": "Degraded", "message": "Invalid"}


def test_the_scripts_reasons_are_the_operators() -> None:
    text = HEALTH_LUA.read_text()
    table = re.search(r"local NEEDS_HUMAN = \{(.*?)\n\}", text, re.DOTALL)
    assert table is not None, "NEEDS_HUMAN table not found in health.lua"
    entries = re.findall(r"^\s*(\w+) = true,$", table.group(1), re.MULTILINE)
    assert len(entries) == len(set(entries))
    assert set(entries) == cond.NEEDS_HUMAN


def test_argocd_cm_holds_the_script() -> None:
    script = HEALTH_LUA.read_text()
    text = ARGOCD_CM.read_text()
    assert yaml.safe_load(text)["data"][CM_KEY] == script
    assert text == render_argocd_cm(script), "run `python tests/unit/test_argocd_health.py`"


def test_the_gitops_guide_shows_the_same_configmap() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", GITOPS_DOC.read_text(), re.DOTALL)
    configmaps = [yaml.safe_load(b) for b in blocks if CM_KEY in b]
    assert configmaps, "docs/gitops.md has no argocd-cm block"
    assert all(cm["data"][CM_KEY] == HEALTH_LUA.read_text() for cm in configmaps)


def test_the_example_application_syncs_server_side_in_waves() -> None:
    app = yaml.safe_load((ROOT / "examples" / "argocd-application.yaml").read_text())
    assert "resources-finalizer.argocd.argoproj.io" in app["metadata"]["finalizers"]
    assert "ServerSideDiff=true" in app["metadata"]["annotations"][COMPARE_OPTIONS]
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    chart, environments = app["spec"]["sources"]
    assert (ROOT / chart["path"] / "Chart.yaml").exists()
    assert environments["directory"]["recurse"] is True
    # The guide's GlobalEnvironment goes in the wave after the operator.
    blocks = re.findall(r"```yaml\n(.*?)```", GITOPS_DOC.read_text(), re.DOTALL)
    genvs = [yaml.safe_load(b) for b in blocks if "kind: GlobalEnvironment" in b]
    assert genvs
    assert all(g["metadata"]["annotations"][SYNC_WAVE] == "1" for g in genvs)


if __name__ == "__main__":
    ARGOCD_CM.write_text(render_argocd_cm(HEALTH_LUA.read_text()))
    print(f"wrote {ARGOCD_CM.relative_to(ROOT)}")
