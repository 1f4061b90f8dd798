"""`python -m tests.bench [--quick] [--cases steady] [--json FILE]`: run the benchmark, print figures.

The cases (`--cases` takes a comma list; one name runs one case):

- `standins`: the stand-ins' own throughput.
- `small`, `big`: 100 and 1,000 QPlugins → all Ready; `big` goes on with steady state and a restart.
- `steady`: 1,000 Ready QPlugins over 40 applications, drift 60 s: an out-of-band UpdatePlugin and
  DeletePlugin corrected, then AWS calls per minute in list mode and (the operator restarted) in
  object mode, and their ratio, in one run. `steady-mix`: the same for a mix of the three kinds.
- `quotas`: 100 and 1,000 QPlugins with creates limited to 5, 20 and 50/s, operator defaults
  (`--quotas`, `--sizes` choose).
- `huge`: 10,000 QPlugins (`--huge-n`), limits raised to 50 creates/s: apply → Ready, peak RSS,
  steady state, a restart.
- `huge-sharded`: the same objects split over two namespaces, each watched by its own release
  (`q-operator run --namespace …`), sharing the account's limits: what two releases give instead.
- `mix`: 100 objects of each kind → all Ready.

Everything runs on the Kubernetes stand-in. `--quick` makes each case small (about a minute or two).
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
from tests.bench.harness import ProcGroup, ProcSampler, ReadyWatch, gvp_of
from tests.kinds import QPLUGIN, TEST_KINDS

KINDS = [gvp_of(facts.plural_path) for facts in TEST_KINDS]
#: every case, in the order they run
ALL_CASES = ("standins", "small", "big", "steady", "steady-mix", "quotas", "huge", "huge-sharded", "mix")
#: The operator runs with its defaults: it learns each operation's limit from Q_OPERATOR_AWS_RATE's
#: default 10/s, up or down (before the limiter learned upwards, the bench set the highest limit, 20).
OPERATOR_ENV: dict[str, str] = {}


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
    """One sandbox (both stand-ins, the operator) with a watch and a process sampler on it.
    `shards`: instead of one operator over every namespace, one release per entry (its options)."""

    def __init__(
        self,
        workdir: Path,
        drift: float,
        env: dict[str, str],
        limits: dict[str, float] | None = None,
        aws_extra: Sequence[str] = (),
        shards: Sequence[Sequence[str]] = (),
    ) -> None:
        self.drift = drift
        self.shards = shards
        self.box = Sandbox(
            workdir,
            aws_args=cases.aws_args(limits, aws_extra),
            operator_env={"Q_OPERATOR_DRIFT_SECONDS": f"{drift:g}", **env},
        )

    def __enter__(self) -> Run:
        self.box.__enter__()
        self.sampler: ProcSampler | ProcGroup
        if self.shards:
            self.sampler = ProcGroup(self.box.spawn_operator(*args).pid for args in self.shards)
        else:
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
    parser.add_argument(
        "--cases",
        default=",".join(ALL_CASES),
        help=f"comma list of cases to run, of: {', '.join(ALL_CASES)} (one name runs one case)",
    )
    parser.add_argument("--quotas", default="5,20,50", help="the quotas case's create limits (per second)")
    parser.add_argument("--sizes", default="100,1000", help="the quotas case's object counts")
    parser.add_argument("--huge-n", type=int, default=10_000, help="objects of the huge case")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--workdir", type=Path, help="keep the stand-ins' and operator's logs here")
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the operator (default: none, the operator's defaults)",
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

    steady_n, steady_drift = (100, 30.0) if args.quick else (1000, 60.0)
    for name in ("steady", "steady-mix"):
        if name not in wanted:
            continue
        with Run(workdir / name, steady_drift, env) as run:
            if name == "steady":
                made = cases.objects_of(QPLUGIN, "steady", steady_n)
            else:
                made = cases.mix_objects("steadymix", steady_n)
                # AppFlow allows 100 custom connectors per account and region (the stand-in too): raised
                # for the 333 connectors of this case.
                run.box.aws("POST", "/_emulator/config", {"quotas": {"connectors_per_region": 1000}})
            counts = Counter(p for p, _ in made)
            namespace = made[0][1]["metadata"]["namespace"]
            kinds = f" ({len(counts)} kinds)" if len(counts) > 1 else ""
            converged = cases.converge(
                run.box, run.watch, run.sampler, f"{len(made)} objects{kinds}, list mode", namespace, made
            )
            results.append(converged)
            print_result(converged)
            # one interval more: every parent has been swept once before the out-of-band changes
            time.sleep(steady_drift)
            results.append(cases.out_of_band(run.box, made, steady_drift, log))
            print_result(results[-1])
            run.sampler.close()
            measured, run.sampler = cases.observe_modes(
                run.box, counts, converged.details["started"], steady_drift, env, log
            )
            for result in measured:
                results.append(result)
                print_result(result)

    if "quotas" in wanted:
        quotas = [float(q) for q in args.quotas.split(",") if q]
        sizes = [int(n) for n in args.sizes.split(",") if n]
        if args.quick:
            sizes = [min(sizes)]
        for quota in quotas:
            for n in sizes:
                limits = cases.scaled_limits(quota)
                # the operator's defaults: nothing tells it the account's limits
                with Run(workdir / f"quota-{quota:g}-{n}", 300.0, {}, limits) as run:
                    result = cases.converge(
                        run.box,
                        run.watch,
                        run.sampler,
                        f"{n} QPlugins, creates limited to {quota:g}/s, operator defaults",
                        f"q{quota:g}n{n}",
                        cases.objects_of(QPLUGIN, f"q{quota:g}n{n}", n),
                        limits=limits,
                    )
                results.append(result)
                print_result(result)

    for name in ("huge", "huge-sharded"):
        if name not in wanted:
            continue
        n = 1000 if args.quick else args.huge_n
        limits = cases.scaled_limits(50.0)
        # sharded: two releases, each watching its own namespace (`--standalone`: no peering between
        # them, as two Helm releases with their own namespaces would be)
        namespaces = ["shard-a", "shard-b"] if name == "huge-sharded" else ["huge"]
        shards = [("--namespace", ns, "--standalone") for ns in namespaces] if len(namespaces) > 1 else []
        releases = f", {len(shards)} releases" if shards else ""
        log(f"\n== {name}: {n} QPlugins{releases}, limits raised: {json.dumps(limits)}")
        with Run(workdir / name, 60.0, {}, limits, shards=shards) as run:
            objects = [
                item
                for i, ns in enumerate(namespaces)
                for item in cases.objects_of(QPLUGIN, ns, n // len(namespaces) + (i < n % len(namespaces)))
            ]
            result = cases.converge(
                run.box,
                run.watch,
                run.sampler,
                f"{n} QPlugins{releases}",
                namespaces,
                objects,
                rss_target_mib=1024.0,
                limits=limits,
            )
            results.append(result)
            print_result(result)
            counts = Counter(p for p, _ in objects)
            results.append(
                cases.steady_state(run.box, run.sampler, counts, result.details["started"], 60.0, 120.0, log)
            )
            print_result(results[-1])
            run.sampler.close()
            restarted, run.sampler = cases.restart(
                run.box, counts, {}, log, rss_target_mib=1024.0, shards=shards, limits=limits
            )
            results.append(restarted)
            print_result(restarted)
            results.append(cases.steady_state(run.box, run.sampler, counts, time.time(), 60.0, 120.0, log))
            results[-1].case += " (after the restart)"
            print_result(results[-1])

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
