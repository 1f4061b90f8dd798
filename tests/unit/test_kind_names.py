"""A kind is named only where docs/engine.md ("Adding a kind") says a new kind goes: its own files,
the registry line, the test facts, the README's table, and the files `make crds` generates. Anywhere
else a list of kinds would be a copy that the next kind has to find and extend by hand.

The first registered kind is the project's running example: docs and generic tests may name it
anywhere (`kubectl wait qplugin/weather`). Every other kind is held to its places, which is what a new
kind will be held to.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from q_operator.kinds.base import KindInfo
from q_operator.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DOC = ROOT / "docs" / "engine.md"

#: The files a new kind adds. Placeholders: <kind> (singular), <Kind>, <group>, <plural>, <service>.
NEW_FILES = (
    "operator/q_operator/kinds/<kind>.py",
    "docs/<kind>.md",
    "samples/<kind>-*.yaml",
    "tests/unit/test_<kind>_*.py",
    "tests/e2e/test_<kind>.py",
    "tests/fixtures/status/<kind>-*.json",
    "crds/<group>_<plural>.yaml",
    "charts/q-operator/crds/<group>_<plural>.yaml",
    "argocd/<kind>.lua",
    "argocd/resource_customizations/<group>/<Kind>/*",
    "operator/q_operator/emulate/aws/services/<service>.py",
    "tests/emulators/test_aws_<service>.py",
)
#: The files a new kind edits (or `make crds` regenerates).
EDITED_FILES = (
    "operator/q_operator/registry.py",
    "tests/kinds.py",
    "README.md",
    "operator/q_operator/emulate/aws/services/registry.py",
    "argocd/argocd-cm.yaml",
    "charts/q-operator/files/kind-rules.yaml",
    "charts/q-operator/files/user-edit-rules.yaml",
    "charts/q-operator/files/user-view-rules.yaml",
    "docs/iam-policy.json",
    "docs/iam-tenant-policy.json",
)


#: Files that name other kinds as examples on purpose, each with its reason. Keep it short: a file
#: here is one a new kind never has to touch, only one that happens to show several kinds.
EXAMPLES = {
    "tests/fixtures/alerts/recording.json": "a recording of a real run's /metrics: every kind's series",
    "tests/e2e/test_metrics_alerts.py": "records /metrics over objects of several kinds (a connector's "
    "tag key is the input only the model refuses)",
    "tests/alerting.py": "synthetic series labelled with a kind",
    "tests/unit/test_alerts.py": "synthetic series labelled with a kind",
}


def _files() -> list[str]:
    """Every file of the repository (tracked, or new and not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return sorted({name for name in listed if (ROOT / name).is_file()})


def _allowed(kind: KindInfo[Any, Any]) -> list[str]:
    fill = {
        "<kind>": kind.singular,
        "<Kind>": kind.kind,
        "<group>": kind.group,
        "<plural>": kind.plural,
        "<service>": kind.service,
    }
    patterns = []
    for pattern in (*NEW_FILES, *EDITED_FILES):
        for placeholder, value in fill.items():
            pattern = pattern.replace(placeholder, value)
        patterns.append(pattern)
    return patterns


def _names(kind: KindInfo[Any, Any]) -> re.Pattern[str]:
    """The kind's name (also its singular, and its plural's stem), its group and its short names."""
    words = [re.escape(kind.kind), re.escape(kind.group), *(rf"\b{re.escape(s)}\b" for s in kind.short_names)]
    return re.compile("|".join(words), re.IGNORECASE)


def _spelled(path: Path, pattern: re.Pattern[str]) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    return [
        f"{n}: {line.strip()[:100]}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)
    ]


@pytest.mark.parametrize("kind", KINDS[1:], ids=lambda k: k.kind)
def test_a_kind_is_named_only_in_its_places(kind: KindInfo[Any, Any]) -> None:
    allowed = _allowed(kind)
    pattern = _names(kind)
    outside = {}
    for name in _files():
        if name in EXAMPLES or any(fnmatch.fnmatch(name, a) for a in allowed):
            continue
        found = _spelled(ROOT / name, pattern)
        if found:
            outside[name] = found[:3]
    assert not outside, (
        f"{kind.kind} is named outside the places docs/engine.md lists for a kind; read it from the "
        f"registry (or tests/kinds.py) instead: {outside}"
    )


def test_the_engine_doc_lists_exactly_these_files() -> None:
    text = ENGINE_DOC.read_text()
    section = text[text.index("## Adding a kind") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    listed = set(re.findall(r"^\s*[-*] `([^`]+)`", section, re.MULTILINE))
    assert listed == set(NEW_FILES) | set(EDITED_FILES)


def test_every_kind_has_the_new_files_it_needs() -> None:
    files = _files()
    optional = {
        "operator/q_operator/emulate/aws/services/<service>.py",
        "tests/emulators/test_aws_<service>.py",
    }
    for kind in KINDS:
        for pattern, filled in zip(NEW_FILES, _allowed(kind), strict=False):
            if pattern in optional:
                continue
            assert any(fnmatch.fnmatch(name, filled) for name in files), f"{kind.kind}: no {filled}"
