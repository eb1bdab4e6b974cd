"""Chain configuration: the file, `config check`, matching by target and catalogId, rows."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main
from ptx_chain_node.chain import ChainContext
from ptx_chain_node.chains.config import (
    ChainConfig,
    InputMapping,
    check_chain_file,
    load_chain_file,
    parse_chain_file,
)
from ptx_chain_node.chains.contracts import ContractClient, catalog_ids_for
from ptx_chain_node.chains.matching import ChainMatcher
from ptx_chain_node.chains.processor import chain_inputs
from ptx_chain_node.chains.records import lookup, typed_rows
from ptx_chain_node.chains.shaping import computation_value
from ptx_chain_node.errors import PtxError
from ptx_chain_node.payload import parse_payload

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "chains"
TARGET = "https://catalog.test/v1/catalog/serviceofferings/mpc"
CONTRACTS = "https://contracts.test/contracts"


def chain(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "salaries",
        "target_ids": [TARGET],
        "input": {
            "columns": [
                {"name": "salary", "path": "pay.gross", "type": "integer", "min": 0, "max": 10**6},
                {"name": "dept", "type": "categorical", "categories": ["ops", "dev"]},
            ],
            "min_rows": 1,
        },
        "parties": [
            {"id": "provider", "thread": "origin"},
            {"id": "north", "participant_id": "p-north"},
            {"id": "south", "participant_name": "South Ltd"},
        ],
        "computations": [
            {"name": "mean", "program": "mean", "parameters": {"columns": {"value": "salary"}}}
        ],
    }
    base.update(overrides)
    return base


def test_every_example_chain_file_loads() -> None:
    files = sorted(EXAMPLES.glob("*.toml")) + sorted(EXAMPLES.glob("*.json"))
    assert files, "examples/chains holds at least one chain configuration"
    for path in files:
        assert check_chain_file(path) == [], path
        assert load_chain_file(path).chains


def test_config_check_reports_every_problem_with_its_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "chains": [
            chain(input={"columns": [{"name": "salary", "type": "fixed"}], "bad_rows": "maybe"}),
            chain(
                name="other",
                target_ids=["https://catalog.test/other"],
                computations=[
                    {"name": "m", "program": "mean", "parameters": {"columns": {"value": "nope"}}},
                    {"name": "v", "program": "nosuch"},
                ],
            ),
            chain(name="third", target_ids=[], parties=[{"id": "x", "thread": "additional"}]),
        ]
    }
    path = tmp_path / "chains.json"
    path.write_text(json.dumps(bad))
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    for where in (
        "chains[0].input.columns[0]: a fixed column needs a scale",
        "chains[0].input.bad_rows: Input should be 'refuse' or 'skip'",
        "chains[1].computations[0].parameters.columns.value: input column 'nope'",
        "chains[1].computations[1].program: no catalogue program 'nosuch'",
        "chains[2].parties[0]: an additional thread needs participant_id or participant_name",
    ):
        assert where in err, err
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"chains": [chain()]}))
    assert main(["config", "check", str(good)]) == 0
    assert main(["config", "check", str(tmp_path / "missing.toml")]) == 2


def test_a_target_or_catalog_id_belongs_to_one_chain() -> None:
    _, problems = parse_chain_file({"chains": [chain(), chain(name="two")]})
    assert any("is in 'salaries' and 'two'" in p.problem for p in problems)
    _, problems = parse_chain_file({"chains": [chain(target_ids=[])]})
    assert problems[0].problem.startswith("give catalog_ids or target_ids")


def test_catalog_ids_come_from_service_chains_that_include_the_target() -> None:
    contract = {
        "serviceChains": [
            {"catalogId": "c1", "services": [{"service": "https://x/a"}, {"service": TARGET}]},
            {"catalogId": "c2", "services": [{"service": "https://x/a"}]},
            {"catalogId": "c3", "services": [TARGET]},
            {"services": [{"service": TARGET}]},
        ]
    }
    assert catalog_ids_for(contract, TARGET) == ["c1", "c3"]
    assert catalog_ids_for({"serviceChains": "nonsense"}, TARGET) == []


async def test_matching_by_target_then_by_catalog_id_from_a_cached_contract() -> None:
    fetched: list[str] = []

    def contract_service(request: httpx.Request) -> httpx.Response:
        fetched.append(str(request.url))
        if request.url.path.endswith("/missing"):
            return httpx.Response(404)
        services = [{"service": "https://catalog.test/so/chained"}]
        return httpx.Response(
            200, json={"serviceChains": [{"catalogId": "cat-1", "services": services}]}
        )

    chains, _ = parse_chain_file(
        {
            "contract_services": [CONTRACTS],
            "chains": [chain(), chain(name="by-catalog", target_ids=[], catalog_ids=["cat-1"])],
        }
    )
    assert chains is not None
    async with httpx.AsyncClient(transport=httpx.MockTransport(contract_service)) as http:
        contracts = ContractClient(http, chains.contract_services, ttl=60, timeout=5)
        matcher = ChainMatcher(chains, contracts)

        def context(target: str, contract_url: str | None = None) -> ChainContext:
            return ChainContext(chain_id="c", target_id=target, contract_url=contract_url)

        assert (await matcher.match(context(TARGET), None)).name == "salaries"
        assert fetched == []  # a target id needs no contract
        chained = "https://catalog.test/so/chained"
        payload = parse_payload({"data": [], "contract": f"{CONTRACTS}/42"})
        for _ in range(3):
            assert (await matcher.match(context(chained), payload)).name == "by-catalog"
        assert fetched == [f"{CONTRACTS}/42"]  # fetched once, then cached
        # the contract URL of the header serves as well
        found = await matcher.match(context(chained, f"{CONTRACTS}/43"), None)
        assert found.name == "by-catalog"
        with pytest.raises(PtxError) as caught:  # a contract elsewhere is never fetched
            await matcher.match(context(chained, "https://evil.test/contracts/42"), None)
        assert caught.value.status == 404
        with pytest.raises(PtxError) as caught:  # a chain the target is not in
            await matcher.match(context("https://catalog.test/so/unknown", f"{CONTRACTS}/42"), None)
        assert caught.value.status == 404
        with pytest.raises(PtxError) as caught:
            await matcher.match(context(chained, f"{CONTRACTS}/missing"), None)
        assert caught.value.status == 422
        assert "https://evil.test/contracts/42" not in fetched


def test_field_paths_and_typed_rows() -> None:
    record = {"pay": {"gross": 5, "list": [{"v": 7}]}}
    assert lookup(record, "pay.gross") == 5
    assert lookup(record, "pay.list.0.v") == 7
    assert lookup(record, "pay.list.3.v") is not None and lookup(record, "pay.nope") is not None
    mapping = ChainConfig.model_validate(chain()).input
    rows, problems = typed_rows(
        mapping,
        [{"pay": {"gross": 10}, "dept": "dev"}, {"pay": {"gross": "20"}, "dept": "ops"}],
        "body.data",
    )
    assert problems == [] and rows.rows == 2
    assert rows.columns == {"salary": [10, 20], "dept": [1, 0]}


def test_bad_rows_are_named_or_skipped() -> None:
    data = [
        {"pay": {"gross": 10}, "dept": "dev"},
        {"pay": {"gross": -1}, "dept": "hr"},
        {"pay": {}, "dept": "ops"},
        "not a record",
        {"pay": {"gross": 2.5}, "dept": "ops"},
    ]
    config = ChainConfig.model_validate(chain())
    _, problems = typed_rows(config.input, data, "body.data.origin")
    assert {(p.field, p.problem) for p in problems} == {
        ("body.data.origin[1].pay.gross", "below the minimum 0"),
        ("body.data.origin[1].dept", "not one of the 2 categories"),
        ("body.data.origin[2].pay.gross", "missing value"),
        ("body.data.origin[3]", "not a JSON object"),
        ("body.data.origin[4].pay.gross", "not a whole number"),
    }
    skipping = InputMapping.model_validate({**config.input.model_dump(), "bad_rows": "skip"})
    rows, problems = typed_rows(skipping, data, "body.data.origin")
    assert problems == [] and rows.rows == 1 and rows.skipped == 4
    strict = InputMapping.model_validate({**skipping.model_dump(), "min_rows": 2})
    _, problems = typed_rows(strict, data, "w")
    assert [p.problem for p in problems] == ["1 usable rows; at least 2"]


def test_threads_map_to_parties_by_participant_id_or_name() -> None:
    config = ChainConfig.model_validate(chain())
    row = {"pay": {"gross": 1}, "dept": "ops"}
    merged = {
        "origin": [row],
        "additionalData": [
            {"participant": {"id": "p-north", "name": "whatever"}, "data": [row, row]},
            {"participant": {"id": "other", "name": "South Ltd"}, "data": [row]},
        ],
    }
    inputs = chain_inputs(config, parse_payload({"data": merged}))
    assert [(pt.party.id, rows.rows) for pt, rows in inputs] == [
        ("provider", 1),
        ("north", 2),
        ("south", 1),
    ]
    merged["additionalData"].append({"participant": {"id": "stranger"}, "data": [row]})  # type: ignore[attr-defined]
    with pytest.raises(PtxError) as caught:
        chain_inputs(config, parse_payload({"data": merged}))
    assert caught.value.status == 422
    assert [p.field for p in caught.value.problems] == ["body.data.additionalData[2].participant"]
    open_config = ChainConfig.model_validate(chain(accept_unlisted=True))
    ids = [pt.party.id for pt, _ in chain_inputs(open_config, parse_payload({"data": merged}))]
    assert ids == ["provider", "north", "south", "stranger"]
    # a bare (linear chain) thread is the provider's
    assert [pt.party.id for pt, _ in chain_inputs(config, parse_payload([row]))] == ["provider"]


def test_results_take_labels_and_json_numbers() -> None:
    config = ChainConfig.model_validate(
        chain(
            computations=[
                {"name": "n", "program": "sum", "parameters": {"columns": {"value": "salary"}}},
                {
                    "name": "by_dept",
                    "program": "histogram",
                    "parameters": {"columns": {"value": "dept"}, "edges": [0, 1, 2]},
                    "labels": ["ops", "dev"],
                },
            ]
        )
    )
    total, by_dept = config.computations
    assert computation_value(total, ["sum"], [Decimal("12.50")]) == 12.5
    assert computation_value(total, ["sum"], [Decimal("12")]) == 12
    assert computation_value(by_dept, ["[0, 1)", "[1, 2]"], [3, 4]) == {"ops": 3, "dev": 4}
