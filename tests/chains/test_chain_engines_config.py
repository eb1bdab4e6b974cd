"""Chain configurations per engine, output parties, and engines the gateway does not run."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from ptx_chain_node.chains.config import check_chain_file, engine_problems, parse_chain_file
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack

SHA = "ab" * 32


def carbynestack_chain(**changes: Any) -> dict[str, Any]:
    chain: dict[str, Any] = {
        "name": "stays",
        "target_ids": ["https://catalog.test/offerings/cs"],
        "engine": "carbynestack",
        "compute_config": FakeCarbyneStack(3).config.as_json(),
        "input": {
            "columns": [
                {"name": "stay", "type": "integer", "min": 0, "max": 60},
                {"name": "ward", "type": "integer"},
            ]
        },
        "computations": [
            {"name": "total", "program": "sum", "version": "1"},
            {
                "name": "mean_stay",
                "program": "mean",
                "version": "1",
                "parameters": {"columns": ["stay"]},
            },
            {
                "name": "bins",
                "program": "histogram",
                "version": "1",
                "parameters": {"columns": ["stay"], "edges": [0, 10, 61]},
            },
        ],
    }
    chain.update(changes)
    return chain


def problems_of(chain: dict[str, Any]) -> set[tuple[str, str]]:
    return {(p.field, p.problem) for p in parse_chain_file({"chains": [chain]})[1]}


def test_a_carbynestack_chain_with_the_engine_programs_is_valid() -> None:
    chains, problems = parse_chain_file({"chains": [carbynestack_chain()]})
    assert problems == [] and chains is not None
    assert chains.chains[0].engine == "carbynestack"


def test_carbynestack_chains_are_checked_against_the_engine() -> None:
    config = FakeCarbyneStack(2).config.as_json()
    del config["providers"]
    chain = carbynestack_chain(
        compute_config=config,
        computations=[
            {"name": "a", "program": "variance", "version": "1"},
            {"name": "b", "program": "mean"},  # the MPC catalogue's 1.0.0
            {"name": "c", "program": "mean", "version": "1", "parameters": {"columns": ["ward"]}},
            {"name": "d", "program": "histogram", "version": "1", "parameters": {"edges": [3]}},
        ],
    )
    found = problems_of(chain)
    fields = {f for f, _ in found}
    assert "chains[0].compute_config.providers" in fields
    assert any(f == "chains[0].computations[0].program" and "variance@1" in p for f, p in found)
    assert any(f == "chains[0].computations[1].program" and "mean@1.0.0" in p for f, p in found)
    assert any(
        f == "chains[0].computations[2].input_specification.columns" and "min and max" in p
        for f, p in found
    )
    assert "chains[0].computations[3].parameters.edges" in fields


def test_an_mpyc_program_name_on_carbynestack_is_refused_by_config_check(tmp_path: Path) -> None:
    path = tmp_path / "chains.json"
    chain = carbynestack_chain(computations=[{"name": "q", "program": "quantile", "version": "1"}])
    path.write_text(json.dumps({"chains": [chain]}))
    assert [p.field for p in check_chain_file(path)] == ["chains[0].computations[0].program"]


@pytest.mark.parametrize(
    ("party", "field", "problem"),
    [
        ({"token_sha256": SHA}, "notify_secret", "Field required"),
        ({"notify_secret": "s" * 16}, "token_sha256", "Field required"),
        ({"notify_secret": "s" * 16, "token_sha256": "xyz"}, "token_sha256", "should match"),
        ({"notify_secret": "short", "token_sha256": SHA}, "notify_secret", "at least 16"),
    ],
)
def test_an_output_party_needs_its_secret_and_token_hash(
    party: dict[str, str], field: str, problem: str
) -> None:
    parties = [{"id": "dash", "endpoint": "https://dash.example.org/client", **party}]
    found = problems_of(carbynestack_chain(output_parties=parties))
    assert any(f == f"chains[0].output_parties[0].{field}" and problem in p for f, p in found), (
        found
    )


def test_output_party_endpoints_and_ids_are_checked() -> None:
    party = {"notify_secret": "s" * 16, "token_sha256": SHA}
    found = problems_of(
        carbynestack_chain(
            output_parties=[{"id": "dash", "endpoint": "https://u:p@dash.example.org", **party}]
        )
    )
    assert any("credentials" in p for _, p in found), found
    twice = [{"id": "dash", "endpoint": "https://dash.example.org", **party}] * 2
    assert any(
        "output party ids must be unique" in p
        for _, p in problems_of(carbynestack_chain(output_parties=twice))
    )
    chain = [{"id": "chain", "endpoint": "https://dash.example.org", **party}]
    assert any(
        "the chain's own" in p for _, p in problems_of(carbynestack_chain(output_parties=chain))
    )


def test_engine_problems_name_the_chains_whose_engine_is_missing() -> None:
    mpyc = carbynestack_chain(name="m", engine="mpyc", target_ids=["https://x/m"])
    mpyc.pop("compute_config")
    mpyc["computations"] = [
        {"name": "n", "program": "count", "parameters": {"columns": {"value": "stay"}}}
    ]
    chains, problems = parse_chain_file({"chains": [carbynestack_chain(), mpyc]})
    assert problems == [] and chains is not None
    assert engine_problems(chains, {"mpyc", "carbynestack"}) == []
    (missing,) = engine_problems(chains, {"mpyc"})
    assert missing.field == "chains[0].engine"
    assert "'carbynestack' is not configured" in missing.problem
    assert [p.field for p in engine_problems(chains, set())] == [
        "chains[0].engine",
        "chains[1].engine",
    ]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_config_check_with_the_gateway_config_reports_an_engine_not_configured(
    tmp_path: Path,
) -> None:
    chains = tmp_path / "chains.json"
    chains.write_text(json.dumps({"chains": [carbynestack_chain()]}))
    gateway = tmp_path / "gateway.json"
    gateway.write_text(json.dumps({"pdc_url": "http://127.0.0.1:3000"}))
    assert run_cli("config", "check", str(chains))[0] == 0  # the file alone is valid
    code, _, err = run_cli("config", "check", str(chains), "--config", str(gateway))
    assert code == 2
    assert "chains[0].engine: engine 'carbynestack' is not configured in the gateway" in err
    gateway.write_text(
        json.dumps(
            {"pdc_url": "http://127.0.0.1:3000", "coordination": {"engines": ["carbynestack"]}}
        )
    )
    code, out, _ = run_cli("config", "check", str(chains), "--config", str(gateway))
    assert code == 0 and out.strip().endswith(": ok")


def test_the_gateway_refuses_to_start_with_a_chain_engine_it_does_not_run(
    tmp_path: Path,
) -> None:
    chains = tmp_path / "chains.json"
    chains.write_text(json.dumps({"chains": [carbynestack_chain()]}))
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'gw.db'}",
        pdc_url="http://127.0.0.1:9",
        resources=[{"name": "mpc", "path": "/mpc", "processor": "mpc", "chains": str(chains)}],
        mpyc={"local_nodes": 0},
    )
    with pytest.raises(ValueError, match=r"chains\[0\]\.engine: engine 'carbynestack'"):
        create_app(settings, configure_logging=False)


def test_party_token_prints_a_token_and_its_sha256() -> None:
    code, out, _ = run_cli("config", "party-token")
    issued = json.loads(out)
    assert code == 0 and issued["token"].startswith("ptxp_")
    assert hashlib.sha256(issued["token"].encode()).hexdigest() == issued["token_sha256"]
