"""Program parameters without pydantic, and a party process that stays lean.

Parameters are read leniently (as JSON and TOML give them) but never wrongly: a fraction is
not an int, a boolean is not a number, an unknown name is refused. The party process must
not load the validation and web stack: its start-up is on the critical path of every run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc.catalogue import bind
from ptx_chain_node.mpc.programs.moments import SpreadParams, ValueParams
from ptx_chain_node.mpc.programs.order import HistogramParams, QuantileParams

V = "1.0.0"


def problems(cls: type[ValueParams], doc: dict[str, object]) -> dict[str, str]:
    with pytest.raises(PtxError) as info:
        cls.parse(doc)
    assert info.value.status == 422
    return {p.field: p.problem for p in info.value.problems}


def test_numbers_are_read_leniently_but_exactly() -> None:
    for given in (2, "2", " 2 ", 2.0, Decimal("2.00")):
        assert ValueParams.parse({"scale": given}).scale == 2
    assert ValueParams.parse({}) == ValueParams(min_group_size=5, scale=0)
    q = QuantileParams.parse({"q": 0.1})
    assert q.q == Decimal("0.1")  # from the float's shortest repr, not its binary value
    assert QuantileParams.parse({"q": "0.25"}).q == Decimal("0.25")
    edges = HistogramParams.parse({"edges": [0, "1.5", 2.25, Decimal(3)]}).edges
    assert edges == [Decimal(0), Decimal("1.5"), Decimal("2.25"), Decimal(3)]


def test_bad_parameters_are_named_with_their_problem() -> None:
    assert problems(ValueParams, {"scale": 2.5}) == {"params.scale": "must be an integer"}
    assert "boolean" in problems(ValueParams, {"scale": True})["params.scale"]
    assert problems(ValueParams, {"scale": 19}) == {"params.scale": "must be at most 18"}
    assert problems(ValueParams, {"min_group_size": 0, "code": "import os"}) == {
        "params.code": "unknown parameter",
        "params.min_group_size": "must be at least 1",
    }
    assert problems(QuantileParams, {}) == {"params.q": "missing"}
    assert problems(QuantileParams, {"q": "NaN"}) == {"params.q": "must be finite"}
    assert problems(QuantileParams, {"q": "1.01"}) == {"params.q": "must be at most 1"}
    assert problems(HistogramParams, {"edges": [1]}) == {"params.edges": "needs at least 2 items"}
    assert "item 1" in problems(HistogramParams, {"edges": [1, "x"]})["params.edges"]
    assert problems(HistogramParams, {"edges": [0, 2, 2]}) == {
        "params.edges": "edges must be strictly increasing"
    }
    assert problems(HistogramParams, {"edges": "0,1"}) == {
        "params.edges": "must be a list of numbers"
    }
    assert set(problems(SpreadParams, {"min_group_size": 1})) == {"params.min_group_size"}
    with pytest.raises(PtxError) as info:
        bind("histogram", V, {"edges": ["3", "1"]})
    assert info.value.message == "invalid parameters for program histogram"
    assert info.value.problems[0].field == "params.edges"


def test_the_canonical_form_round_trips_and_pins_the_hash() -> None:
    given = bind("histogram", V, {"edges": [0, 0.5, "1"], "scale": "1"})
    wire = given.ref().params
    assert wire == {"min_group_size": 5, "scale": 1, "edges": ["0", "0.5", "1"]}
    assert json.loads(json.dumps(wire)) == wire
    again = bind("histogram", V, wire)
    assert again.params == given.params
    assert again.hash == given.hash
    assert bind("histogram", V, {"edges": ["0", "0.50", "1"], "scale": 1}).hash != given.hash


def test_a_party_process_loads_no_validation_or_web_stack(tmp_path: Path) -> None:
    """What ``python -m ptx_chain_node.mpc.party`` imports up to the start of MPyC."""
    bound = bind("variance", V, {"min_group_size": 2, "scale": 2})
    job = tmp_path / "job.json"
    from ptx_chain_node.mpc.job import Computation, PartyJob

    vectors = bound.share({"value": ["1.50", "2.25", "3"]}, 3)
    vectors[0].dump(tmp_path / "input.json")
    PartyJob(
        run_id="r",
        index=0,
        parties=["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"],
        computations=[Computation(bound.ref(), [tmp_path / "input.json"])],
        output=tmp_path / "result.json",
    ).dump(job)
    script = f"""
import os, sys
from ptx_chain_node.mpc import party
from ptx_chain_node.mpc.job import PartyJob
os.environ.pop("OPENBLAS_NUM_THREADS", None)
party.main(["--job", "/nonexistent"])  # sets the BLAS threads and fails on the missing job
prepared = party.prepare(PartyJob.load(__import__("pathlib").Path({str(job)!r})))
assert prepared[0].bound.name == "variance"
print(os.environ["OPENBLAS_NUM_THREADS"])
print(" ".join(sorted(sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    threads, modules = done.stdout.splitlines()
    assert threads == "1"
    loaded = {m.split(".")[0] for m in modules.split()}
    assert "numpy" in loaded  # the catalogue's pre-aggregation; MPyC needs it anyway
    heavy = {"pydantic", "pydantic_core", "structlog", "sqlalchemy", "httpx", "starlette"}
    assert not loaded & heavy
