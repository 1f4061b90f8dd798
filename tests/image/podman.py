"""Run the chart's pod with podman: the Deployment that `helm template` renders, translated into the
`podman run` options that give the container what a kubelet would give it.

What a kubelet does and podman needs to be told, read from the rendered pod spec: the container's
args (and command), its env (a `fieldRef` to the pod's name gets the container's name; `envFrom` a
Secret gets that Secret's data), runAsUser/runAsGroup/fsGroup, readOnlyRootFilesystem,
allowPrivilegeEscalation, the dropped capabilities, the memory and CPU limits, an emptyDir per
volume mount, and, with automountServiceAccountToken, the ServiceAccount's token, CA and namespace at
/var/run/secrets/kubernetes.io/serviceaccount with KUBERNETES_SERVICE_HOST/PORT naming the API server
(what a pod's in-cluster client configuration reads). What this machine adds: the `runc` runtime
(crun is refused here), ulimits no higher than the machine's hard limits (podman's defaults are
refused), and host networking so that the container reaches the servers the test starts on 127.0.0.1.
"""

from __future__ import annotations

import resource
import subprocess
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CHART = ROOT / "charts" / "q-operator"
HELM = ROOT / ".tools" / "bin" / "helm"


def render_chart(release: str, namespace: str, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """`helm template` the chart with these `--set` values; the rendered objects."""
    sets = [f"--set={key}={value}" for key, value in values.items()]
    out = subprocess.run(
        [str(HELM), "template", release, str(CHART), f"--namespace={namespace}", *sets],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if isinstance(doc, dict)]


def find(objects: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (256Mi, 1G, 1000) in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


def cpus(quantity: str) -> str:
    """A Kubernetes CPU quantity (500m, 1) as podman's --cpus."""
    return str(int(quantity[:-1]) / 1000) if quantity.endswith("m") else quantity


def hard_ulimits() -> list[str]:
    """--ulimit options at the machine's hard limits: podman's defaults are above them and refused.
    podman itself runs with at most pid_max processes, so nproc is capped there too."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    if nproc == resource.RLIM_INFINITY or nproc > pid_max:
        nproc = pid_max
    return [f"--ulimit=nofile={nofile}:{nofile}", f"--ulimit=nproc={nproc}:{nproc}"]


@dataclass
class PodRun:
    """The `podman run` command for one container of a rendered Deployment."""

    deployment: dict[str, Any]
    image: str
    name: str
    #: data of the Secrets that `envFrom` names, by Secret name.
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: the API server's URL and a directory holding the ServiceAccount's `token`, `ca.crt` and
    #: `namespace`: mounted when the pod spec automounts the token, as a kubelet projects them.
    api_server: str = ""
    service_account: Path | None = None

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.deployment["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        [container] = self.pod["containers"]
        result: dict[str, Any] = container
        return result

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            env.update(self.secrets[source["secretRef"]["name"]])
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[var["name"]] = self.name
            else:
                raise AssertionError(f"no translation for env {var}")
        if self.automounts_token():
            url = urllib.parse.urlsplit(self.api_server)
            env.update(KUBERNETES_SERVICE_HOST=str(url.hostname), KUBERNETES_SERVICE_PORT=str(url.port))
        return env

    def automounts_token(self) -> bool:
        if not self.pod.get("automountServiceAccountToken", True):
            return False
        assert self.service_account is not None and self.api_server, "the pod mounts its token"
        return True

    def security_options(self) -> list[str]:
        pod_ctx = self.pod.get("securityContext", {})
        ctx = {**pod_ctx, **self.container.get("securityContext", {})}
        options = [f"--user={ctx['runAsUser']}:{ctx['runAsGroup']}"]
        if "fsGroup" in pod_ctx:
            options.append(f"--group-add={pod_ctx['fsGroup']}")
        if ctx.get("readOnlyRootFilesystem"):
            # Only what the pod spec mounts is writable: no tmpfs of podman's own on /run or /var/tmp.
            options += ["--read-only", "--read-only-tmpfs=false"]
        if ctx.get("allowPrivilegeEscalation") is False:
            options.append("--security-opt=no-new-privileges")
        for cap in ctx.get("capabilities", {}).get("drop", []):
            options.append(f"--cap-drop={cap.lower()}")
        for cap in ctx.get("capabilities", {}).get("add", []):
            options.append(f"--cap-add={cap.lower()}")
        # seccompProfile RuntimeDefault is podman's default profile.
        assert ctx.get("seccompProfile", {}).get("type", "RuntimeDefault") == "RuntimeDefault"
        return options

    def volume_options(self) -> list[str]:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        options = []
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            assert "emptyDir" in volume, f"no translation for volume {volume}"
            size = volume["emptyDir"].get("sizeLimit")
            tmpfs = f"--mount=type=tmpfs,destination={mount['mountPath']},tmpfs-mode=1777"
            options.append(tmpfs + (f",tmpfs-size={memory_bytes(size)}" if size else ""))
        if self.automounts_token():
            options.append(f"--volume={self.service_account}:{SERVICE_ACCOUNT_DIR}:ro")
        return options

    def resource_options(self) -> list[str]:
        limits = self.container.get("resources", {}).get("limits", {})
        options = []
        if "memory" in limits:
            options.append(f"--memory={memory_bytes(str(limits['memory']))}")
        if "cpu" in limits:
            options.append(f"--cpus={cpus(str(limits['cpu']))}")
        return options

    def argv(self) -> list[str]:
        command = list(self.container.get("command", []))
        entrypoint = [f"--entrypoint={command[0]}"] if command else []
        env = [f"--env={key}={value}" for key, value in sorted(self.env().items())]
        return [
            "podman",
            "run",
            f"--name={self.name}",
            "--runtime=runc",
            "--network=host",
            "--pull=never",
            *hard_ulimits(),
            *self.security_options(),
            *self.resource_options(),
            *self.volume_options(),
            *env,
            *entrypoint,
            self.image,
            *command[1:],
            *self.container.get("args", []),
        ]
