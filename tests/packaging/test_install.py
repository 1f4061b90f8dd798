"""The package installs two ways, as a user would install it from the repository: plain (the operator
only) and with the `standins` extra (the local stand-ins that `make demo` and the tests run on).

A plain install runs the operator and generates CRDs; its stand-in commands say what to install
instead of failing on an import. Adding the extra makes both stand-ins start. One fresh virtualenv
serves both, in this order: the plain install first, then the extra added to it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest

from q_operator.sandbox import wait_for

ROOT = Path(__file__).resolve().parents[2]
HINT = "pip install 'q-operator[standins]'"

pytestmark = pytest.mark.timeout(900)


class Install:
    """A fresh virtualenv holding q-operator installed from a copy of the repository's sources."""

    def __init__(self, workdir: Path) -> None:
        self.source = workdir / "src"
        self.env = workdir / "venv"
        shutil.copytree(
            ROOT / "operator",
            self.source / "operator",
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
        )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, self.source / name)
        venv.EnvBuilder(with_pip=True).create(self.env)
        self.pip_install(str(self.source))

    def pip_install(self, requirement: str) -> None:
        result = subprocess.run(
            [str(self.env / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
            capture_output=True,
            text=True,
            timeout=800,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def has(self, distribution: str) -> bool:
        code = f"import importlib.metadata as m; m.version({distribution!r})"
        return (
            subprocess.run([str(self.env / "bin" / "python"), "-c", code], capture_output=True).returncode
            == 0
        )

    def q_operator(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.env / "bin" / "q-operator"), *args], capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Install:
    install = Install(tmp_path_factory.mktemp("install"))
    assert not install.has("cel-python"), "a plain install must not bring the stand-ins' packages"
    return install


@pytest.fixture(scope="module")
def with_standins(plain: Install) -> Install:
    plain.pip_install(f"{plain.source}[standins]")
    assert plain.has("cel-python")
    return plain


def test_plain_install_runs_the_operator_commands(plain: Install, tmp_path: Path) -> None:
    for command in (["--help"], ["run", "--help"], ["crds", "--help"]):
        result = plain.q_operator(*command)
        assert result.returncode == 0, result.stderr
        assert "usage: q-operator" in result.stdout
    # The CRDs come from the installed models, with no repository around.
    result = plain.q_operator("crds", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert len(list(tmp_path.glob("*.yaml"))) == 3


@pytest.mark.parametrize("command", [["demo"], ["emulate", "kube"], ["emulate", "aws"]])
def test_plain_install_says_what_to_install_for_the_stand_ins(plain: Install, command: list[str]) -> None:
    result = plain.q_operator(*command)
    assert result.returncode == 2
    assert HINT in result.stderr
    assert "missing cel-python" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_the_extra_both_stand_ins_start(with_standins: Install, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    starts(with_standins, tmp_path / "aws.log", "emulate", "aws", "--port", "0")
    crds = str(ROOT / "crds")
    starts(with_standins, tmp_path / "kube.log", "emulate", "kube", "--port", "0", "--crds", crds,
           "--kubeconfig", str(kubeconfig))  # fmt: skip
    assert kubeconfig.exists()


def starts(install: Install, log: Path, *args: str) -> None:
    """The command prints its READY line (then it is stopped)."""
    with log.open("wb") as out:
        proc = subprocess.Popen([str(install.env / "bin" / "q-operator"), *args], stdout=out, stderr=out)
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"q-operator {' '.join(args)} exited: {log.read_text()}"
            return "READY http" in log.read_text()

        wait_for(f"q-operator {' '.join(args)} to print READY", ready, timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_plain_install_needs_none_of_the_dev_tools() -> None:
    """The packages `pip install q-operator` brings are the operator's own: no test or lint tool, and
    the stand-ins' packages come with the extra (which the dev tools include)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.match(r"[A-Za-z0-9._-]+", dep).group() for dep in project["dependencies"]}  # type: ignore[union-attr]
    assert not names & {"pytest", "ruff", "mypy", "cel-python", "hypothesis", "lupa", "jsonschema"}
    extras = project["optional-dependencies"]
    assert "cel-python>=0.2,<1" in extras["standins"]
    assert "q-operator[standins]" in extras["dev"]
