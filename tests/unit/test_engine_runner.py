"""`q-operator run`: options, and log lines that carry the object's fixed keys."""

from __future__ import annotations

import json
import logging

from q_operator.engine.runner import JsonFormatter, RequeueIsNotAnError, TextFormatter, parse_args


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("q_operator.engine", logging.INFO, __file__, 1, "created %s", ("p-1",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_kind_namespace_name_region_and_aws_id() -> None:
    line = json.loads(
        JsonFormatter().format(
            record(obj_kind="QPlugin", obj_namespace="ns", obj_name="w", obj_region="us-east-1", obj_id="a/p")
        )
    )
    assert line["message"] == "created p-1" and line["level"] == "INFO"
    assert (line["kind"], line["namespace"], line["name"], line["region"], line["awsId"]) == (
        "QPlugin",
        "ns",
        "w",
        "us-east-1",
        "a/p",
    )


def test_kopf_object_records_name_the_object_too() -> None:
    ref = {"kind": "QPlugin", "namespace": "ns", "name": "w"}
    assert json.loads(JsonFormatter().format(record(k8s_ref=ref)))["name"] == "w"
    assert "name=w" in TextFormatter().format(record(k8s_ref=ref))


def test_a_requeue_is_logged_as_info_not_error() -> None:
    rec = logging.LogRecord(
        "kopf.objects", logging.ERROR, __file__, 1, "Handler 'create' failed temporarily: x", (), None
    )
    RequeueIsNotAnError().filter(rec)
    assert rec.levelno == logging.INFO
    assert rec.getMessage() == "Handler 'create' requeued: x"


def test_routine_event_handler_successes_are_debug_detail() -> None:
    rec = logging.LogRecord(
        "kopf.objects", logging.INFO, __file__, 1, "Handler 'catch-up' succeeded.", (), None
    )
    shown = RequeueIsNotAnError().filter(rec)
    assert rec.levelno == logging.DEBUG
    assert shown == logging.getLogger().isEnabledFor(logging.DEBUG)


def test_standalone_and_all_namespaces_are_the_defaults() -> None:
    args = parse_args([])
    assert args.namespaces == [] and args.peering_name is None and args.standalone is None
    args = parse_args(
        ["-n", "a", "--namespace", "b", "--peering", "q", "--liveness", "http://0.0.0.0:8081/healthz"]
    )
    assert args.namespaces == ["a", "b"] and args.peering_name == "q"


def test_a_taken_metrics_port_does_not_stop_the_operator() -> None:
    import socket

    from q_operator.engine.metrics import serve

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        assert serve(taken.getsockname()[1]) is False
    assert serve(0) is False
