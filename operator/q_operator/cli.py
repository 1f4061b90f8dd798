"""The `q-operator` command line: one subcommand per job, each importing only what it needs.

Imports are deferred into each command so that `q-operator --help` and `q-operator crds` stay fast
and do not pull in kopf or the stand-ins.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Command = Callable[[argparse.Namespace, list[str]], int]


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


def _standins_missing() -> str | None:
    """What keeps the stand-ins from running here, or None. They are the extra `q-operator[standins]`:
    its packages (read from this install's metadata) must be installed, and the image leaves the
    stand-ins' code out altogether."""
    import importlib.util
    import re
    from importlib import metadata

    if importlib.util.find_spec("q_operator.emulate") is None:
        return "this installation has no stand-ins (the container image runs the operator only)"
    try:
        requirements = metadata.requires("q-operator") or []
    except metadata.PackageNotFoundError:
        return None
    missing = []
    for requirement in requirements:
        name = re.match(r"[A-Za-z0-9._-]+", requirement)
        if name and re.search(r"extra\s*==\s*[\"']standins[\"']", requirement):
            try:
                metadata.version(name.group())
            except metadata.PackageNotFoundError:
                missing.append(name.group())
    return f"missing {', '.join(missing)}" if missing else None


def _needs_standins(command: Command) -> Command:
    """Run `command` only when the stand-ins can; otherwise say what to install."""

    def guarded(args: argparse.Namespace, rest: list[str]) -> int:
        why = _standins_missing()
        if why:
            print(
                f"q-operator: the local stand-ins are an extra of the package: {why}.\n"
                "Install them with:  pip install 'q-operator[standins]'",
                file=sys.stderr,
            )
            return 2
        return command(args, rest)

    return guarded


def _cmd_emulate_aws(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.emulate.aws.server import main as aws_main

    return aws_main(rest)


def _cmd_emulate_kube(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.emulate.kube.server import main as kube_main

    return kube_main(rest)


def _cmd_apiserver(args: argparse.Namespace, rest: list[str]) -> int:
    from q_operator.apiserver import main as apiserver_main

    return apiserver_main(rest)


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
    crds.add_argument(
        "--rbac",
        help="also write the chart's RBAC rules for the kinds (the operator's, and its edit and view "
        "roles for people) into this directory",
    )
    crds.add_argument("--iam", help="also write the IAM policy documents into this directory")
    crds.set_defaults(func=_cmd_crds)

    emulate = sub.add_parser("emulate", help="run a local stand-in for AWS or the Kubernetes API")
    emulate_sub = emulate.add_subparsers(dest="target", required=True, metavar="TARGET")
    aws = emulate_sub.add_parser(
        "aws", help="stand-in for the AWS APIs the kinds call, and STS", add_help=False
    )
    aws.set_defaults(func=_needs_standins(_cmd_emulate_aws))
    kube = emulate_sub.add_parser("kube", help="stand-in for the Kubernetes API server", add_help=False)
    kube.set_defaults(func=_needs_standins(_cmd_emulate_kube))

    apiserver = sub.add_parser(
        "apiserver",
        help="run the real etcd and kube-apiserver (built by make install) on 127.0.0.1",
        add_help=False,
    )
    apiserver.set_defaults(func=_cmd_apiserver)

    demo = sub.add_parser(
        "demo",
        help="start both stand-ins and the operator, apply samples/, show each resource",
        add_help=False,
    )
    demo.set_defaults(func=_needs_standins(_cmd_demo))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    result: int = args.func(args, rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
