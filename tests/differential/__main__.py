"""`python -m tests.differential [CASE...]`: the stand-in against a fresh kube-apiserver, as a report.

Prints, per case, how many answers were compared and how many differ (accepted by known.py or new),
then every new difference. Exit status 1 when there is a new one. The test module asserts the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from q_operator.apiserver import ApiServer
from q_operator.emulate.kube.server import running_kube_emulator
from tests.differential import cases, known, servers
from tests.differential.conftest import Pair
from tests.differential.harness import Endpoint, compare, judge
from tests.differential.test_kube_vs_real import run_case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__)
    parser.add_argument("cases", nargs="*", help=f"cases to run (default: all {len(cases.CASES)})")
    args = parser.parse_args(argv)
    chosen = args.cases or list(cases.CASES)
    unknown = set(chosen) - set(cases.CASES)
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {list(cases.CASES)}")
    crds = servers.crd_documents([cases.WIDGETS_CRDS, cases.OPERATOR_CRDS])
    totals = {"answers": 0, "accepted": 0, "new": 0}
    new_lines: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="difftest-") as tmp,
        ApiServer(Path(tmp) / "apiserver") as apiserver,
        running_kube_emulator() as emulator,
    ):
        pair = Pair(
            Endpoint("real", apiserver.url, ssl_context=apiserver.ssl_context()),
            Endpoint("stand-in", emulator.url),
            apiserver,
            emulator,
        )
        for endpoint in (pair.real, pair.standin):
            servers.install_crds(endpoint, crds)
        print(f"{'case':<40} {'answers':>8} {'accepted':>9} {'new':>5}")
        for name in chosen:
            real, standin = run_case(pair, name)
            verdict = judge(name, compare(real, standin), known.KNOWN)
            totals["answers"] += len(real)
            totals["accepted"] += len(verdict.accepted)
            totals["new"] += len(verdict.new)
            print(f"{name:<40} {len(real):>8} {len(verdict.accepted):>9} {len(verdict.new):>5}")
            new_lines += [f"  {name}: {d}" for d in verdict.new]
    print(
        f"{'total: ' + str(len(chosen)) + ' cases':<40} {totals['answers']:>8} {totals['accepted']:>9} "
        f"{totals['new']:>5}"
    )
    print(f"known differences listed: {len(known.KNOWN)}")
    if new_lines:
        print("\nnew differences (fix the stand-in or list them in tests/differential/known.py):")
        print("\n".join(new_lines))
    return 1 if new_lines else 0


if __name__ == "__main__":
    sys.exit(main())
