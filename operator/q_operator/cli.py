"""The `q-operator` command line: one subcommand per job, each importing only what it needs.

Imports are deferred into each command so that `q-operator --help` and `q-operator crds` stay fast
and do not pull in kopf or the stand-ins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_run(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.engine.runner import run_operator

    return run_operator(rest)


def _cmd_crds(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.crdgen import write_crds

    write_crds(args.output, extra_dirs=args.chart or [])
    if args.argocd:
        from q_operator.healthchecks import write_health_checks

        write_health_checks(args.argocd, status_fixtures=args.status_fixtures)
    if args.rbac or args.iam:
        from q_operator.permissions import write_iam, write_rbac

        if args.rbac:
            write_rbac(args.rbac)
        if args.iam:
            write_iam(args.iam)
    return 0


def _cmd_emulate_aws(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.emulate.aws.server import main as aws_main

    return aws_main(rest)


def _cmd_emulate_kube(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.emulate.kube.server import main as kube_main

    return kube_main(rest)


def _cmd_demo(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.demo import main as demo_main

    return demo_main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="q-operator",
        description="Kubernetes operator for Amazon Q Business plugins, Q Apps library items "
        "and AppFlow custom connectors.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run the operator (kopf options such as --namespace, --all-namespaces, --liveness, "
        "--verbose pass through)",
        add_help=False,
    )
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser(
        "crds",
        help="generate the CRD YAML from the pydantic models (and the Argo CD health checks, the "
        "chart's RBAC rules and the IAM policies from the kind registry)",
    )
    crds.add_argument("--output", default="crds", help="directory to write the CRDs into")
    crds.add_argument("--chart", action="append", help="also write into this directory (repeatable)")
    crds.add_argument("--argocd", help="also write the Argo CD health checks into this directory")
    crds.add_argument(
        "--status-fixtures",
        help="with --argocd: also write Argo CD's upstream layout (resource_customizations/), "
        "with these recorded status objects as its testdata (needs lupa)",
    )
    crds.add_argument("--rbac", help="also write the chart's RBAC rules for the kinds into this directory")
    crds.add_argument("--iam", help="also write the IAM policy documents into this directory")
    crds.set_defaults(func=_cmd_crds)

    emulate = sub.add_parser("emulate", help="run a local stand-in for AWS or the Kubernetes API")
    emulate_sub = emulate.add_subparsers(dest="target", required=True, metavar="TARGET")
    aws = emulate_sub.add_parser(
        "aws", help="stand-in for the qbusiness, qapps and appflow APIs", add_help=False
    )
    aws.set_defaults(func=_cmd_emulate_aws)
    kube = emulate_sub.add_parser("kube", help="stand-in for the Kubernetes API server", add_help=False)
    kube.set_defaults(func=_cmd_emulate_kube)

    demo = sub.add_parser(
        "demo",
        help="start both stand-ins and the operator, apply samples/, show each resource",
        add_help=False,
    )
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    result: int = args.func(args, rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
