"""Results to the resume ``data`` and ``params`` (pure), as the chain configuration says."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ptx_chain_node.chains.config import ChainConfig, Computation
from ptx_chain_node.job import JobResult


def json_number(value: object) -> object:
    """A decoded value as JSON: an integral Decimal as int, another Decimal as float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def computation_value(computation: Computation, names: list[str], values: list[object]) -> Any:
    """One computation's result: its single value, or ``{output name or label: value}``."""
    converted = [json_number(v) for v in values]
    if names == [computation.program] and not computation.labels:
        return converted[0]
    keys = computation.labels if len(computation.labels) == len(names) else names
    return dict(zip(keys, converted, strict=True))


def shape(
    config: ChainConfig,
    results: dict[str, Any],
    parties: dict[str, int | None],
    collaborations: dict[str, str],
) -> JobResult:
    """The resume data and params of a chain step's results."""
    data: Any = results
    if config.result.include_parties:
        data = {
            config.result.key or "results": results,
            "parties": parties,
            "computed_by": {"engine": config.engine, "collaborations": collaborations},
        }
    elif config.result.key:
        data = {config.result.key: results}
    params = {"processor": "mpc", "chain": config.name, **config.result.params}
    return JobResult(data=data, params=params)


def failure(config: ChainConfig, reason: str) -> JobResult:
    """The explicit error object a chain is resumed with under ``on_failure = resume_error``."""
    data = {"error": {"code": "mpc_failed", "message": reason, "chain": config.name}}
    params = {"processor": "mpc", "chain": config.name, "status": "error", **config.result.params}
    return JobResult(data=data, params=params)
