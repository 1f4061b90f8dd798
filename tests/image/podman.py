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

`start_traced` starts such a container with strace attached to its first process before that process
execs the entrypoint; `file_writes` reads what the trace shows the container wrote, or tried to write,
outside the places the pod spec makes writable.
"""

from __future__ import annotations

import posixpath
import re
import resource
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

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

    def writable_paths(self) -> list[str]:
        """Where the container may write: its volume mounts that are not read-only (the chart's /tmp
        emptyDir), and /dev, which the runtime gives every container (/dev/null, the /dev/shm tmpfs).
        Everything else is the image's root filesystem, read-only, or a read-only mount."""
        mounts = [m["mountPath"] for m in self.container.get("volumeMounts", []) if not m.get("readOnly")]
        return [*mounts, "/dev"]

    def argv(self, command: Sequence[str] | None = None, verb: str = "run") -> list[str]:
        """`podman run` (or `create`) of the container. `command`, if given, replaces the container's
        command and args: a control run of the same pod."""
        args: list[str] = []
        if command is None:
            command = list(self.container.get("command", []))
            args = list(self.container.get("args", []))
        entrypoint = [f"--entrypoint={command[0]}"] if command else []
        env = [f"--env={key}={value}" for key, value in sorted(self.env().items())]
        return [
            "podman",
            verb,
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
            *args,
        ]


# -- every file write the container attempts, by strace ---------------------------------------------

STRACE = shutil.which("strace") or "strace"
#: The system calls that create, change or remove a file or a directory entry (an open asks to when
#: its flags say so), and execve, which marks where the container's entrypoint begins. strace shows
#: them whatever their result: a write the read-only root refuses is as visible as one that succeeds.
FILE_CALLS = (
    "open,openat,openat2,creat,mkdir,mkdirat,mknod,mknodat,rename,renameat,renameat2,unlink,unlinkat,"
    "rmdir,link,linkat,symlink,symlinkat,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,truncate,"
    "ftruncate,utime,utimes,futimesat,utimensat,setxattr,lsetxattr,fsetxattr,removexattr,lremovexattr,"
    "fremovexattr,execve,execveat"
)
OPENS = {"open", "openat", "openat2"}
WRITE_FLAGS = re.compile(r"\bO_(WRONLY|RDWR|CREAT|TRUNC|APPEND)\b")
#: one traced call: `<seconds> <call>(<arguments>) = <result>` (or `<unfinished ...>`)
CALL = re.compile(r"^(?P<time>\d+\.\d+) (?P<call>\w+)\((?P<rest>.*)$")
STRING = r'"(?P<string>(?:[^"\\]|\\.)*)"'
#: with -y strace names the file an fd argument is, AT_FDCWD included: `3</tmp>`, `AT_FDCWD</tmp>`
AT = re.compile(r"(?:AT_FDCWD|\d+)<(?P<dir>[^>]*)>, " + STRING)
FD = re.compile(r"(?:AT_FDCWD|\d+)<(?P<file>[^>]*)>")


@dataclass
class Traced:
    """A container started under strace: `proc` is `podman start --attach` (its exit code is the
    container's), `tracer` the strace, which ends when the container's last process does; the trace is
    one file per traced thread, `<trace>.<tid>`."""

    name: str
    trace: Path
    proc: subprocess.Popen[bytes]
    tracer: subprocess.Popen[bytes]

    def wait(self, timeout: float) -> int:
        """The container's exit code, once it and the tracer (its trace complete) have ended."""
        code = self.proc.wait(timeout=timeout)
        self.tracer.wait(timeout=timeout)
        return code

    def kill(self) -> None:
        subprocess.run(["podman", "rm", "--force", "--time=0", self.name], capture_output=True, check=False)
        for proc in (self.proc, self.tracer):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=60)


def start_traced(run: PodRun, trace: Path, out: IO[bytes], command: Sequence[str] | None = None) -> Traced:
    """Start the container with every file system call of its processes traced from the entrypoint's
    first instruction: `podman create`, then `podman init` (runc makes the container's first process
    and holds it before it execs the entrypoint), strace attached to that process following its threads
    and children, and only then `podman start --attach`, whose output goes to `out`."""
    subprocess.run(run.argv(command, verb="create"), capture_output=True, text=True, check=True)
    subprocess.run(["podman", "init", run.name], capture_output=True, text=True, check=True)
    pid = subprocess.run(
        ["podman", "inspect", "--format={{.State.Pid}}", run.name], capture_output=True, text=True, check=True
    ).stdout.strip()
    tracer = subprocess.Popen(
        [STRACE, "-ff", "-ttt", "-qq", "-y", "-s", "4096", "-e", f"trace={FILE_CALLS}", "-o", str(trace),
         "-p", pid],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not re.search(r"^TracerPid:\s*[1-9]", Path(f"/proc/{pid}/status").read_text(), re.M):
        assert tracer.poll() is None and time.monotonic() < deadline, "strace did not attach"
        time.sleep(0.05)
    proc = subprocess.Popen(["podman", "start", "--attach", run.name], stdout=out, stderr=subprocess.STDOUT)
    return Traced(run.name, trace, proc, tracer)


def _calls(trace: Path) -> Iterator[tuple[float, str, str]]:
    """(time, call, arguments) of every traced call, in every thread's file."""
    for path in sorted(trace.parent.glob(trace.name + ".*")):
        for line in path.read_text(errors="replace").splitlines():
            match = CALL.match(line)
            if match:
                rest = match["rest"]
                # the arguments only: an open's result names the file too (`= 3</tmp/x>`)
                arguments = rest.rpartition(") = ")[0] if ") = " in rest else rest
                yield float(match["time"]), match["call"], arguments


def _paths(arguments: str) -> list[str]:
    """The files a call names: `dirfd<dir>, "name"` pairs joined, then bare strings (relative ones are
    kept as they are: outside every allowed place), then fds strace resolved (`4</tmp/x>`)."""
    found = [posixpath.join(m["dir"], m["string"]) for m in AT.finditer(arguments)]
    rest = AT.sub("", arguments)
    found += [m["string"] for m in re.finditer(STRING, rest)]
    rest = re.sub(STRING, "", rest)
    # an fd that is no file (socket:[...], pipe:[...], anon_inode:...) or anonymous memory is no write
    found += [
        m["file"]
        for m in FD.finditer(rest)
        if m["file"].startswith("/") and not m["file"].startswith("/memfd:")
    ]
    return [posixpath.normpath(path) for path in found]


def file_writes(trace: Path, writable: Sequence[str]) -> list[str]:
    """The traced calls, after the entrypoint's exec, that wrote or tried to write a file outside the
    `writable` directories, whatever their result, as strace shows them."""
    calls = list(_calls(trace))
    starts = [moment for moment, call, _ in calls if call.startswith("execve")]
    assert starts, f"no exec in {trace}.*: strace did not see the container's entrypoint start"
    found = []
    for moment, call, arguments in calls:
        if moment < min(starts) or call.startswith("execve"):
            continue
        if call in OPENS and not WRITE_FLAGS.search(arguments):
            continue
        outside = [
            path
            for path in _paths(arguments)
            if not any(path == top or path.startswith(top.rstrip("/") + "/") for top in writable)
        ]
        if outside:
            found.append(f"{call}({arguments})")
    return found
