"""The ``node`` and ``client`` commands of ``ptx-chain-node`` (added by gateway.cli).

``ptx-chain-node node --index i --parties host:port,... --http-port P`` runs one compute
node; the token secret shared with the coordinator comes from ``--token-secret-file``, the
environment variable ``PTX_NODE_TOKEN_SECRET`` or ``--token-secret`` (visible in ``ps``).

``ptx-chain-node client upload|result`` are an input and an output party's client;
``ptx-chain-node client serve`` runs a party's upstream-compatible client service
(:mod:`gateway.client_service`). All three work on either engine
(:class:`ptx_chain_node.mpc.party_client.PartyClient`); for Carbyne Stack collaborations the
party's own VCP bearer token comes from ``--vcp-token-file`` or ``$PTX_VCP_TOKEN`` (one
token, or a JSON object provider id -> token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

NODE_SECRET_ENV = "PTX_NODE_TOKEN_SECRET"  # noqa: S105 - the variable's name
PARTY_TOKEN_ENV = "PTX_PARTY_TOKEN"  # noqa: S105 - the variable's name
NOTIFY_SECRET_ENV = "PTX_NOTIFY_SECRET"  # noqa: S105 - the variable's name


def _secret(args: argparse.Namespace) -> str:
    if args.token_secret_file is not None:
        return str(args.token_secret_file.read_text().strip())
    value = os.environ.get(NODE_SECRET_ENV) or args.token_secret
    if not value:
        print(
            f"node: a token secret is required (--token-secret-file, ${NODE_SECRET_ENV})",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return str(value)


async def _serve_node(args: argparse.Namespace) -> None:
    import uvicorn

    from gateway.node_app import create_node_app
    from ptx_chain_node.mpc.node import ComputeNode, NodeConfig
    from ptx_chain_node.mpc.node_tokens import NodeTokens

    config = NodeConfig(
        index=args.index,
        parties=[p.strip() for p in args.parties.split(",") if p.strip()],
        data_dir=args.data_dir.resolve(),
        threshold=args.threshold,
        ssl_dir=args.ssl_dir.resolve() if args.ssl_dir else None,
        retain_shares=args.retain_shares,
        run_timeout=args.run_timeout,
    )
    node = ComputeNode(config, NodeTokens(_secret(args)))
    app = create_node_app(node)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.http_host,
            port=args.http_port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
    )

    async def watch_parent() -> None:
        while not server.should_exit:
            if os.getppid() != args.parent_pid:
                server.should_exit = True  # the process that started us is gone
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch_parent()) if args.parent_pid else None
    try:
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()


def cmd_node(args: argparse.Namespace) -> int:
    from ptx_chain_node import logs
    from ptx_chain_node.errors import PtxError

    logs.configure(args.log_level, json=True)
    try:
        asyncio.run(_serve_node(args))
    except PtxError as exc:
        details = "; ".join(f"{p.field}: {p.problem}" for p in exc.problems)
        print(f"node: {exc.message} ({details})", file=sys.stderr)
        return 2
    return 0


def _print(doc: Any) -> None:
    print(json.dumps(doc, indent=1, default=str))


def _vcp_token(args: argparse.Namespace) -> Any:
    """The party's VCP token(s) from ``--vcp-token-file`` or ``$PTX_VCP_TOKEN`` (or None)."""
    from ptx_chain_node.carbynestack.coordinated_party import parse_vcp_token
    from ptx_chain_node.mpc.party_client import VCP_TOKEN_ENV

    if args.vcp_token_file is not None:
        text = args.vcp_token_file.read_text()
    else:
        text = os.environ.get(VCP_TOKEN_ENV, "")
        if not text.strip():
            return None
    try:
        return parse_vcp_token(text)
    except ValueError as exc:
        print(f"client: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


async def _client_call(args: argparse.Namespace, vcp_token: Any) -> dict[str, Any]:
    import httpx

    from ptx_chain_node.mpc.party_client import PartyClient

    async with httpx.AsyncClient(timeout=args.timeout) as http:
        party = PartyClient(
            http, args.coordinator, args.token, vcp_token=vcp_token, timeout=args.timeout
        )
        if args.action == "upload":
            return await party.upload(
                args.collaboration,
                args.party,
                path=args.file,
                approve=args.approve,
                secret_id=args.secret_id,
            )
        return await party.result(args.collaboration, args.party)


def cmd_client(args: argparse.Namespace) -> int:
    """``client upload`` and ``client result``: print the receipt or result (or the error).

    Standard output is the JSON document only; warnings go to standard error.
    """
    import structlog

    from ptx_chain_node import logs
    from ptx_chain_node.errors import PtxError

    vcp_token = _vcp_token(args)
    logs.configure("warning", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        doc = asyncio.run(_client_call(args, vcp_token))
    except PtxError as exc:
        _print(exc.as_body())
        return 1
    _print(doc)
    return 0


def cmd_client_serve(args: argparse.Namespace) -> int:
    import httpx
    import uvicorn

    from gateway.client_service import create_client_service_app
    from ptx_chain_node import logs
    from ptx_chain_node.mpc.client_service import ClientService

    token = args.token or os.environ.get(PARTY_TOKEN_ENV)
    if not token:
        print(f"client serve: --token or ${PARTY_TOKEN_ENV} is required", file=sys.stderr)
        return 2
    vcp_token = _vcp_token(args)
    logs.configure(args.log_level, json=True)
    service = ClientService(
        httpx.AsyncClient(timeout=args.timeout),
        args.coordinator,
        args.party,
        token,
        notify_secret=args.notify_secret or os.environ.get(NOTIFY_SECRET_ENV) or None,
        approve=args.approve,
        timeout=args.timeout,
        vcp_token=vcp_token,
    )
    app = create_client_service_app(service)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _add_vcp_token(parser: Any) -> None:
    parser.add_argument(
        "--vcp-token-file",
        type=Path,
        help="the party's bearer token at the Carbyne Stack VCPs (or a JSON object provider "
        "id -> token); default $PTX_VCP_TOKEN",
    )


def _add_serve(actions: Any) -> None:
    serve = actions.add_parser("serve", help="run this party's upstream-compatible client service")
    serve.add_argument("--coordinator", required=True, help="coordinator base URL")
    serve.add_argument("--party", required=True, help="the party id this service acts for")
    serve.add_argument("--token", help=f"the party's coordinator token (or ${PARTY_TOKEN_ENV})")
    serve.add_argument(
        "--notify-secret", help=f"verify notifications' HMAC (or ${NOTIFY_SECRET_ENV})"
    )
    serve.add_argument("--approve", action="store_true", help="approve the program on upload")
    _add_vcp_token(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--timeout", type=float, default=60.0)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(handler=cmd_client_serve)


def add_commands(commands: Any) -> None:
    """Add ``node`` and ``client`` to the ``ptx-chain-node`` sub-commands."""
    node = commands.add_parser("node", help="run one MPyC compute node")
    node.add_argument("--index", type=int, required=True, help="this node's party index")
    node.add_argument("--parties", required=True, help="MPyC host:port of all m parties")
    node.add_argument("--http-port", type=int, required=True)
    node.add_argument("--http-host", default="127.0.0.1")
    node.add_argument("--data-dir", type=Path, default=Path("var/node"))
    node.add_argument("--threshold", type=int, default=None, help="t (default (m-1)//2)")
    node.add_argument(
        "--ssl",
        "--ssl-dir",
        dest="ssl_dir",
        type=Path,
        metavar="DIR",
        help="TLS between parties (MPyC --ssl): DIR/.config/{party_<i>.crt,party_<i>.key,"
        "mpyc_ca.crt}",
    )
    node.add_argument("--token-secret", help=f"shared with the coordinator (or ${NODE_SECRET_ENV})")
    node.add_argument("--token-secret-file", type=Path)
    node.add_argument("--retain-shares", action="store_true", help="keep inputs after a run")
    node.add_argument("--run-timeout", type=float, default=120.0)
    node.add_argument("--parent-pid", type=int, default=0, help="exit when this process ends")
    node.add_argument("--log-level", default="info")
    node.set_defaults(handler=cmd_node)

    client = commands.add_parser("client", help="an input or output party's client")
    actions = client.add_subparsers(dest="action", required=True)
    for name, helptext in (
        ("upload", "validate, pre-aggregate, secret-share and upload a CSV or JSON file"),
        ("result", "fetch result shares from the nodes and reconstruct the result"),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("--coordinator", required=True, help="coordinator base URL")
        action.add_argument("--collaboration", required=True)
        action.add_argument("--party", required=True)
        action.add_argument("--token", required=True, help="the party's coordinator token")
        action.add_argument("--timeout", type=float, default=60.0)
        _add_vcp_token(action)
        action.set_defaults(handler=cmd_client)
        if name == "upload":
            action.add_argument("file", type=Path)
            action.add_argument(
                "--approve", action="store_true", help="approve the program hash on upload"
            )
            action.add_argument(
                "--secret-id",
                help="upload under this id (default: a fresh one), e.g. one "
                "already named in a chain thread by reference (MPyC only)",
            )
    _add_serve(actions)
