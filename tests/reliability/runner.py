"""Run the scenarios one after another, each in a fresh sandbox, and print one table.

Exit status 0 when every row is clean (no duplicate, no orphan, nothing stuck, its call bound held,
no problem noted), else 1. `--quick` runs the small size; `--only` picks scenarios by name.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.reliability.harness import Result
from tests.reliability.scenarios import FULL, QUICK, SCENARIOS, run_scenario

COLUMNS = (
    "scenario",
    "resources",
    "faults injected",
    "AWS calls",
    "duplicates",
    "orphans",
    "stuck",
    "unneeded writes",
    "converged in",
)


def row_cells(row: Result) -> list[str]:
    return [
        row.scenario,
        str(row.resources),
        row.faults,
        str(row.aws_calls),
        str(row.duplicates),
        str(row.orphans),
        str(row.stuck),
        "-" if row.unneeded_writes is None else str(row.unneeded_writes),
        f"{row.converge_seconds:.1f}s",
    ]


def table(rows: Sequence[Result]) -> str:
    """A Markdown table: readable in a terminal and pasteable into docs/reliability.md."""
    cells = [list(COLUMNS), *(row_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    out = []
    for n, line in enumerate(cells):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def details(rows: Sequence[Result]) -> str:
    lines = []
    for row in rows:
        verdict = "ok" if row.ok else "FAILED"
        lines.append(
            f"- {row.scenario} [{verdict}, {row.seconds:.0f}s]: {row.bound or 'no call bound'}"
            f"{'' if row.bound_held else ' (NOT HELD)'}"
        )
        lines += [f"    note: {n}" for n in row.notes]
        lines += [f"    problem: {p}" for p in row.problems[:10]]
    return "\n".join(lines)


def machine() -> str:
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        memory = f", {kb / 1024 / 1024:.1f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} CPUs (nproc){memory}, Python {platform.python_version()}, {platform.platform()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small size (a few objects per kind)")
    parser.add_argument("--only", nargs="*", default=[], help="scenario names to run")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random kill moments")
    parser.add_argument("--workdir", default=None, help="keep the logs here (default: a temp dir)")
    parser.add_argument(
        "--bad-input-batches",
        type=int,
        default=None,
        help="batches of 8 generated specs for the bad-input property test (default 20, quick 5; 0 skips)",
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    size = QUICK if args.quick else FULL
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    known = [s.name for s in SCENARIOS] + ["badinput"]
    unknown = set(args.only) - set(known)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {known}")
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="q-operator-reliability-"))
    print(
        f"reliability: {len(chosen)} scenarios, size {'quick' if args.quick else 'full'}, seed {seed}, "
        f"logs in {root}",
        flush=True,
    )
    started = time.monotonic()
    rows = []
    for scenario in chosen:
        row = run_scenario(scenario, root / scenario.name, size, seed)
        print(f"  {scenario.name}: {'ok' if row.ok else 'FAILED'} in {row.seconds:.0f}s", flush=True)
        rows.append(row)
    batches = args.bad_input_batches if args.bad_input_batches is not None else (5 if args.quick else 20)
    bad_input_ok = True
    bad_input = ""
    if batches > 0 and (not args.only or "badinput" in args.only):
        bad_input_ok, bad_input = run_bad_input(batches, root)
        print(f"  badinput: {'ok' if bad_input_ok else 'FAILED'}: {bad_input}", flush=True)
    print()
    print(table(rows))
    print()
    print(details(rows))
    print()
    if bad_input:
        print(f"- bad input (hypothesis) [{'ok' if bad_input_ok else 'FAILED'}]: {bad_input}")
    print()
    print(f"machine: {machine()}; total {time.monotonic() - started:.0f}s; seed {seed}")
    return 0 if all(r.ok for r in rows) and bad_input_ok else 1


def run_bad_input(batches: int, root: Path) -> tuple[bool, str]:
    """The property-based bad-input test with more examples than `make test` runs; (passed, tally)."""
    report = root / "bad-input.txt"
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, Q_OPERATOR_BAD_INPUT_BATCHES=str(batches), Q_OPERATOR_BAD_INPUT_REPORT=str(report))
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/e2e/test_bad_input_property.py",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=900,
    )
    (root / "bad-input.log").write_text(result.stdout + result.stderr)
    tally = report.read_text().strip().splitlines()[-1] if report.exists() else "no tally (see bad-input.log)"
    return result.returncode == 0, f"{tally} in {time.monotonic() - started:.0f}s"
