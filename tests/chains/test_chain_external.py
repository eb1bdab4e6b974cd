"""External input parties in a chain step, and the step's deadline, on real MPyC nodes.

The gateway (in this process, served by uvicorn), three real node processes and a simulated
PDC hosting the chain. External parties join over HTTP: they register through the
coordinator API and upload with the client code path (``ptx-chain-node client upload``).
Results are checked against a plaintext recomputation of the parties' random data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import statistics
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from chain_harness import (
    World,
    chain,
    chain_config,
    collaboration_of,
    gateway_settings,
    join_as_external,
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
from ptx_chain_node.testing import ResumeOutcome, serve

pytestmark = pytest.mark.slow

DEADLINE = 4.0  # seconds: how long a chain step waits for an external party that never comes

CHAINS = (
    chain("late", external=("lab",), mean=True),
    chain("partial", external=("lab",), min_parties=2, deadline=DEADLINE),
    chain("expire-resume", external=("lab",), deadline=DEADLINE, on_failure="resume_error"),
    chain("expire-fail", external=("lab",), deadline=DEADLINE, on_failure="fail"),
    chain("expire-hold", external=("lab",), deadline=DEADLINE, on_failure="hold"),
)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with local_nodes(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def running(nodes: LocalNodes, tmp_path: Path) -> AsyncIterator[tuple[World, str, Path]]:
    """The PDC, the gateway app on these nodes; yields (world, gateway URL, config path)."""
    chains = write_chains(tmp_path / "chains.json", *CHAINS)
    async with world() as w:
        settings = gateway_settings(nodes, tmp_path / "gw.db", chains, w.pdc.base_url)
        (tmp_path / "gateway.json").write_text(json.dumps(settings))
        app = create_app(Settings(**settings), configure_logging=False)
        async with serve(app) as server:
            yield w, server.url, chains


def resumes(w: World, chain_id: str) -> list[Any]:
    return [r for r in w.pdc.resumes_for(chain_id) if r.outcome is not ResumeOutcome.UNKNOWN]


async def test_an_external_party_joining_late_is_in_the_result(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    provider, north, lab = (random_rows(rng, rng.randrange(3, 25)) for _ in range(3))
    async with running(nodes, tmp_path) as (w, url, chains):
        config = chain_config(chains, "late")
        chain_id = await w.start(url, "late", provider, north)
        await w.job_in(url, chain_id, "late", "computing")
        # The step is delivered and shared; the MPC waits for the expected external party.
        total = await collaboration_of(w.http, url, config, chain_id, "total")
        status = (await w.http.get(f"{url}/v1/collaborations/{total['id']}/status")).json()
        assert (status["state"], status["confirmed_uploads"], status["expected_parties"]) == (
            "open",
            2,
            3,
        )
        assert total["registration"] == "open"
        # Only the configured external parties may join.
        intruder = await w.http.post(f"{url}/v1/collaborations/{total['id']}/input-parties/eve")
        assert intruder.status_code == 403, intruder.text
        await asyncio.sleep(2.0)  # the external party comes a little later
        assert resumes(w, chain_id) == []
        receipts = await join_as_external(
            w.http, url, config, chain_id, "lab", lab, tmp_path, cli=True
        )
        assert {c: r["rows"] for c, r in receipts.items()} == {"total": len(lab), "mean": len(lab)}

        output = await w.pdc.wait_for_output(chain_id, 60)
        everything = salaries(provider, north, lab)
        assert output.data["statistics"]["total"] == sum(everything)
        assert math.isclose(
            output.data["statistics"]["mean"], statistics.fmean(everything), rel_tol=1e-9
        )
        assert output.data["parties"] == {
            "provider": len(provider),
            "north": len(north),
            "lab": len(lab),
        }
        assert output.body["previousNodeParams"] == {
            "processor": "mpc",
            "chain": "late",
            "purpose": "test",
        }
        job = await w.job_in(url, chain_id, "late", "resumed")
        assert job["attempts"] == 1
        assert [r.outcome for r in resumes(w, chain_id)] == [ResumeOutcome.RESUMED]


async def test_the_deadline_runs_the_parties_present_when_enough(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    """min_parties 2 of 3: the external party never comes; at the deadline the two run."""
    rng = random.Random()
    provider, north = random_rows(rng, rng.randrange(3, 25)), random_rows(rng, 7)
    async with running(nodes, tmp_path) as (w, url, chains):
        chain_id = await w.start(url, "partial", provider, north)
        output = await w.pdc.wait_for_output(chain_id, DEADLINE + 60)
        assert output.data["statistics"]["total"] == sum(salaries(provider, north))
        assert output.data["parties"] == {"provider": len(provider), "north": len(north)}
        config = chain_config(chains, "partial")
        total = await collaboration_of(w.http, url, config, chain_id, "total")
        assert total["state"] == "done" and total["allow_partial_run"] is True
        assert [r.outcome for r in resumes(w, chain_id)] == [ResumeOutcome.RESUMED]


async def test_the_deadline_passing_resumes_the_chain_with_an_error_object(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    async with running(nodes, tmp_path) as (w, url, _):
        chain_id = await w.start(url, "expire-resume", random_rows(rng, 5), random_rows(rng, 5))
        output = await w.pdc.wait_for_output(chain_id, DEADLINE + 30)
        error = output.data["error"]
        assert error["code"] == "mpc_failed" and error["chain"] == "expire-resume"
        assert "expired" in error["message"] and "deadline" in error["message"]
        assert set(output.data) == {"error"}  # no partial result, no data of the parties
        assert output.body["previousNodeParams"]["status"] == "error"
        job = await w.job_in(url, chain_id, "expire-resume", "resumed")
        assert job["lastError"] is None or "expired" in job["lastError"]
        assert [r.outcome for r in resumes(w, chain_id)] == [ResumeOutcome.RESUMED]


async def jobs_cli(config: Path, *args: str) -> tuple[int, str, str]:
    """``ptx-chain-node jobs ARGS --config CONFIG`` (the operator's command on the store)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "jobs",
        *args,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("policy", "state"), [("fail", "failed"), ("hold", "held")])
async def test_the_deadline_passing_fails_or_holds_the_job_with_its_reason(
    nodes: LocalNodes, tmp_path: Path, policy: str, state: str
) -> None:
    rng = random.Random()
    name = f"expire-{policy}"
    async with running(nodes, tmp_path) as (w, url, chains):
        chain_id = await w.start(url, name, random_rows(rng, 5), random_rows(rng, 5))
        job = await w.job_in(url, chain_id, name, state, timeout=DEADLINE + 30)
        assert "collaboration expired" in job["lastError"], job
        assert "deadline" in job["lastError"]
        config = chain_config(chains, name)
        total = await collaboration_of(w.http, url, config, chain_id, "total")
        assert total["state"] == "expired"
        assert resumes(w, chain_id) == []  # the chain is not resumed
        if policy == "hold":
            # The operator retries: the shares were uploaded, so the job waits again for
            # its collaborations, finds them expired and is held again with the reason.
            code, out, err = await jobs_cli(tmp_path / "gateway.json", "retry", job["id"])
            assert code == 0, err
            assert f"job {job['id']}: held -> computing" in out

            async def held_again() -> dict[str, Any] | None:
                again = await w.job(url, chain_id, name)
                return again if again and again["updatedAt"] > job["updatedAt"] else None

            again = await wait_for(held_again, 30, "the retried job settled")
            again = await w.job_in(url, chain_id, name, "held")
            assert again["lastError"] == job["lastError"]
            assert resumes(w, chain_id) == []
        else:
            answer = await w.http.get(f"{url}/jobs/{job['id']}/result")
            assert answer.status_code == 409  # no result to fetch either
