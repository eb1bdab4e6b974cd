"""Inputs by reference: a thread naming secrets its party's own client already uploaded.

A data thread of an ``mpc`` chain step normally carries its party's records; the gateway
shares and uploads them. A thread may instead carry only a reference (pure parsing here)::

    {"ptx_mpc_reference": {"rows": 1200,
                           "secret_ids": {"<computation name>": ["<secret id>", ...], ...}}}

The party is the thread's own (bound as for records: origin, or the additional thread's
participant); a reference cannot name another party. Every configured computation must be
named: each computation is its own collaboration and its secrets are bound to it. Before
the chain reaches the gateway, the party's operator obtained a registration in each of the
chain's collaborations (``MpcProcessor.register_reference``, over HTTP ``POST
/chains/{name}/parties``: the collaborations of the chainId are created ahead, their ids
derived from (configuration, chainId, computation)), and the party uploads with its own
client (``ptx-chain-node client upload``, which shares, uploads and confirms), before or
after the chain step arrives. The processor waits for that confirmed upload until the
collaboration's deadline and checks that it has exactly these secret ids and this row
count: no plaintext of that party passes through the gateway or its job store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptx_chain_node.chains.config import ChainConfig
from ptx_chain_node.errors import Problem

REFERENCE_KEY = "ptx_mpc_reference"
_MAX_SECRETS = 100


@dataclass(frozen=True)
class Reference:
    """A party's uploads by reference: secret ids per computation and the row count."""

    secret_ids: dict[str, list[str]]
    rows: int


def is_reference(data: Any) -> bool:
    """Whether a thread's data is a reference (an object whose only key is the marker)."""
    return isinstance(data, dict) and set(data) == {REFERENCE_KEY}


def parse_reference(
    config: ChainConfig, data: Any, where: str
) -> tuple[Reference | None, list[Problem]]:
    """The reference in a thread's data (:func:`is_reference` true) and its problems."""
    body = data[REFERENCE_KEY]
    at = f"{where}.{REFERENCE_KEY}"
    if not isinstance(body, dict):
        return None, [Problem(at, "not an object with rows and secret_ids")]
    problems: list[Problem] = []
    unknown = sorted(set(body) - {"rows", "secret_ids"})
    if unknown:
        problems.append(Problem(at, f"unknown fields: {', '.join(unknown)}"))
    rows = body.get("rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        problems.append(Problem(f"{at}.rows", "not a row count (integer >= 0)"))
        rows = 0
    elif rows < config.input.min_rows:
        problems.append(Problem(f"{at}.rows", f"{rows} rows; at least {config.input.min_rows}"))
    elif config.input.max_rows is not None and rows > config.input.max_rows:
        problems.append(Problem(f"{at}.rows", f"{rows} rows; at most {config.input.max_rows}"))
    secrets = body.get("secret_ids")
    found: dict[str, list[str]] = {}
    if not isinstance(secrets, dict):
        problems.append(Problem(f"{at}.secret_ids", "not an object: computation -> secret ids"))
        secrets = {}
    names = [c.name for c in config.computations]
    for name in sorted(set(secrets) - set(names)):
        problems.append(Problem(f"{at}.secret_ids.{name}", "not a computation of this chain"))
    for name in names:
        ids = secrets.get(name)
        if not (
            isinstance(ids, list)
            and 0 < len(ids) <= _MAX_SECRETS
            and all(isinstance(i, str) and 0 < len(i) <= 200 for i in ids)
        ):
            problems.append(Problem(f"{at}.secret_ids.{name}", "not a list of secret ids"))
            continue
        found[name] = [str(i) for i in ids]
    if problems:
        return None, problems
    return Reference(found, rows), []
