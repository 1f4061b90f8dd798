"""`q-operator run`: logging, the kopf options we pass through, and kopf itself.

The options are kopf's own (`--namespace/-n`, `--all-namespaces/-A`, `--standalone`,
`--peering/-P NAME`, `--priority`, `--liveness/-L URL`, `--verbose/-v`, `--debug/-d`, `--quiet/-q`),
plus the identity rules (identity.py): `--require-namespace-role`, `--allow-adoption-everywhere`.
The operator runs standalone (no peering objects needed) unless `--peering` names a peering.
Logging is ours, text or JSON (Q_OPERATOR_LOG_FORMAT), at Q_OPERATOR_LOG_LEVEL.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

#: Fields a log record may carry about the object it concerns (LoggerAdapter extras, prefixed `obj_`
#: because LogRecord reserves `name`), and the keys they appear under.
_OBJECT_FIELDS = {
    "obj_kind": "kind",
    "obj_namespace": "namespace",
    "obj_name": "name",
    "obj_region": "region",
}
_OBJECT_FIELDS |= {"obj_id": "awsId", "obj_step": "step"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the object's fixed keys when the record is about one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, key in _OBJECT_FIELDS.items():
            value = getattr(record, attribute, None)
            if value is not None:
                line[key] = value
        ref = getattr(record, "k8s_ref", None)  # kopf's own per-object records
        if isinstance(ref, dict):
            line.setdefault("namespace", ref.get("namespace"))
            line.setdefault("name", ref.get("name"))
            line.setdefault("kind", ref.get("kind"))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        who = " ".join(
            f"{k}={getattr(record, a)}" for a, k in _OBJECT_FIELDS.items() if getattr(record, a, None)
        )
        ref = getattr(record, "k8s_ref", None)  # kopf's own per-object records
        if not who and isinstance(ref, dict):
            who = f"kind={ref.get('kind')} namespace={ref.get('namespace')} name={ref.get('name')}"
        return f"{text} [{who}]" if who else text


class RequeueIsNotAnError(logging.Filter):
    """kopf logs every TemporaryError at ERROR; for us a requeue (a build to wait for) is routine."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.ERROR and "failed temporarily" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
            if isinstance(record.msg, str):
                record.msg = record.msg.replace("failed temporarily", "requeued")
        if record.levelno == logging.INFO and _ROUTINE_EVENT_HANDLER.search(str(record.msg)):
            # Our watch-event handlers (catch-up, controls, configmap-changes, forget, index) run on the
            # events of an object, and the drift timer ticks often: their successes are debug detail.
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


_ROUTINE_EVENT_HANDLER = re.compile(
    r"(Handler '(catch-up|controls|configmap-changes|forget|index)[^']*'|Timer 'drift[^']*') succeeded"
)


def configure_logging(verbose: bool = False, debug: bool = False, quiet: bool = False) -> None:
    level_name = os.environ.get("Q_OPERATOR_LOG_LEVEL", "").upper()
    level = logging.getLevelName(level_name) if level_name else logging.INFO
    if not isinstance(level, int):
        level = logging.INFO
    if debug or verbose:
        level = logging.DEBUG
    if quiet:
        level = logging.WARNING
    handler = logging.StreamHandler(sys.stdout)
    json_format = os.environ.get("Q_OPERATOR_LOG_FORMAT", "text").lower() == "json"
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.addFilter(RequeueIsNotAnError())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kopf is chatty at DEBUG; keep it at INFO unless --debug asks for everything.
    logging.getLogger("kopf").setLevel(logging.DEBUG if debug else max(level, logging.INFO))
    for noisy in ("botocore", "boto3", "urllib3", "aiohttp.access", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="q-operator run",
        description="Run the operator (kopf underneath). Environment: see docs/engine.md#settings.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; a glob such as 'team-*' works)",
    )
    parser.add_argument(
        "-A",
        "--all-namespaces",
        dest="clusterwide",
        action="store_true",
        help="watch every namespace (the default when no --namespace is given)",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        default=None,
        help="run without peering (the default unless --peering is given)",
    )
    parser.add_argument(
        "-P",
        "--peering",
        dest="peering_name",
        default=None,
        metavar="NAME",
        help="coordinate with other replicas through the kopf peering object NAME",
    )
    parser.add_argument("-p", "--priority", type=int, default=None, help="this replica's peering priority")
    parser.add_argument(
        "-L",
        "--liveness",
        dest="liveness_endpoint",
        default=None,
        metavar="URL",
        help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument(
        "--require-namespace-role",
        action="store_true",
        help="objects in a namespace without the q-operator.dev/role-arn annotation get no AWS call "
        "(Synced=False, NoAWSIdentity) instead of the operator's own identity",
    )
    parser.add_argument(
        "--allow-adoption-everywhere",
        action="store_true",
        help="honour q-operator.dev/adopt-id in every namespace, not only in those annotated "
        "q-operator.dev/adoption=allowed",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    parser.add_argument("-d", "--debug", action="store_true", help="log at DEBUG, kopf included")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser.parse_args(list(argv))


def run_operator(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.verbose, args.debug, args.quiet)

    import kopf

    import q_operator.engine.handlers  # noqa: F401  (registers the handlers)
    from q_operator.engine import process
    from q_operator.engine.identity import Policy

    process.configure(Policy(args.require_namespace_role, args.allow_adoption_everywhere))

    standalone = args.standalone if args.standalone is not None else args.peering_name is None
    clusterwide = args.clusterwide or not args.namespaces
    kopf.run(
        standalone=standalone,
        peering_name=args.peering_name,
        priority=args.priority,
        liveness_endpoint=args.liveness_endpoint,
        clusterwide=clusterwide,
        namespaces=args.namespaces,
    )
    return 0
