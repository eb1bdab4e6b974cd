"""The ``ptx-chain-node`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from gateway.settings import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config)
    except ValidationError as exc:
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"]) or "(top level)"
            print(f"config error: {location}: {error['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, ValueError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _exit_on_signal(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.runtime import tune_garbage_collection

    settings = _settings(args)
    nodes = None
    if settings.mpyc.enabled and not settings.mpyc.nodes and settings.mpyc.local_nodes:
        from gateway.local_nodes import LocalNodes
        from ptx_chain_node import logs

        logs.configure(settings.log_level, json=settings.log_json)
        # One data directory per gateway port: two gateways never share node stores.
        nodes = LocalNodes.from_settings(settings.mpyc, f"gateway-{args.port}")
        settings = settings.model_copy(update={"mpyc": nodes.settings(settings.mpyc)})
        # uvicorn re-raises the SIGTERM it handled; end through ``finally`` to stop the nodes.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        nodes.start()
    try:
        app = create_app(settings)
        tune_garbage_collection()
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        if nodes is not None:
            nodes.stop()
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from gateway import schemas

    if args.check:
        stale = schemas.drift(args.out)
        if stale:
            print(
                f"schemas out of date: {', '.join(stale)}; run ptx-chain-node schemas",
                file=sys.stderr,
            )
            return 1
        print("schemas up to date")
        return 0
    for name in schemas.write(args.out):
        print(f"wrote {args.out / name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway import demo

    return demo.main(as_json=args.json, timeout=args.timeout)


def cmd_config_check(args: argparse.Namespace) -> int:
    from ptx_chain_node.chains.config import check_chain_file, engine_problems, load_chain_file

    problems = check_chain_file(args.file)
    if not problems and args.config is not None:
        from gateway.runtime import chain_engines

        engines = chain_engines(_settings(args))
        problems = engine_problems(load_chain_file(args.file), engines)
    for problem in problems:
        print(f"{args.file}: {problem.field}: {problem.problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 2
    print(f"{args.file}: ok")
    return 0


def cmd_config_party_token(_args: argparse.Namespace) -> int:
    import json

    from ptx_chain_node.coordination.tokens import issue_party_token

    issued = issue_party_token()
    print(json.dumps({"token": issued.value, "token_sha256": issued.sha256}, indent=1))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ptx-chain-node",
        description="A secure multi-party computation step in a Prometheus-X service chain.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway (PDC resource + API)")
    serve.add_argument("--config", type=Path, help="TOML or JSON config file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="run a whole chain locally, end to end")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.add_argument("--timeout", type=float, default=120.0)
    demo.set_defaults(handler=cmd_demo)

    schemas = commands.add_parser("schemas", help="write (or --check) the JSON schemas")
    schemas.add_argument("--out", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if the files drifted")
    schemas.set_defaults(handler=cmd_schemas)

    config = commands.add_parser("config", help="check configuration files")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="check a chain configuration file")
    check.add_argument("file", type=Path, help="TOML or JSON chain configuration")
    check.add_argument(
        "--config", type=Path, help="gateway config: also check that the chains' engines run"
    )
    check.set_defaults(handler=cmd_config_check)
    token = config_commands.add_parser(
        "party-token", help="issue a chain output party's bearer token and its sha256"
    )
    token.set_defaults(handler=cmd_config_party_token)

    from gateway.node_cli import add_commands

    add_commands(commands)  # node, client upload, client result

    from gateway.jobs_cli import add_commands as add_job_commands

    add_job_commands(commands, _settings)  # jobs list, jobs show, jobs retry
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
