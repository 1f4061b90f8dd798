"""A kind is named only where docs/engine.md ("Adding a kind") says a new kind goes: its own files,
the registry line, the test facts, the README's table, its AWS service's files in the stand-in, and
the files `make crds` generates. Anywhere else a list of kinds would be a copy that the next kind has
to find and extend by hand.

What names a kind: its kind, group and short names, its AWS service (the boto3 identifier), and the
AWS operations only it calls (in code: prose may explain a generic path by the call that needs it).
A short list of files shows several kinds on purpose (`EXAMPLES`). The first registered kind is also
the project's running example: the files that use it as their one example are listed with their
reasons (`RUNNING_EXAMPLE`), so that a file which names it as one of a list of kinds is still found.
"""

from __future__ import annotations

import fnmatch
import io
import re
import subprocess
import tokenize
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
    "tests/e2e/test_<kind>*.py",
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
    "tests/emulators/aws_support.py",
    "docs/aws-standin.md",
    "argocd/argocd-cm.yaml",
    "charts/q-operator/files/kind-rules.yaml",
    "charts/q-operator/files/user-edit-rules.yaml",
    "charts/q-operator/files/user-view-rules.yaml",
    "docs/iam-policy.json",
    "docs/iam-tenant-policy.json",
)


#: Files that name several kinds as examples on purpose, each with its reason. Keep it short: a file
#: here is one a new kind never has to touch, only one that happens to show several kinds.
EXAMPLES = {
    "tests/fixtures/alerts/recording.json": "a recording of a real run's /metrics: every kind's series",
    "tests/e2e/test_metrics_alerts.py": "records /metrics over objects of several kinds (a connector's "
    "tag key is the input only the model refuses)",
    "tests/alerting.py": "synthetic series labelled with a kind",
    "tests/unit/test_alerts.py": "synthetic series labelled with a kind",
    "tests/unit/test_kind_names.py": "the check itself: its lists name the files they allow",
    "docs/performance.md": "figures of measured runs: the calls, quotas and objects of the kinds measured",
    "docs/reliability.md": "the reliability suite's recorded output, and what its runs did to each kind",
    **dict.fromkeys(
        (
            "tests/emulators/test_aws_accounts.py",
            "tests/emulators/test_aws_consistency.py",
            "tests/emulators/test_aws_faults_and_admin.py",
            "tests/emulators/test_aws_fuzz.py",
            "tests/emulators/test_aws_lists.py",
            "tests/emulators/test_aws_sts.py",
            "tests/emulators/test_aws_validation.py",
        ),
        "the stand-in's generic behaviour (accounts, lagging reads, faults, fuzzing, paging, STS, "
        "validation) proved on the served services' own calls; a new service needs no line here",
    ),
}

#: Files that use the first registered kind, the running example, as their one example: user docs,
#: docstrings, and tests of what every kind does alike that need one kind to show it.
RUNNING_EXAMPLE: dict[str, str] = {
    **dict.fromkeys(
        (
            "docs/argocd.md",
            "docs/engine.md",
            "docs/install.md",
            "docs/observability.md",
            "docs/qlibraryitem.md",
            "docs/testing.md",
            "docs/troubleshooting.md",
            "tests/fixtures/status/README.md",
        ),
        "a user doc whose commands and examples show the running example",
    ),
    **dict.fromkeys(
        (
            "operator/q_operator/emulate/aws/testing.py",
            "operator/q_operator/emulate/kube/faults.py",
            "operator/q_operator/kinds/base.py",
            "operator/q_operator/sandbox.py",
        ),
        "a docstring or comment whose example is the running example",
    ),
    "operator/q_operator/emulate/aws/bench.py": "the stand-in's own speed, measured on one call",
    "tests/bench/__init__.py": "the bench's one-kind cases (N objects, steady state, quotas) use it",
    "tests/bench/__main__.py": "the bench's one-kind cases (N objects, steady state, quotas) use it",
    "tests/differential/cases.py": "the Kubernetes stand-in held to the real server on one CRD",
    "tests/live/test_live.py": "the opt-in run against real AWS creates one plugin",
    **dict.fromkeys(
        (
            "tests/e2e/test_apiserver.py",
            "tests/e2e/test_chart_rbac.py",
            "tests/e2e/test_helm_and_kubectl.py",
            "tests/e2e/test_high_availability.py",
            "tests/e2e/test_identity.py",
            "tests/e2e/test_permissions.py",
            "tests/e2e/test_smoke.py",
            "tests/e2e/test_tenant_rbac.py",
            "tests/e2e/test_user_experience.py",
            "tests/unit/test_argocd_health.py",
            "tests/unit/test_chart.py",
            "tests/unit/test_crdgen.py",
            "tests/unit/test_engine_aws.py",
            "tests/unit/test_engine_identity_aws.py",
            "tests/unit/test_engine_pacing.py",
            "tests/unit/test_engine_ratelimit.py",
            "tests/unit/test_engine_runner.py",
        ),
        "proves on one kind what every kind does alike (the generic parts are parametrized over the "
        "registry elsewhere)",
    ),
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
    """What names the kind anywhere: its kind (also its singular, and its plural's stem), its group,
    its short names, and its AWS service as boto3 and IAM spell it (in lower case only: that is the
    identifier; a sentence may name the product)."""
    words = [re.escape(kind.kind), re.escape(kind.group), *(rf"\b{re.escape(s)}\b" for s in kind.short_names)]
    return re.compile(rf"(?i:{'|'.join(words)})|\b{re.escape(kind.service)}\b")


def _operations(kind: KindInfo[Any, Any]) -> re.Pattern[str] | None:
    """The AWS operations only this kind calls, as the API and IAM spell them and as boto3's methods.

    Sought in code only: prose (Markdown, comments, docstrings) may explain a generic path by the
    call that needs it (a List call per parent) without being a copy a new kind must extend."""
    shared = _shared_operations()
    operations = sorted({_operation(action) for action in kind.iam_actions} - shared)
    if not operations:
        return None
    words = [rf"\b{re.escape(op)}\b" for op in operations] + [
        rf"\b{re.escape(_snake(op))}\b" for op in operations
    ]
    return re.compile("|".join(words), re.IGNORECASE)


def _shared_operations() -> set[str]:
    """Operations more than one kind calls (TagResource, ...): they name no kind."""
    seen: dict[str, int] = {}
    for kind in KINDS:
        for operation in {_operation(action) for action in kind.iam_actions}:
            seen[operation] = seen.get(operation, 0) + 1
    return {operation for operation, count in seen.items() if count > 1}


def _operation(action: str) -> str:
    """An IAM action's operation, in botocore's spelling (IAM spells UnregisterConnector UnRegister...)."""
    name = action.split(":", 1)[1]
    return name[0] + name[1:].replace("UnRegister", "Unregister") if name.startswith("Un") else name


def _snake(operation: str) -> str:
    """boto3's method name of an operation (botocore's xform_name, for these plain CamelCase names)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _code(path: Path, text: str) -> str:
    """The file without its prose: Markdown goes whole, Python loses comments and docstrings (line
    numbers kept); other files are all code."""
    if path.suffix == ".md":
        return ""
    if path.suffix != ".py":
        return text
    lines = text.splitlines()
    blank: set[tuple[int, int, int]] = set()
    previous = tokenize.NEWLINE
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        prose = token.type == tokenize.COMMENT or (
            token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        )
        if prose:
            for row in range(token.start[0], token.end[0] + 1):
                first = token.start[1] if row == token.start[0] else 0
                last = token.end[1] if row == token.end[0] else len(lines[row - 1])
                blank.add((row, first, last))
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    for row, first, last in blank:
        line = lines[row - 1]
        lines[row - 1] = line[:first] + " " * (last - first) + line[last:]
    return "\n".join(lines)


def _spelled(path: Path, names: re.Pattern[str], operations: re.Pattern[str] | None) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return []
    found = {n for n, line in enumerate(text.splitlines(), 1) if names.search(line)}
    if operations is not None:
        found |= {n for n, line in enumerate(_code(path, text).splitlines(), 1) if operations.search(line)}
    lines = text.splitlines()
    return [f"{n}: {lines[n - 1].strip()[:100]}" for n in sorted(found)]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_a_kind_is_named_only_in_its_places(kind: KindInfo[Any, Any]) -> None:
    allowed = _allowed(kind)
    names, operations = _names(kind), _operations(kind)
    examples = {**EXAMPLES, **(RUNNING_EXAMPLE if kind is KINDS[0] else {})}
    outside = {}
    for name in _files():
        if name in examples or any(fnmatch.fnmatch(name, a) for a in allowed):
            continue
        found = _spelled(ROOT / name, names, operations)
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


def test_the_allowlists_hold_only_files_that_need_them() -> None:
    """A file that no longer names a kind leaves EXAMPLES (and one that no longer names the running
    example leaves RUNNING_EXAMPLE), so the lists stay as short as the truth."""
    files = set(_files())
    first = (_names(KINDS[0]), _operations(KINDS[0]))
    for name in EXAMPLES:
        assert name in files, name
        assert any(_spelled(ROOT / name, _names(k), _operations(k)) for k in KINDS), f"{name} names no kind"
    for name in RUNNING_EXAMPLE:
        assert name in files, name
        assert _spelled(ROOT / name, *first), f"{name} does not name {KINDS[0].kind}"
        assert name not in EXAMPLES
