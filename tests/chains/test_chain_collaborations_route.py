"""``GET /chains/{name}/collaborations``: the operator looks up a chain step's collaborations.

The gateway (in this process, served by uvicorn), three real node processes and a simulated
PDC hosting the chain. The operator asks the route for the step's collaboration ids and
hands them to an external input party, which registers and uploads with its own client
code path; the result is checked against a plaintext recomputation of random data.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_harness import (
    chain,
    chain_config,
    gateway_settings,
    local_nodes,
    random_rows,
    salaries,
    wait_for,
    world,
    write_chains,
)

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.chains.step_collaborations import collaboration_id
from ptx_chain_node.mpc.upload import upload_file
from ptx_chain_node.testing import serve

pytestmark = pytest.mark.slow

OPERATOR = "operator-token-for-tests-0123456789"
AUTH = {"authorization": f"Bearer {OPERATOR}"}
URL = "/chains/payroll/collaborations"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with local_nodes(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


def _fields(answer: httpx.Response) -> list[str]:
    return [e["field"] for e in answer.json()["errors"]]


async def test_the_operator_hands_the_looked_up_ids_to_an_external_party(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    provider, north, lab = (random_rows(rng, rng.randrange(3, 25)) for _ in range(3))
    chains = write_chains(tmp_path / "chains.json", chain("payroll", external=("lab",), mean=True))
    config = chain_config(chains, "payroll")
    async with world() as w:
        settings = gateway_settings(
            nodes, tmp_path / "gw.db", chains, w.pdc.base_url, operator_token=OPERATOR
        )
        app = create_app(Settings(**settings), configure_logging=False)
        async with serve(app) as server:
            url = server.url
            # Before the step arrives: the ids derived from the configuration, nothing created.
            chain_id = "@supervisor:" + "ef" * 64 + "-1-00000002"
            ahead = await w.http.get(url + URL, params={"chain_id": chain_id}, headers=AUTH)
            assert ahead.status_code == 200, ahead.text
            assert ahead.json() == {
                c.name: {"collaboration_id": collaboration_id(config, chain_id, c), "state": None}
                for c in config.computations
            }
            assert await app.state.runtime.coordination.coordinator.collaborations() == []

            chain_id = await w.start(url, "payroll", provider, north)
            await w.job_in(url, chain_id, "payroll", "computing")

            async def opened() -> dict[str, Any] | None:
                answer = await w.http.get(url + URL, params={"chain_id": chain_id}, headers=AUTH)
                assert answer.status_code == 200, answer.text
                found: dict[str, Any] = answer.json()
                return found if {v["state"] for v in found.values()} == {"open"} else None

            step = await wait_for(opened, 30, "the step's collaborations")
            assert set(step) == {"total", "mean"}
            # The external party, given only these ids: registers and uploads with its client.
            path = tmp_path / "lab.json"
            path.write_text(json.dumps([{"salary": row["pay"]} for row in lab]))
            for found in step.values():
                cid = found["collaboration_id"]
                joined = await w.http.post(f"{url}/v1/collaborations/{cid}/input-parties/lab")
                assert joined.status_code == 201, joined.text
                receipt = await upload_file(
                    url, cid, "lab", joined.json()["token"], path, approve=True
                )
                assert receipt["rows"] == len(lab)

            output = await w.pdc.wait_for_output(chain_id, 60)
            everything = salaries(provider, north, lab)
            assert output.data["statistics"]["total"] == sum(everything)
            assert math.isclose(
                output.data["statistics"]["mean"], statistics.fmean(everything), rel_tol=1e-9
            )
            assert output.data["computed_by"]["collaborations"] == {
                name: found["collaboration_id"] for name, found in step.items()
            }
            done = await w.http.get(url + URL, params={"chain_id": chain_id}, headers=AUTH)
            assert {name: v["state"] for name, v in done.json().items()} == {
                "total": "done",
                "mean": "done",
            }
            # A retried job's step: other ids, not created.
            retried = await w.http.get(
                url + URL, params={"chain_id": chain_id, "retry": "1"}, headers=AUTH
            )
            assert retried.status_code == 200, retried.text
            assert retried.json() == {
                c.name: {
                    "collaboration_id": collaboration_id(config, chain_id, c, 1),
                    "state": None,
                }
                for c in config.computations
            }
            assert all(
                retried.json()[name]["collaboration_id"] != found["collaboration_id"]
                for name, found in step.items()
            )


async def test_the_route_refuses_bad_callers_and_names_what_is_wrong(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    chains = write_chains(tmp_path / "chains.json", chain("payroll", external=("lab",)))
    settings = gateway_settings(
        nodes, tmp_path / "gw.db", chains, "http://127.0.0.1:9", operator_token=OPERATOR
    )
    app = create_app(Settings(**settings), configure_logging=False)
    query = {"chain_id": "@supervisor:" + "ab" * 64 + "-1-00000003"}
    async with serve(app) as server, httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        for auth in ({}, {"authorization": "Bearer not-the-operator-token"}):
            refused = await http.get(URL, params=query, headers=auth)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == 401
        unknown = await http.get("/chains/nope/collaborations", params=query, headers=AUTH)
        assert unknown.status_code == 404, unknown.text
        assert _fields(unknown) == ["path.name"]
        missing = await http.get(URL, headers=AUTH)
        assert missing.status_code == 422, missing.text
        assert _fields(missing) == ["query.chain_id"]
        empty = await http.get(URL, params={"chain_id": ""}, headers=AUTH)
        assert (empty.status_code, _fields(empty)) == (422, ["query.chain_id"])
        for retry in ("-1", "two"):
            bad = await http.get(URL, params={**query, "retry": retry}, headers=AUTH)
            assert (bad.status_code, _fields(bad)) == (422, ["query.retry"]), bad.text
        extra = await http.get(URL, params={**query, "party": "lab"}, headers=AUTH)
        assert (extra.status_code, _fields(extra)) == (422, ["query.party"])
        # Looking up creates nothing.
        assert (await http.get(URL, params=query, headers=AUTH)).status_code == 200
        assert await app.state.runtime.coordination.coordinator.collaborations() == []
