"""`python -m tests.bench [--quick] [--cases small,big,mix] [--json FILE]`: run the benchmark, print figures.

Full run (`make bench`, about 12 minutes on 2 cores): the stand-ins' own throughput, 100 QPlugins,
1,000 QPlugins followed by steady state and a restart over them, and a mix of the three kinds.
`--quick`: 50 QPlugins (with steady state and restart, drift 30 s) and a mix of 30, about 3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from q_operator.sandbox import Sandbox
from tests.bench import cases
from tests.bench.cases import Result
from tests.bench.harness import ProcSampler, ReadyWatch, gvp_of
from tests.kinds import QPLUGIN, TEST_KINDS

KINDS = [gvp_of(facts.plural_path) for facts in TEST_KINDS]
#: The operator is told the account's most generous per-operation rate; it learns the lower ones.
OPERATOR_ENV = {"Q_OPERATOR_AWS_RATE": "20"}


def revision() -> str:
    """The commit measured, and whether the operator's code differed from it."""
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "operator/"], capture_output=True, text=True, cwd=root
    ).stdout.strip()
    return run.stdout.strip() + (" (+ uncommitted changes under operator/)" if dirty else "")


def log(text: str) -> None:
    print(text, flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "revision": revision(),
    }


def standin_benchmarks() -> dict[str, str]:
    """The stand-ins' own throughput: far above what the operator is allowed to ask of them."""
    out: dict[str, str] = {}
    for name, module in (("aws", "q_operator.emulate.aws.bench"), ("kube", "q_operator.emulate.kube.bench")):
        done = subprocess.run(
            [sys.executable, "-m", module], capture_output=True, text=True, timeout=300, check=False
        )
        out[name] = done.stdout.strip() or done.stderr.strip()[-500:]
    return out


def print_result(result: Result) -> None:
    log(f"\n== {result.case}")
    log(f"  {'figure':44} {'value':>10}  {'bound/target':>13} {'ratio':>7}  holds")
    for f in result.figures:
        bound = "" if f.bound is None else f"{f.bound:.2f}"
        if f.check == "ratio" and f.bound is not None:
            bound = f"{f.bound:.1f} (x{f.target_ratio:g})"
        elif f.check == "max" and f.bound is not None:
            bound = f"<= {f.bound:g}"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}"
        holds = {None: "", True: "yes", False: "NO"}[f.holds]
        log(f"  {f.name:44} {f.value:>10.2f}{f.unit:<4} {bound:>13} {ratio:>7}  {holds}")
        if f.note:
            log(f"  {'':44}   ({f.note})")
    for key in (
        "calls_by_operation",
        "throttled_by_operation",
        "aws_by_operation",
        "kube_by_verb",
        "loadavg_1min_before_after",
    ):
        if result.details.get(key):
            log(f"  {key}: {json.dumps(result.details[key])}")


class Run:
    """One sandbox (both stand-ins, the operator) with a watch and a process sampler on it."""

    def __init__(self, workdir: Path, drift: float, env: dict[str, str]) -> None:
        self.drift = drift
        self.box = Sandbox(
            workdir,
            aws_args=cases.aws_args(),
            operator_env={"Q_OPERATOR_DRIFT_SECONDS": f"{drift:g}", **env},
        )

    def __enter__(self) -> Run:
        self.box.__enter__()
        self.box.start_operator()
        assert self.box.operator is not None
        self.sampler = ProcSampler(self.box.operator.pid)
        self.watch = ReadyWatch(self.box.kube_url, KINDS)
        return self

    def __exit__(self, *exc: object) -> None:
        try:  # the stand-ins' call logs, for a look afterwards
            (self.box.workdir / "aws-requests.json").write_text(json.dumps(self.box.aws_requests()))
            (self.box.workdir / "kube-requests.json").write_text(
                json.dumps(self.box.kube("GET", "/_emulator/requests"))
            )
        except OSError:
            pass
        self.watch.close()
        self.sampler.close()
        self.box.__exit__(*exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50 plugins and a mix of 30: a fast look")
    parser.add_argument("--cases", default="standins,small,big,mix", help="comma list of cases to run")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--workdir", type=Path, help="keep the stand-ins' and operator's logs here")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator (default: Q_OPERATOR_AWS_RATE=20, the highest limit)",
    )
    args = parser.parse_args(argv)
    env = dict(OPERATOR_ENV)
    env.update(dict(item.split("=", 1) for item in args.operator_env))
    wanted = set(args.cases.split(","))
    if args.quick:
        wanted.discard("small")
    big_n, mix_n, drift, window = (50, 30, 30.0, 30.0) if args.quick else (1000, 300, 100.0, 60.0)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="q-operator-bench-"))
    info = machine()
    log(f"q-operator benchmark ({'quick' if args.quick else 'full'}); logs in {workdir}")
    log(f"machine: {json.dumps(info)}")
    log(f"code: {info['revision']}; operator env: {json.dumps(env)}")
    log(f"AWS stand-in: build {cases.BUILD_SECONDS:g}s; limits/s: {json.dumps(cases.AWS_LIMITS)}")
    results: list[Result] = []
    report: dict[str, Any] = {
        "machine": info,
        "limits": cases.AWS_LIMITS,
        "build_seconds": cases.BUILD_SECONDS,
    }
    began = time.monotonic()

    if "standins" in wanted:
        log("\n== stand-in throughput (their own benchmarks)")
        report["standins"] = standin_benchmarks()
        for name, text in report["standins"].items():
            for line in text.splitlines():
                log(f"  {name}: {line}")

    if "small" in wanted:
        with Run(workdir / "small", drift, env) as run:
            results.append(
                cases.converge(
                    run.box,
                    run.watch,
                    run.sampler,
                    "100 QPlugins",
                    "small",
                    cases.objects_of(QPLUGIN, "small", 100),
                )
            )
        print_result(results[-1])

    if "big" in wanted:
        with Run(workdir / "big", drift, env) as run:
            objects = cases.objects_of(QPLUGIN, "big", big_n)
            result = cases.converge(
                run.box, run.watch, run.sampler, f"{big_n} QPlugins", "big", objects, rss_target_mib=200.0
            )
            results.append(result)
            print_result(result)
            counts = Counter(p for p, _ in objects)
            results.append(
                cases.steady_state(
                    run.box, run.sampler, counts, result.details["started"], drift, window, log
                )
            )
            print_result(results[-1])
            run.sampler.close()
            # The restarted operator's drift timers start no earlier than half an interval (150 s): what
            # it calls in the meantime is the resume.
            restarted, run.sampler = cases.restart(
                run.box, counts, {**env, "Q_OPERATOR_DRIFT_SECONDS": "300"}, log
            )
            results.append(restarted)
            print_result(restarted)

    if "mix" in wanted:
        with Run(workdir / "mix", drift, env) as run:
            objects = cases.mix_objects("mix", mix_n)
            case = f"mix of {mix_n} ({len(TEST_KINDS)} kinds)"
            results.append(cases.converge(run.box, run.watch, run.sampler, case, "mix", objects))
        print_result(results[-1])

    total = time.monotonic() - began
    log(f"\nbenchmark took {total:.0f}s")
    report["results"] = [
        {
            "case": r.case,
            "figures": [asdict(f) | {"ratio": f.ratio, "holds": f.holds} for f in r.figures],
            "details": r.details,
        }
        for r in results
    ]
    report["seconds"] = total
    text = json.dumps(report, indent=2, default=str)
    (workdir / "results.json").write_text(text)
    if args.json:
        args.json.write_text(text)
    missed = [f"{r.case}: {f.name}" for r in results for f in r.figures if f.holds is False]
    log("targets missed: " + ("; ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
