"""Mount checks, run without `pods/exec`: a short-lived probe pod with the session's image.

The probe pod runs as the session does (same image, uid, gid, fsGroup, working directory) but
replaces the command with a `/bin/sh` script that prints machine-readable lines to its log:

- container `mounted` has the session volume at the mount directory: which uid/gid the process
  has, whether the mount directory is writable, whether the working directory exists in it;
- container `image` has no volume: it lists what the image itself ships under the mount
  directory, which a session never sees (the volume hides it).

The script uses shell built-ins only (no `id`, `ls`), so any POSIX shell will do. An image
without `/bin/sh` cannot start the containers: that is "Skipped: no shell", never a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.spec import GlobalEnvironmentSpec
from ..api.status import CheckStatus
from ..config import Settings
from .smokepod import OwnerRef, SessionSettings, container_security, pod_basics, pod_metadata

PREFIX = "renku-probe"
MOUNTED, IMAGE = "mounted", "image"
MOUNTED_CHECKS = ("User", "MountWritable", "WorkingDirectory")
IMAGE_CHECKS = ("HiddenFiles",)
MAX_LISTED = 20

_MOUNTED_SCRIPT = r"""
p() { echo "renku-probe $*"; }
uid=unknown; gid=unknown
while read -r key real effective rest; do
  case "$key" in Uid:) uid=$effective ;; Gid:) gid=$effective ;; esac
done < /proc/self/status
p "user $uid $gid $PROBE_UID $PROBE_GID"
f="$PROBE_MOUNT/.renku-smoke-probe.$$"
if (: > "$f") 2>/dev/null; then rm -f "$f" 2>/dev/null; p "mount writable $PROBE_MOUNT"
else p "mount readonly $PROBE_MOUNT"; fi
if [ ! -d "$PROBE_WORK" ]; then p "workdir missing $PROBE_WORK"
elif [ -w "$PROBE_WORK" ]; then p "workdir writable $PROBE_WORK"
else p "workdir readonly $PROBE_WORK"; fi
p "done mounted"
"""

_IMAGE_SCRIPT = r"""
p() { echo "renku-probe $*"; }
n=0
if [ -d "$PROBE_MOUNT" ]; then
  for f in "$PROBE_MOUNT"/* "$PROBE_MOUNT"/.[!.]* "$PROBE_MOUNT"/..?*; do
    if [ -e "$f" ] || [ -L "$f" ]; then
      n=$((n + 1))
      if [ "$n" -le "$PROBE_MAX" ]; then p "shipped ${f##*/}"; fi
    fi
  done
fi
p "shipped-count $n $PROBE_MOUNT"
p "done image"
"""

_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "16Mi"},
    "limits": {"cpu": "200m", "memory": "64Mi"},
}


def _resources(settings: Settings) -> dict[str, dict[str, str]]:
    """Small CPU and memory; the session's ephemeral-storage bounds, so no image fills a disk."""
    return {
        "requests": {
            **_RESOURCES["requests"],
            "ephemeral-storage": settings.smoke_ephemeral_storage_request,
        },
        "limits": {
            **_RESOURCES["limits"],
            "ephemeral-storage": settings.smoke_ephemeral_storage_limit,
        },
    }


def build_probe_pod(
    *,
    name: str,
    namespace: str,
    owner: OwnerRef,
    spec: GlobalEnvironmentSpec,
    image: str,
    image_workdir: str | None,
    settings: Settings,
    labels: Mapping[str, str],
    timeout_seconds: int,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The probe pod's manifest: runs once (restartPolicy Never) and logs its findings."""
    session = SessionSettings.of(spec, image_workdir)
    env = [
        {"name": "PROBE_UID", "value": str(session.uid)},
        {"name": "PROBE_GID", "value": str(session.gid)},
        {"name": "PROBE_MOUNT", "value": session.paths.mount_dir},
        {"name": "PROBE_WORK", "value": session.paths.work_dir},
        {"name": "PROBE_MAX", "value": str(MAX_LISTED)},
    ]

    def container(name: str, script: str, working_dir: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": image,
            "imagePullPolicy": "Always",
            "command": ["/bin/sh", "-c", script],
            "workingDir": working_dir,
            "env": env,
            "securityContext": container_security(session.uid, session.gid),
            "resources": _resources(settings),
        }

    mounted = container(MOUNTED, _MOUNTED_SCRIPT, session.paths.work_dir)
    mounted["volumeMounts"] = [{"name": "workspace", "mountPath": session.paths.mount_dir}]
    # "/" exists in every image: the runtime creates nothing that would hide what is shipped.
    shipped = container(IMAGE, _IMAGE_SCRIPT, "/")
    pod_spec = pod_basics(session.gid, settings, timeout_seconds)
    pod_spec |= {
        "restartPolicy": "Never",
        "containers": [mounted, shipped],
        "volumes": [{"name": "workspace", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_metadata(name, namespace, owner, labels, annotations),
        "spec": pod_spec,
    }


def parse_probe_log(text: str) -> list[CheckStatus]:
    """The checks found in probe log lines (other lines are ignored)."""
    facts: dict[str, list[str]] = {}
    shipped: list[str] = []
    for line in text.splitlines():
        if not line.startswith(f"{PREFIX} "):
            continue
        key, _, rest = line.removeprefix(f"{PREFIX} ").partition(" ")
        if key == "shipped":
            shipped.append(rest)
        else:
            facts[key] = rest.split(" ", 4 if key == "user" else 1)
    checks = [_user(facts.get("user")), _mount(facts.get("mount")), _workdir(facts.get("workdir"))]
    checks.append(_hidden(facts.get("shipped-count"), shipped))
    return [check for check in checks if check is not None]


def _user(fact: list[str] | None) -> CheckStatus | None:
    if fact is None or len(fact) < 4:
        return None
    uid, gid, want_uid, want_gid = fact[:4]
    if (uid, gid) == (want_uid, want_gid):
        return CheckStatus(name="User", result="Passed", message=f"runs as uid {uid}, gid {gid}")
    return CheckStatus(
        name="User",
        result="Failed",
        message=(
            f"the session process runs as uid {uid}, gid {gid} instead of uid {want_uid}, gid "
            f"{want_gid}: something in the cluster (an admission webhook, a pod security "
            "policy) overrides runAsUser/runAsGroup; Renku's sessions would run the same way"
        ),
    )


def _mount(fact: list[str] | None) -> CheckStatus | None:
    if fact is None or len(fact) < 2:
        return None
    state, path = fact
    if state == "writable":
        return CheckStatus(name="MountWritable", result="Passed", message=f"{path} is writable")
    return CheckStatus(
        name="MountWritable",
        result="Failed",
        message=(
            f"the session cannot write to its mount directory {path}, even with the volume's "
            "group set to gid (fsGroup): users could not save work; check uid/gid and "
            "mountDirectory"
        ),
    )


def _workdir(fact: list[str] | None) -> CheckStatus | None:
    if fact is None or len(fact) < 2:
        return None
    state, path = fact
    if state == "writable":
        message = f"{path} exists and is writable"
        return CheckStatus(name="WorkingDirectory", result="Passed", message=message)
    what = "does not exist" if state == "missing" else "is not writable for the session's user"
    return CheckStatus(
        name="WorkingDirectory",
        result="Warning",
        message=(
            f"the working directory {path} {what} on a fresh session volume (the container "
            "runtime creates a missing working directory as root): users start in a directory "
            "they cannot use; set workingDirectory to the mount directory, or create it at "
            "start-up"
        ),
    )


def _hidden(fact: list[str] | None, shipped: list[str]) -> CheckStatus | None:
    if fact is None or len(fact) < 2 or not fact[0].isdigit():
        return None
    count, path = int(fact[0]), fact[1]
    if count == 0:
        message = f"the image ships nothing under {path}"
        return CheckStatus(name="HiddenFiles", result="Passed", message=message)
    listed = ", ".join(shipped[:MAX_LISTED]) + (", ..." if count > len(shipped) else "")
    return CheckStatus(
        name="HiddenFiles",
        result="Warning",
        message=(
            f"the image ships {count} entries under the mount directory {path} ({listed}); "
            "the session volume is mounted over them, so sessions never see them: move them "
            "out of mountDirectory (e.g. to /opt) or copy them in at start-up"
        ),
    )


def probe_checks(
    pod: Mapping[str, Any], logs: Mapping[str, str | None]
) -> list[CheckStatus] | None:
    """The checks of a finished probe pod, or None while it still runs.

    `logs` maps container names to their log text (None when it could not be read).
    """
    statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
    checks: list[CheckStatus] = []
    for name, names in ((MOUNTED, MOUNTED_CHECKS), (IMAGE, IMAGE_CHECKS)):
        state = (statuses.get(name) or {}).get("state") or {}
        no_shell = _no_shell(state)
        if no_shell:
            checks += skipped(names, f"no shell: the image has no /bin/sh ({no_shell})")
            continue
        terminated = state.get("terminated")
        if terminated is None:
            return None
        found = parse_probe_log(logs.get(name) or "")
        seen = {check.name for check in found}
        why = f"the probe exited with code {terminated.get('exitCode')} before reporting"
        checks += found + skipped([n for n in names if n not in seen], why)
    return checks


def skipped(names: tuple[str, ...] | list[str], why: str) -> list[CheckStatus]:
    """The same Skipped result for several checks."""
    return [CheckStatus(name=name, result="Skipped", message=why) for name in names]


def _no_shell(state: Mapping[str, Any]) -> str | None:
    # containerd: terminated StartError, Docker: ContainerCannotRun, both or CRI-O may also
    # leave the container waiting with RunContainerError/CreateContainerError.
    for detail in (state.get("terminated"), state.get("waiting")):
        message = str((detail or {}).get("message") or "")
        lowered = message.lower()
        missing = "no such file" in lowered or "not found" in lowered
        if "/bin/sh" in message and missing:
            return message[-200:]
    return None
