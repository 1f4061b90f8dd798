"""`q-operator emulate aws`: the stand-in as an aiohttp server on 127.0.0.1, plus its admin API.

AWS requests go to one catch-all route and are answered by `Emulator.handle`; the admin API under
`/_emulator/` lets tests read the call log and state and change faults at runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.core import Emulator

EMULATOR_KEY = web.AppKey("emulator", Emulator)
INITIAL_KEY = web.AppKey("initial_settings", Settings)


async def _aws(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    body = await request.read()
    query: dict[str, list[str]] = {}
    for key, value in request.rel_url.query.items():
        query.setdefault(key, []).append(value)
    headers = {k.lower(): v for k, v in request.headers.items()}
    status, answer_headers, payload = emulator.handle(
        request.method, request.rel_url.raw_path, query, headers, body
    )
    if emulator.settings.latency_ms > 0:
        await asyncio.sleep(emulator.settings.latency_ms / 1000.0)
    return web.Response(status=status, headers=answer_headers, body=payload)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, default=str), content_type="application/json")


async def _get_requests(request: web.Request) -> web.Response:
    return _json(list(request.app[EMULATOR_KEY].store.requests))


async def _delete_requests(request: web.Request) -> web.Response:
    requests = request.app[EMULATOR_KEY].store.requests
    count = len(requests)
    requests.clear()
    return _json({"cleared": count})


async def _get_config(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].settings.to_json())


async def _post_config(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    try:
        changes = await request.json()
        if not isinstance(changes, dict):
            raise ValueError("config must be a JSON object")
        emulator.configure(changes)
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json(emulator.settings.to_json())


async def _get_state(request: web.Request) -> web.Response:
    return _json(request.app[EMULATOR_KEY].dump_state())


async def _post_reset(request: web.Request) -> web.Response:
    """Forget resources, tokens, the call log and runtime config: back to how it started."""
    emulator = request.app[EMULATOR_KEY]
    emulator.reset()
    fresh = copy.deepcopy(request.app[INITIAL_KEY])
    for name, value in vars(fresh).items():
        setattr(emulator.settings, name, value)
    return _json({"reset": True})


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving one emulator (admin routes first, then every AWS path)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app[INITIAL_KEY] = copy.deepcopy(emulator.settings)
    app.router.add_get("/_emulator/requests", _get_requests)
    app.router.add_delete("/_emulator/requests", _delete_requests)
    app.router.add_get("/_emulator/config", _get_config)
    app.router.add_post("/_emulator/config", _post_config)
    app.router.add_get("/_emulator/state", _get_state)
    app.router.add_post("/_emulator/reset", _post_reset)
    app.router.add_route("*", "/{tail:.*}", _aws)
    return app


async def start(emulator: Emulator, port: int = 0, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port."""
    runner = web.AppRunner(build_app(emulator), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, bound


def _comma_set(text: str | None) -> set[str] | None:
    if text is None:
        return None
    return {part.strip() for part in text.split(",") if part.strip()}


def parse_args(argv: Sequence[str]) -> tuple[Settings, int]:
    """Settings and port from CLI flags (the settings are the knobs of POST /_emulator/config)."""
    parser = argparse.ArgumentParser(
        prog="q-operator emulate aws",
        description="Stand-in for the qbusiness, qapps and appflow APIs on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free one)")
    parser.add_argument("--account-id", default="123456789012", help="the account every call belongs to")
    parser.add_argument("--build-seconds", type=float, default=2.0, help="how long a plugin build takes")
    parser.add_argument(
        "--throttle",
        action="append",
        default=[],
        metavar="OP=RATE",
        help="token-bucket limit in calls/second per operation and region (Op, service:Op or *); repeatable",
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of calls answering 500")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every answer")
    parser.add_argument("--fail-builds-matching", default=None, help="regex: matching plugin builds fail")
    for kind in ("applications", "instances", "apps", "lambdas"):
        parser.add_argument(
            f"--known-{kind}",
            default=None,
            metavar="ID,ID",
            help=f"comma list of existing {kind}; when absent any well-formed one exists",
        )
    args = parser.parse_args(list(argv))
    settings = Settings(
        account_id=args.account_id,
        build_seconds=args.build_seconds,
        fail_rate=args.fail_rate,
        latency_ms=args.latency_ms,
        fail_builds_matching=args.fail_builds_matching,
        known_applications=_comma_set(args.known_applications),
        known_instances=_comma_set(args.known_instances),
        known_apps=_comma_set(args.known_apps),
        known_lambdas=_comma_set(args.known_lambdas),
    )
    for item in args.throttle:
        op, sep, rate = item.partition("=")
        if not sep:
            parser.error(f"--throttle wants OP=RATE, got {item!r}")
        try:
            settings.throttle[op] = float(rate)
        except ValueError:
            parser.error(f"--throttle rate must be a number, got {rate!r}")
    return settings, int(args.port)


async def _serve(settings: Settings, port: int) -> None:
    runner, bound = await start(Emulator(settings), port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY http://127.0.0.1:{bound}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in until SIGTERM or SIGINT."""
    settings, port = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(_serve(settings, port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
