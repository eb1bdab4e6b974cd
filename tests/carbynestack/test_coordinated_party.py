"""The pure parts of a party's Carbyne Stack client: VCP tokens, result JSON, program check."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from ptx_chain_node.carbynestack.coordinated_party import (
    checked_program,
    definition_of,
    json_value,
    parse_vcp_token,
)
from ptx_chain_node.coordination.collaboration import InputSpec, ProgramRef
from ptx_chain_node.coordination.programs import StaticProgramRegistry
from ptx_chain_node.errors import PtxError

SPEC = {
    "columns": [
        {"name": "stays", "type": "integer", "min": 0, "max": 60},
        {"name": "cost", "type": "fixed", "scale": 2, "min": -500, "max": 5000},
    ]
}


def test_vcp_tokens_are_one_token_or_one_per_provider() -> None:
    assert parse_vcp_token(" t0k \n") == "t0k"
    assert parse_vcp_token('{"1": "a", "2": "b"}') == {1: "a", 2: "b"}
    for bad in ("", "{", '{"x": "a"}', '{"1": ""}', "{1: 2}"):
        with pytest.raises(ValueError, match="VCP"):
            parse_vcp_token(bad)


def test_results_become_json_exactly() -> None:
    assert json_value(Decimal("1520")) == 1520
    assert json_value(Decimal(12345).scaleb(-2)) == "123.45"
    assert json_value(Fraction(1, 4)) == 0.25
    assert json_value([1, 2]) == [1, 2]


def _view(program: dict[str, Any]) -> dict[str, Any]:
    spec = InputSpec.model_validate(SPEC)
    resolved = StaticProgramRegistry().resolve(ProgramRef.model_validate(program), spec)
    return {
        "id": "c1",
        "name": "stays",
        "state": "open",
        "program": resolved.model_dump(),
        "input_specification": spec.model_dump(exclude_none=True),
        "input_parties": [],
        "number_of_parties": 3,
        "min_parties": 3,
        "allow_partial_run": False,
        "deadline": None,
        "engine": "carbynestack",
        "compute_config": {},
        "registration": "open",
        "approval": "explicit",
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def test_the_client_recomputes_the_program_hash() -> None:
    view = _view({"name": "sum", "version": "1"})
    assert checked_program(definition_of(view)) == view["program"]["sha256"]
    view["program"]["sha256"] = "0" * 64
    with pytest.raises(PtxError) as caught:
        checked_program(definition_of(view))
    assert (caught.value.status, caught.value.problems[0].field) == (409, "program.sha256")
    with pytest.raises(PtxError) as caught:  # the engine cannot run it
        checked_program(definition_of(_view({"name": "count", "version": "1"})))
    assert caught.value.status == 409
    with pytest.raises(PtxError) as caught:
        definition_of({**view, "input_specification": {"columns": "x"}})
    assert caught.value.status == 502
