"""What Argo CD would say about our objects: OutOfSync (below), and health on Argo CD's own Lua VM
(`gopher_lua_health`, at the end).

OutOfSync: the fields a manifest sets that differ on the live object.

Argo CD compares only what Git sets (fields the API server or a controller add are left out), so an
app stays Synced as long as every field of the applied manifest still holds on the live object. The
end-to-end suite applies a manifest, lets the operator reconcile it to Ready, and asserts:

    assert user_fields_drift(manifest, live) == []
    assert live["metadata"]["generation"] == generation_right_after_apply   # nobody wrote spec

`metadata.generation` moves only when spec changes, so the second line catches an operator that
writes spec even where the manifest left a field out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def user_fields_drift(applied: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Dotted paths of spec fields, labels and annotations the manifest sets that differ when live."""
    drift: list[str] = []
    _compare(applied.get("spec"), live.get("spec"), "spec", drift)
    applied_meta = applied.get("metadata") or {}
    live_meta = live.get("metadata") or {}
    for section in ("labels", "annotations"):
        live_values = live_meta.get(section) or {}
        for key, value in (applied_meta.get(section) or {}).items():
            if live_values.get(key) != value:
                drift.append(f"metadata.{section}.{key}")
    return drift


def _compare(want: Any, have: Any, path: str, drift: list[str]) -> None:
    if want is None:
        return
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            drift.append(path)
            return
        for key, value in want.items():
            _compare(value, have.get(key), f"{path}.{key}", drift)
    elif isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            drift.append(path)
            return
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            _compare(w, h, f"{path}[{index}]", drift)
    elif want != have:
        drift.append(path)


# --- health on Argo CD's Lua VM (gopher-lua), through testenv/cmd/argocd-health ---

ROOT = Path(__file__).resolve().parents[1]
TESTENV = ROOT / "testenv"
HEALTH_TOOL = ROOT / ".tools" / "bin" / "argocd-health"


def argocd_health_tool() -> Path:
    """The gopher-lua evaluator. `make install` builds it; a fresh or stale copy (older than its
    source) is built here, so the tests never run an old VM nor skip for want of one."""
    sources = [*(TESTENV / "cmd" / "argocd-health").glob("*.go"), TESTENV / "go.mod", TESTENV / "go.sum"]
    newest = max(path.stat().st_mtime for path in sources)
    if HEALTH_TOOL.exists() and HEALTH_TOOL.stat().st_mtime >= newest:
        return HEALTH_TOOL
    go = shutil.which("go") or "/usr/local/go/bin/go"
    HEALTH_TOOL.parent.mkdir(parents=True, exist_ok=True)
    # Built beside, then renamed: parallel test workers may build at once.
    partial = HEALTH_TOOL.with_name(f".argocd-health.{os.getpid()}")
    built = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "./cmd/argocd-health"],
        cwd=TESTENV,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, f"go build ./cmd/argocd-health failed:\n{built.stderr}"
    partial.replace(HEALTH_TOOL)
    return HEALTH_TOOL


def gopher_lua_health(
    script: Path, objects: Sequence[Mapping[str, Any]], open_libs: bool = False
) -> list[dict[str, str]]:
    """Each object's {status, message} (or {error}) from `script` on gopher-lua, in one run.

    open_libs=False is how Argo CD runs a check from argocd-cm; True, how it runs a built-in one.
    """
    command = [str(argocd_health_tool()), *(["-open-libs"] if open_libs else []), str(script)]
    stdin = "".join(json.dumps(obj) + "\n" for obj in objects)
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(objects), done.stdout
    return answers
