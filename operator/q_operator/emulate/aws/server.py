"""`q-operator emulate aws`: the stand-in as an aiohttp server on 127.0.0.1, plus its admin API.

AWS requests go to one catch-all route and are answered by `Emulator.handle`; the admin API under
`/_emulator/` lets tests read the call log and state and change faults at runtime. A lost answer is
lost here, on the wire: the connection is reset (TCP RST) instead of answered, or the answer is
held past the client's read timeout and the connection then reset.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import signal
import socket
import struct
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from q_operator.emulate.aws.config import LOST_ANSWER_KINDS, Flag, Settings
from q_operator.emulate.aws.core import Emulator, served
from q_operator.emulate.aws.services.registry import SERVICES

EMULATOR_KEY = web.AppKey("emulator", Emulator)
INITIAL_KEY = web.AppKey("initial_settings", Settings)
HELD_KEY = web.AppKey("held_answers", set[asyncio.Task[Any]])


def _reset_connection(request: web.Request) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0): the client sees 'connection reset'."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _lose(request: web.Request, kind: str, hold: float) -> web.Response:
    """Lose an answer the way `kind` says; never returns normally."""
    if kind == "timeout":
        held = request.app[HELD_KEY]
        task = asyncio.current_task()
        assert task is not None
        held.add(task)
        try:
            await asyncio.sleep(hold)
        finally:
            held.discard(task)
    _reset_connection(request)
    raise asyncio.CancelledError


async def _aws(request: web.Request) -> web.Response:
    emulator = request.app[EMULATOR_KEY]
    body = await request.read()
    query: dict[str, list[str]] = {}
    for key, value in request.rel_url.query.items():
        query.setdefault(key, []).append(value)
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = emulator.handle(request.method, request.rel_url.raw_path, query, headers, body)
    if answer.lost is not None:
        return await _lose(request, answer.lost, emulator.settings.lost_answer_hold)
    if emulator.settings.latency_ms > 0:
        await asyncio.sleep(emulator.settings.latency_ms / 1000.0)
    return web.Response(status=answer.status, headers=answer.headers, body=answer.body)


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
    """Forget resources, tokens, credentials, the call log and runtime config: back to the start."""
    request.app[EMULATOR_KEY].restart(request.app[INITIAL_KEY])
    return _json({"reset": True})


async def _release_held(app: web.Application) -> None:
    """At shutdown, held answers end at once (else the server would wait out their hold)."""
    held: set[asyncio.Task[Any]] = app[HELD_KEY]
    for task in list(held):
        task.cancel()


def build_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving one emulator (admin routes first, then every AWS path)."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator
    app[INITIAL_KEY] = copy.deepcopy(emulator.settings)
    app[HELD_KEY] = set()
    app.on_shutdown.append(_release_held)
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


def _add_flags(parser: argparse.ArgumentParser) -> dict[str, Flag]:
    """Each served service's flags, in a group of its own; returns them by argparse dest."""
    flags: dict[str, Flag] = {}
    for service in SERVICES:
        group = parser.add_argument_group(f"{service.name} settings")
        for flag in service.knobs.FLAGS:
            dest = f"{service.name}:{flag.key}"
            group.add_argument(
                flag.name,
                dest=dest,
                type=flag.type,
                default=None,
                action="append" if flag.repeatable else "store",
                metavar=flag.metavar or flag.name.lstrip("-").replace("-", "_").upper(),
                help=flag.help,
            )
            flags[dest] = flag
    return flags


def _merged(changes: dict[str, Any], more: dict[str, Any]) -> None:
    """Add one flag's change (several quota flags add to one `quotas` object)."""
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(changes.get(key), dict):
            changes[key] = {**changes[key], **value}
        else:
            changes[key] = value


def parse_args(argv: Sequence[str]) -> tuple[Settings, int]:
    """Settings and port from CLI flags (the settings are the knobs of POST /_emulator/config)."""
    parser = argparse.ArgumentParser(
        prog="q-operator emulate aws",
        description=f"Stand-in for the {', '.join(s.name for s in SERVICES)} APIs on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 picks a free one)")
    parser.add_argument(
        "--account-id",
        default="123456789012",
        help="the default account: calls with any credentials AssumeRole did not issue act in it",
    )
    parser.add_argument(
        "--throttle",
        action="append",
        default=[],
        metavar="OP=RATE",
        help="token-bucket limit in calls/second per operation and region (Op, service:Op or *); repeatable",
    )
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of calls answering 500")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every answer")
    parser.add_argument("--seed", type=int, default=None, help="seed every random choice (repeatable runs)")
    parser.add_argument(
        "--read-lag",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="a write shows in Get/List/Describe after up to this long (drawn per write)",
    )
    parser.add_argument(
        "--lost-answer-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="share of writes that act and then lose their answer (connection reset or held)",
    )
    parser.add_argument(
        "--lost-answer-kinds",
        default=",".join(LOST_ANSWER_KINDS),
        metavar="KIND,KIND",
        help="how answers are lost: reset, timeout (default both, chosen by the seed)",
    )
    parser.add_argument(
        "--lost-answer-hold",
        type=float,
        default=65.0,
        metavar="SECONDS",
        help="how long a `timeout` lost answer is held before the connection is reset",
    )
    flags = _add_flags(parser)
    args = parser.parse_args(list(argv))
    settings = served(
        Settings(account_id=args.account_id, fail_rate=args.fail_rate, latency_ms=args.latency_ms)
    )
    changes: dict[str, Any] = {
        "seed": args.seed,
        "read_lag": args.read_lag,
        "lost_answer_rate": args.lost_answer_rate,
        "lost_answer_kinds": args.lost_answer_kinds,
        "lost_answer_hold": args.lost_answer_hold,
    }
    for dest, flag in flags.items():
        value = getattr(args, dest)
        if value is not None:
            _merged(changes, flag.change(value))
    try:
        settings.apply(changes, 0.0)
    except ValueError as exc:
        parser.error(str(exc))
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
